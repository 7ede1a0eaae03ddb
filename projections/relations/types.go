package relations

import "chronicle/projections/rooms"

// Rel types this projection aggregates.
const (
	RelThread    = "m.thread"
	RelReplace   = "m.replace"
	RelReference = "m.reference"
)

// Child is one event related to a parent, as the indexes hold it: enough
// to filter it and check its visibility without loading the event.
type Child struct {
	EventID  string  `msgpack:"i"`
	Type     string  `msgpack:"t"`
	RelType  string  `msgpack:"r"`
	Sender   string  `msgpack:"s"`
	StateKey *string `msgpack:"k,omitempty"`
	// Seq is the child's position (from the key).
	Seq uint64 `msgpack:"-"`
}

// Stub is the child as a rooms.Event carrying what
// rooms.Visibility.CanSee reads (position, type, state key, sender).
func (c *Child) Stub(roomID string) *rooms.Event {
	return &rooms.Event{EventID: c.EventID, Type: c.Type, StateKey: c.StateKey, Sender: c.Sender, Seq: c.Seq, RoomID: roomID}
}

// Summary is what is aggregated for one parent event.
type Summary struct {
	// Children counts every indexed child, of any rel_type.
	Children uint64 `msgpack:"c"`
	// Threads counts the m.thread events of a valid thread root;
	// ThreadLatest is the position of the latest of them.
	Threads      uint64 `msgpack:"t,omitempty"`
	ThreadLatest uint64 `msgpack:"l,omitempty"`
	// Edits counts valid m.replace edits; References m.reference children.
	Edits      uint64 `msgpack:"e,omitempty"`
	References uint64 `msgpack:"r,omitempty"`
}

// Empty reports whether nothing is aggregated (the entry can go).
func (s *Summary) Empty() bool { return *s == Summary{} }

// ThreadRef is one thread in a room's activity index.
type ThreadRef struct {
	RootID  string `msgpack:"i"`
	RootSeq uint64 `msgpack:"s"`
	// Latest is the position of the thread's latest event (from the key).
	Latest uint64 `msgpack:"-"`
}

// Edit is one valid replacement of an original event.
type Edit struct {
	EventID string `msgpack:"i"`
	Seq     uint64 `msgpack:"s"`
	TS      int64  `msgpack:"o"`
}

// Relation is what a child relates to and how it was counted, so that it
// can be de-aggregated without reading its content again.
type Relation struct {
	Parent string `msgpack:"p"`
	Child  Child  `msgpack:"c"`
	Seq    uint64 `msgpack:"s"`
	Thread bool   `msgpack:"th,omitempty"` // counted as a thread event
	Edit   bool   `msgpack:"ed,omitempty"` // a valid edit (in the edit index)
	EditTS int64  `msgpack:"ts,omitempty"`
}
