// Package relations is the projection of event relationships (the spec's
// "Forming relationships between events"): every room event whose content
// carries "m.relates_to" with a string rel_type and event_id is folded into
// indexes that answer, without scanning the room:
//
//   - /relations: the children of a parent in position order, all of them,
//     by rel_type, or by rel_type and event type (three small index entries
//     per child, keyed (room, parent, [rel_type, [type,]] seq));
//   - /threads: a room's thread roots ordered by their latest thread event
//     (one entry per thread, moved when the thread advances);
//   - bundled aggregations: per parent a Summary (thread count and latest
//     thread event, number of valid edits and of references), each thread
//     participant, and the valid m.replace edits ordered as the spec orders
//     them (origin_server_ts, then event ID).
//
// Which relations count. A relation is indexed only when its parent is an
// earlier event of the same room: the log is a line, so a parent always
// precedes its children, and a relation to an unknown event or to another
// room is ignored, as the spec says of relations that break its rules.
// rel_type and event_id must be at most 255 bytes and free of NUL (they
// become key parts). Every indexed child is listed by /relations, whatever
// its rel_type. Aggregation applies the rules of each rel_type on top:
//
//   - m.thread: the root must not itself have a rel_type (threads do not
//     nest); children of an invalid root are listed but form no thread.
//   - m.replace: only valid edits are aggregated: same sender and type as
//     the original, neither a state event, the original not itself an edit,
//     and an m.new_content object (not checked for m.room.encrypted, whose
//     m.new_content is in the ciphertext). Edits by anyone other than the
//     original sender are therefore never bundled.
//   - m.reference: every reference is aggregated.
//
// Stored aggregates are global; what a reader sees is filtered at query
// time by history visibility (the API skips thread events, edits and
// references the reader cannot see, and lowers the thread count by the
// invisible tail it skipped). Ignored users are not implemented yet, so
// nothing is excluded for them.
//
// Redactions. When a child is redacted its m.relates_to is gone and the
// relationship is broken (the spec), so it is de-aggregated: when the
// rooms projection (folded first) has applied a redaction, Apply calls
// unrelate for its target, which removes the child from every index and
// aggregate as if it had never related to anything (a test checks exactly
// that against a fold that skips the child). A reverse entry (room, child)
// -> Relation keeps what a child related to, so this does not depend on
// the child's content, which is redacted by then. When a parent is
// redacted its children stay; the API drops only the m.replace bundle of a
// redacted original, as the spec says. A relation to an already redacted
// parent is indexed like any other; the parent's own rel_type, which the
// thread and edit rules look at, is then read from its redacted content.
package relations
