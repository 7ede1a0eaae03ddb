package facts

// Redactions need no record type of their own: a redaction is an accepted
// m.room.redaction event, recorded as a room.event like any other, and the
// rooms projection applies it to its target when it folds that record (see
// projections/rooms/redact.go). This file holds the facts that come with
// redaction and the room-history endpoints.

// TypeRoomForgotten records that a user forgot a room they had left
// (POST /rooms/{roomId}/forget).
const TypeRoomForgotten = "room.forgotten"

// RoomForgotten hides a room's history from a user who left it. It holds
// for the membership the user had when they forgot the room: a later
// membership event (an invite, a join) makes the room remembered again
// without any further record.
type RoomForgotten struct {
	UserID string `msgpack:"u"`
	RoomID string `msgpack:"r"`
	// MembershipSeq is the position of the leave or ban event the user
	// forgot the room at.
	MembershipSeq uint64 `msgpack:"s"`
}
