// Package rooms is the projection of rooms: every accepted event by room and
// log position, the event-ID index, current state, state history by
// position, each user's memberships, the client transaction index that
// makes sends idempotent, and a summary per room (version and latest
// event) that the fold writes from each event alone, without reading it.
//
// Raft orders every write, so a room's history here is a line: an event's
// position (its record's seq) orders it, and the state at seq S is, for each
// (type, state_key), the latest state event at or before S. History keys are
// (room, type, state_key, seq) so that lookup is one seek per state entry,
// never a replay of the room.
//
// A message costs the fold five writes and no read (the event, its ID,
// its timestamp and transaction entries, the summary), each value encoded
// without reflection (codec.go): on a rebuild this projection folds every
// room event of the log.
//
// The PDU itself stays in the log record (fetch it by seq); this projection
// stores the parts clients read, so rendering an event needs no PDU parse.
//
// Redactions rewrite the stored event in place (redact.go): what clients
// read is the redacted form, with the redaction event kept for
// unsigned.redacted_because, while the log keeps the original PDU. Two
// smaller indexes serve the room-history endpoints: forgotten rooms per
// (user, room) (forget.go) and events by (room, origin_server_ts)
// (timestamps.go).
package rooms
