// Package notifications is the projection of notification counts: for each
// user, room and thread, how many unread events notified the user and how
// many of those were highlights (the /sync fields unread_notifications and
// unread_thread_notifications), and a bounded list of each user's recent
// notifications (GET /notifications).
//
// Folding an event. For every room event, every joined member except the
// sender (in user ID order) has their push rules (projections/pushrules)
// evaluated against it; the member's display name and the member count come
// from the room's state after the event (the rooms projection is folded
// first). An event whose matching rule notifies or highlights is stored
// as an unread entry under (user, room, thread, position), and the
// counters of (user, room, thread) go up. This costs O(joined members)
// reads and one rule evaluation per member for every event: acceptable at
// today's room sizes, and the obvious place to optimise (skip members
// whose rules cannot match, batch the reads) when large rooms matter.
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
// Leaving a room drops the user's entries and counters there.
//
// Not done: redacting an event does not withdraw its notifications
// (Synapse does not either until the counts are next recomputed);
// encrypted events are counted by the server-side rules only, as the spec
// says.
package notifications
