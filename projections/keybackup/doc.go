// Package keybackup is the projection of server-side room key backups
// (the spec's /room_keys/* module): each user's backup versions with their
// algorithm and auth_data, and the megolm session keys stored in each.
//
// It owns prefix 0x86 and keeps these invariants:
//
//   - Versions are numbered per user from 1, one more than the highest
//     version the user ever created, deleted or not (the "last version"
//     entry), so a version is never reused and a deleted one can be told
//     from one that never existed (deleting it again succeeds).
//   - The current version is the highest version that is not deleted;
//     keys are only ever written to it (the state machine checks).
//   - A version's count equals the number of keys stored under it and is
//     kept in the version's entry, so /room_keys/version reads one key.
//   - A version's etag is a counter bumped by every record that changes
//     its keys, so clients can tell whether another device wrote to it.
//   - Deleting a version deletes its keys in the same record.
//
// session_data is encrypted by the client to the backup's public key; the
// server stores it as given and cannot read it.
//
// Goroutines: Apply runs on the FSM's apply goroutine; the query functions
// take a pebble.Reader and are safe anywhere.
package keybackup
