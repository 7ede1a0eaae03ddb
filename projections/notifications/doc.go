// Package notifications is the projection of notification counts: for each
// user, room and thread, how many unread events notified the user and how
// many of those were highlights (the /sync fields unread_notifications and
// unread_thread_notifications), and each user's recent notifications
// (GET /notifications).
//
// Folding an event. For every room event, every joined member except the
// sender (in user ID order) has their push rules (projections/pushrules)
// evaluated against it, with the room as it is after the event (the rooms
// projection is folded first): the member count, the member's display
// name, the power levels for sender_notification_permission. An event
// whose matching rule notifies or highlights is stored as an unread entry
// under (user, room, thread, position), and the counters of (user, room,
// thread) go up; if it notifies it is also added to the user's list.
//
// Cost. For every event, every joined member is considered, on the state
// machine's single apply goroutine, but little is done per member:
//   - rules: users with only the server-default rules share a cached
//     evaluator, and the rules that do not depend on the member (all but
//     invite_for_me, is_user_mention, contains_display_name and
//     contains_user_name) are evaluated once per event (pushrules.Match);
//     a member's stored rules are found by a forward seek;
//   - writes: a notified member gets two blind writes (the unread entry and
//     the list entry, whose bytes are encoded once per event and match).
//     Counters are not read-modify-written per event: a (user, room,
//     thread) stores a checkpoint (the counts of its unread entries up to
//     a position), and the counts are the checkpoint plus the entries
//     after it. On the room's first event in each window of 64 positions
//     every member's checkpoints are moved up, so readers sum at most
//     about two windows of entries and the fold's recount is amortised.
//
// The projection keeps its own index of joined members and display names
// ('m' keys), so the members come from one scan.
//
// Threads. An event's thread is found as the spec recommends: follow its
// relation (relations projection, folded first) up to three hops until an
// m.thread relation names the root; anything else, thread roots included,
// is the main timeline (stored as thread "").
//
// Reading. A read receipt (m.read or m.read.private) marks as read every
// unread entry at or before the receipted event: an unthreaded receipt in
// every thread of the room, a threaded one only in its thread ("main" is
// the main timeline). Sending an event marks the sender's entries in that
// event's thread as read up to it (the spec: "either by using the API or by
// sending an event"). Read entries are deleted and the counters lowered, so
// a thread's count is what lies after the furthest of the unthreaded and
// that thread's receipts, whichever of m.read and m.read.private is ahead,
// as the spec requires; a receipt that moves backwards changes nothing.
// Each (user, room, thread) where entries were read keeps the position it
// was read up to ('r' keys; no unread entries lie at or before it), so
// marking read and summing counts seek past the deleted entries instead of
// walking them again, and a receipt at or before it costs one read.
// Leaving a room drops the user's entries and counters there.
//
// The list. Entries are keyed by (user, position), so writes append. On
// some of a user's receipts (one in trimEvery, chosen by position) the list
// is trimmed to the Keep latest; read state is not stored in it but looked
// up (an entry is read when its unread entry is gone).
//
// Not done: redacting an event does not withdraw its notifications;
// encrypted events are counted by the server-side rules only (the spec
// leaves the rest to clients); invites to rooms the user has not joined are
// not counted (they are not in rooms.join); no pushers or push gateway.
package notifications
