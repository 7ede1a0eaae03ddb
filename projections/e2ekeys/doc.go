// Package e2ekeys is the projection of end-to-end encryption keys (the
// spec's /keys/* module): each device's identity keys, its pool of
// unclaimed one-time keys and its fallback keys, each user's cross-signing
// keys and the signatures uploaded for them, and the log of device list
// changes that /sync's device_lists and /keys/changes read.
//
// It owns prefix 0x85 and keeps these invariants:
//
//   - One-time keys are held in the order /keys/claim gives them out:
//     upload position, then key ID (keys of one upload are equivalent, as
//     the spec allows), so claiming is a seek to the first key and every
//     node picks the same one. A claimed key leaves the pool at once; its
//     ID may be uploaded again afterwards, as Synapse allows.
//   - The unclaimed count per (device, algorithm) equals the number of
//     pool entries; it is kept beside them so /sync reads one small key
//     per algorithm instead of counting.
//   - A fallback key is never consumed: claiming it only marks it used,
//     and uploading a new one for that algorithm makes it unused again.
//   - Each device keeps the position of the last change to its one-time
//     or fallback keys, so /sync can tell whether the counts it reports
//     changed since a token without scanning.
//   - Every record that changes what /keys/query shows about a user (a
//     device's identity keys set or dropped, a master or self-signing key,
//     a signature by the user on their own keys) appends one entry to the
//     device list log under its position; a change only one user may see
//     (a user-signing key, a signature on someone else's master key) names
//     that user too. Entries only grow with the log, so the LSM appends.
//   - Deleting a device drops all its keys and the signatures on them in
//     one record.
//
// Keys are public, so storing them in the log and here leaks nothing.
// Signatures are stored as given: the server does not verify them.
//
// Goroutines: Apply runs on the FSM's apply goroutine; the query functions
// take a pebble.Reader and are safe anywhere.
package e2ekeys
