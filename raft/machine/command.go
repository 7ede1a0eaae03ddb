package machine

import (
	"encoding/json"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Command types. A type, once shipped, keeps its meaning forever.
const (
	CmdRegister     = "register"
	CmdLogin        = "login"
	CmdLogout       = "logout"
	CmdLogoutAll    = "logout_all"
	CmdCreateRoom   = "create_room"
	CmdSendEvent    = "send_event"
	CmdMembership   = "membership"
	CmdFilter       = "create_filter"
	CmdNodeAnnounce = "node_announce"
	CmdNodeRemove   = "node_remove"
)

// Command is an intent, with every non-deterministic input already filled
// in by the API node that built it.
type Command struct {
	Type string `msgpack:"t"`
	// Time is unix milliseconds on the API node; it becomes the records'
	// time and events' origin_server_ts.
	Time   int64  `msgpack:"ts"`
	Actor  string `msgpack:"a"`
	Device string `msgpack:"d"`
	Body   []byte `msgpack:"b"`
	// Salt is random bytes from the API node. The machine derives the
	// event IDs of room versions 1 and 2, which are not hashes, from it
	// (see v1events.go).
	Salt []byte `msgpack:"s,omitempty"`
	// CheckpointEvery is the checkpoint interval of the node that built
	// the command (0: none); see audit.go.
	CheckpointEvery uint64 `msgpack:"ce,omitempty"`
}

// NewCommand encodes payload into a command.
func NewCommand(typ string, time int64, actor, device string, payload any) (*Command, error) {
	b, err := msgpack.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", typ, err)
	}
	return &Command{Type: typ, Time: time, Actor: actor, Device: device, Body: b, Salt: newSalt()}, nil
}

// Encode marshals the command for the Raft log.
func (c *Command) Encode() ([]byte, error) {
	b, err := msgpack.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode command %s: %w", c.Type, err)
	}
	return b, nil
}

// DecodeCommand parses a Raft log entry.
func DecodeCommand(b []byte) (*Command, error) {
	var c Command
	if err := msgpack.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	return &c, nil
}

// Register creates an account and, unless InhibitLogin, its first device.
type Register struct {
	UserID       string   `msgpack:"u"`
	PasswordHash string   `msgpack:"p"`
	Guest        bool     `msgpack:"g"`
	InhibitLogin bool     `msgpack:"i"`
	DeviceID     string   `msgpack:"d"`
	DisplayName  string   `msgpack:"n"`
	TokenHash    [32]byte `msgpack:"t"`
}

// Login starts a session on a (new or existing) device.
type Login struct {
	DeviceID    string   `msgpack:"d"`
	DisplayName string   `msgpack:"n"`
	TokenHash   [32]byte `msgpack:"t"`
}

// Logout ends the actor's session on Command.Device; LogoutAll ends all.
type Logout struct{}

// StateEvent is one entry of createRoom's initial_state.
type StateEvent struct {
	Type     string          `msgpack:"t" json:"type"`
	StateKey string          `msgpack:"k" json:"state_key"`
	Content  json.RawMessage `msgpack:"c" json:"content"`
}

// CreateRoom creates a room; see the spec's /createRoom for the order of
// the events it implies.
type CreateRoom struct {
	RoomVersion string `msgpack:"v"`
	// RoomID is chosen by the API node for room versions whose room ID is
	// not derived from the create event (1-11).
	RoomID                    string          `msgpack:"r"`
	Preset                    string          `msgpack:"p"`
	Visibility                string          `msgpack:"vis"`
	Name                      *string         `msgpack:"n"`
	Topic                     *string         `msgpack:"tp"`
	Invite                    []string        `msgpack:"i"`
	IsDirect                  bool            `msgpack:"d"`
	CreationContent           json.RawMessage `msgpack:"cc"`
	PowerLevelContentOverride json.RawMessage `msgpack:"pl"`
	InitialState              []StateEvent    `msgpack:"s"`
	// Alias is the full alias (#room_alias_name:server) to create.
	Alias string `msgpack:"al"`
}

// SendEvent sends a message or state event (StateKey set) to a room.
type SendEvent struct {
	RoomID   string          `msgpack:"r"`
	Type     string          `msgpack:"t"`
	StateKey *string         `msgpack:"k"`
	Content  json.RawMessage `msgpack:"c"`
	TxnID    string          `msgpack:"x"`
}

// Membership changes Target's membership (join, leave, invite, ban, kick).
type Membership struct {
	RoomID     string `msgpack:"r"`
	Target     string `msgpack:"u"`
	Membership string `msgpack:"m"`
	Reason     string `msgpack:"why"`
	IsDirect   bool   `msgpack:"d"`
	// DisplayName and AvatarURL go into the member event as given; when
	// empty, a join, invite or knock carries the target's profile values
	// (profile.go).
	DisplayName string `msgpack:"n"`
	AvatarURL   string `msgpack:"av"`
}

// CreateFilter stores a sync filter for the actor.
type CreateFilter struct {
	Filter json.RawMessage `msgpack:"f"`
}

// NodeAnnounce records a cluster member's addresses. Only nodes submit it
// (the API never builds one from client input).
type NodeAnnounce struct {
	NodeID   string `msgpack:"i"`
	RaftAddr string `msgpack:"r"`
	URL      string `msgpack:"u"`
}

// NodeRemove drops a member from the registry.
type NodeRemove struct {
	NodeID string `msgpack:"i"`
}
