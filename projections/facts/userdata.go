package facts

import "encoding/json"

// Record types of per-user and ephemeral data that /sync carries.
const (
	TypeAccountDataSet  = "account_data.set"
	TypeReceiptSet      = "receipt.set"
	TypeTypingSet       = "typing.set"
	TypePresenceSet     = "presence.set"
	TypeToDeviceSent    = "to_device.sent"
	TypeToDeviceDropped = "to_device.dropped"
)

// AccountDataSet replaces one account data entry (RoomID "" for global).
type AccountDataSet struct {
	UserID  string          `msgpack:"u"`
	RoomID  string          `msgpack:"r,omitempty"`
	Type    string          `msgpack:"t"`
	Content json.RawMessage `msgpack:"c"`
}

// ReceiptSet moves a user's receipt of one type (and thread) in a room.
type ReceiptSet struct {
	RoomID   string `msgpack:"r"`
	UserID   string `msgpack:"u"`
	Type     string `msgpack:"t"` // m.read, m.read.private
	EventID  string `msgpack:"e"`
	ThreadID string `msgpack:"th,omitempty"`
}

// TypingSet starts (Timeout > 0, until Expires) or stops typing.
type TypingSet struct {
	RoomID string `msgpack:"r"`
	UserID string `msgpack:"u"`
	Typing bool   `msgpack:"y"`
	// Expires is unix ms: the command's time plus the client's timeout.
	Expires int64 `msgpack:"x"`
}

// PresenceSet records a change of a user's presence.
type PresenceSet struct {
	UserID    string `msgpack:"u"`
	Presence  string `msgpack:"p"`
	StatusMsg string `msgpack:"s,omitempty"`
	// LastActive is unix ms of the user's last activity.
	LastActive int64 `msgpack:"l"`
}

// ToDeviceSent queues one message for one device.
type ToDeviceSent struct {
	Sender         string          `msgpack:"s"`
	SenderDevice   string          `msgpack:"sd"`
	TxnID          string          `msgpack:"x"`
	UserID         string          `msgpack:"u"`
	DeviceID       string          `msgpack:"d"`
	Type           string          `msgpack:"t"`
	Content        json.RawMessage `msgpack:"c"`
	FirstOfRequest bool            `msgpack:"f"` // marks the txn as seen
}

// ToDeviceDropped deletes a device's messages up to a position: the
// client acknowledged them by syncing with a later token.
type ToDeviceDropped struct {
	UserID   string `msgpack:"u"`
	DeviceID string `msgpack:"d"`
	UpTo     uint64 `msgpack:"p"`
}
