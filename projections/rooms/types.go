package rooms

import "encoding/json"

// Room is a room's summary: what the state machine needs to append the
// next event, and what sync needs to skip a room that did not change.
//
// Every field is known from the event being folded (the room version
// travels in every room event's fact), so the fold writes the summary
// without reading it back, for every event. The create event's ID and
// sender are not kept here (up to version 3 they were, under tags "c" and
// "r"): the room's m.room.create state entry holds them (CreateEvent).
type Room struct {
	Version     string `msgpack:"v"`
	LastEventID string `msgpack:"l"`
	Depth       int64  `msgpack:"d"`
	// LastSeq is the position of the room's latest event: sync compares it
	// with a token to skip rooms that did not change.
	LastSeq uint64 `msgpack:"s"`
}

// Event is an accepted event in the parts clients read.
type Event struct {
	EventID        string          `msgpack:"i"`
	Type           string          `msgpack:"t"`
	StateKey       *string         `msgpack:"k"`
	Sender         string          `msgpack:"s"`
	OriginServerTS int64           `msgpack:"o"`
	Content        json.RawMessage `msgpack:"c"`
	Redacts        string          `msgpack:"r,omitempty"`
	// PrevContent and ReplacesState describe the state entry this event
	// replaced, for the client's unsigned block.
	PrevContent   json.RawMessage `msgpack:"pc,omitempty"`
	PrevSender    string          `msgpack:"ps,omitempty"`
	ReplacesState string          `msgpack:"rs,omitempty"`
	TxnID         string          `msgpack:"x,omitempty"`
	DeviceID      string          `msgpack:"dv,omitempty"`
	Depth         int64           `msgpack:"d"`
	Seq           uint64          `msgpack:"q"`
	RoomID        string          `msgpack:"-"`

	// RedactedBecause is the redaction event that redacted this one (its
	// content is then already redacted); see redact.go.
	RedactedBecause *Event `msgpack:"rb,omitempty"`
}

// EventRef locates an event by its ID.
type EventRef struct {
	RoomID string `msgpack:"r"`
	Seq    uint64 `msgpack:"s"`
}

// StateRef is the event holding one state entry.
type StateRef struct {
	EventID string `msgpack:"i"`
	Seq     uint64 `msgpack:"s"`
}

// Membership is a user's current membership in one room.
type Membership struct {
	Membership string `msgpack:"m"`
	Seq        uint64 `msgpack:"s"`
	EventID    string `msgpack:"i"`
}

// StateKeyPair names one state entry.
type StateKeyPair struct {
	Type     string
	StateKey string
}
