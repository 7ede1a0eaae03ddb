// Package profiles is the projection of user profiles (the spec's
// /profile/{userId}/{keyName}): each local user's current profile fields
// (displayname, avatar_url, m.tz and custom fields) and the history of
// every change, by log position, for auditors' point-in-time questions.
//
// It owns prefix 0x87 and keeps these invariants:
//
//   - A user's current fields are exactly those set by a
//     profile.field_set record and not removed by a later
//     profile.field_deleted one; values are the JSON the record holds.
//   - Every profile record adds one history entry under (user, field,
//     position) and none is ever rewritten, so the profile as of any
//     position is one range read (ProfileAt), without replaying the log.
//     The latest history entry of each field agrees with its current value.
//   - It folds only profile records and reads nothing else: which values
//     are allowed and which member events a change implies are decided by
//     the state machine before the records exist.
//
// Goroutines: Apply runs on the FSM's apply goroutine; the query functions
// take a pebble.Reader and are safe anywhere.
package profiles
