// Package notifications is the projection of notification counts: for each
// user, room and thread, how many unread events notified the user and how
// many of those were highlights (the /sync fields unread_notifications and
// unread_thread_notifications), and each user's notifications
// (GET /notifications).
//
// Shared results and exceptions. Almost every member of a room gets the
// same push rule result for an event: the server-default rules that do
// not name the member (.m.rule.message, .m.rule.roomnotif, ...) decide
// it, evaluated once per event (pushrules.Shared) with the room as it is
// after the event (the rooms projection is folded first). So an event's
// fold writes a constant number of keys, whatever the room's size:
//   - 'h' room thread: the room's running totals (notify, highlight) of
//     the shared result in that thread, and 'c' room thread seq: the totals
//     as of that event, so the totals between two positions are two reads;
//   - 'n' room seq: the event in the room's list of notifying events
//     (thread, actions, highlight);
//   - 't' sender room thread: the sender's read position in the thread
//     (sending marks one's notifications as read, as the spec says).
//
// Members for whom the result differs are exceptions, stored per member
// ('x' user room thread seq: their own outcome and the shared one it
// replaces, and 'y' user room seq when only they are notified): those
// named by a per-member default rule (a mention by user ID, display name
// or localpart, an invite to them) and members who changed their push
// rules, whose rulesets are evaluated in full. The per-member rules are
// string checks against the room's member list ('m' room: every joined
// member's user ID, display name and own-rules flag, one value read with
// one Get; the flag is refreshed on every push rule change of the user,
// after the pushrules projection folds it), so the per-member cost of a
// fold is a comparison, not a read or a write. The list is decoded once
// per distinct stored value (memoised by its exact bytes, so what is
// stored still decides), with each default-rules member's evaluator.
//
// Counting. A member's floor in a thread is the furthest of their join
// ('j' user room: join position and unthreaded read position) and their
// read position in that thread ('t'): nothing at or before it counts. A
// thread's count is the shared totals after the floor (head minus the 'c'
// entry at or before the floor) plus the member's exceptions after it
// (own minus shared), sought past the floor, never walked from the start.
// A read receipt only moves a position: an unthreaded one (m.read or
// m.read.private, whichever is ahead) the 'j' entry, a threaded one
// ("main" is the main timeline) its thread's 't' entry; positions never
// move backwards. Leaving drops the member's 'j', 't', 'x' and 'y' keys;
// rejoining starts counting afresh from the new join.
//
// Threads. An event's thread is found as the spec recommends: follow its
// relation (relations projection, folded first) up to three hops until an
// m.thread relation names the root; anything else, thread roots included,
// is the main timeline (stored as thread "").
//
// The list. GET /notifications merges, over the user's joined rooms, the
// room's 'n' entries after the user's join (with the user's exception
// applied where there is one) and the user's 'y' entries, newest first;
// read or not is the thread's floor. A room walks at most maxListScan
// entries per call (a user who muted a busy room would otherwise walk its
// history); the page then stops above that point and the next token
// continues from there.
//
// Not done: redacting an event does not withdraw its notifications;
// encrypted events are counted by the server-side rules only (the spec
// leaves the rest to clients); invites to rooms the user has not joined are
// not counted (they are not in rooms.join); no pushers or push gateway.
// The 'c', 'n' and 'x' entries are kept for the life of the room (like
// its timeline); nothing trims them yet.
package notifications
