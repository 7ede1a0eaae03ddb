package facts

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Record types.
const (
	TypeAccountRegistered = "account.registered"
	TypeSessionStarted    = "session.started"
	TypeSessionEnded      = "session.ended"
	TypeRoomEvent         = "room.event"
	TypeFilterCreated     = "filter.created"
	TypeNodeAnnounced     = "cluster.node_announced"
	TypeNodeRemoved       = "cluster.node_removed"
)

// NodeAnnounced records where a cluster member can be reached.
type NodeAnnounced struct {
	NodeID   string `msgpack:"i"`
	RaftAddr string `msgpack:"r"`
	URL      string `msgpack:"u"`
}

// NodeRemoved records that a member left the cluster.
type NodeRemoved struct {
	NodeID string `msgpack:"i"`
}

// FilterCreated stores a sync filter under an ID the machine chose.
type FilterCreated struct {
	UserID   string `msgpack:"u"`
	FilterID string `msgpack:"i"`
	Filter   []byte `msgpack:"f"` // the filter's JSON as uploaded
}

// AccountRegistered creates a user account.
type AccountRegistered struct {
	UserID string `msgpack:"u"`
	// PasswordHash is a bcrypt hash; empty for accounts without a password.
	PasswordHash string `msgpack:"p"`
	Guest        bool   `msgpack:"g"`
}

// SessionStarted creates or reuses a device and gives it a new access token.
// Only the SHA-256 of the token is recorded: auditors read the log and must
// not be able to log in as anyone.
type SessionStarted struct {
	UserID      string   `msgpack:"u"`
	DeviceID    string   `msgpack:"d"`
	DisplayName string   `msgpack:"n"`
	TokenHash   [32]byte `msgpack:"t"`
}

// SessionEnded deletes a device and invalidates its access token.
type SessionEnded struct {
	UserID   string `msgpack:"u"`
	DeviceID string `msgpack:"d"`
}

// RoomEvent appends one accepted PDU to a room.
type RoomEvent struct {
	RoomID      string `msgpack:"r"`
	EventID     string `msgpack:"e"`
	RoomVersion string `msgpack:"v"`
	// PDU is the event's federation JSON as hashed for its event ID.
	PDU []byte `msgpack:"p"`
	// TxnID and DeviceID record the client transaction that sent it, so a
	// retry returns the same event ID (also after a leader change).
	TxnID    string `msgpack:"x,omitempty"`
	DeviceID string `msgpack:"d,omitempty"`
}

// Encode marshals a body.
func Encode(body any) ([]byte, error) {
	b, err := msgpack.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", body, err)
	}
	return b, nil
}

// Decode unmarshals a record body into v.
func Decode(b []byte, v any) error {
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	return nil
}
