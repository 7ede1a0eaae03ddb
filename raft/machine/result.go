package machine

import "fmt"

// Kind classifies a rejection; the API's error table maps each kind to the
// spec's errcode and HTTP status.
type Kind uint8

const (
	KindForbidden Kind = iota + 1
	KindUserInUse
	KindNotFound
	KindUnknownToken
	KindBadJSON
	KindInvalidParam
	KindUnsupportedRoomVersion
	KindTooLarge
	KindBadState
	KindConflict  // 409 M_UNKNOWN: the resource exists (a room alias)
	KindRoomInUse // createRoom's room_alias_name is taken
	KindBadAlias  // a canonical alias that does not point to the room
	// KindStillInRoom: 400 M_UNKNOWN, forgetting a room before leaving it.
	KindStillInRoom
	// KindMissingParam: 400 M_MISSING_PARAM (no master key to go with a
	// self-signing or user-signing key).
	KindMissingParam
	// KindAuthRequired: the request needs user-interactive authentication
	// (replacing cross-signing keys); the API answers with its challenge.
	KindAuthRequired
	// KindWrongRoomKeysVersion: 403 M_WRONG_ROOM_KEYS_VERSION, keys written
	// to a backup version that is not the current one (Result.KeyBackup
	// holds the current version).
	KindWrongRoomKeysVersion
	// KindProfileTooLarge: 400 M_PROFILE_TOO_LARGE, a profile field that
	// would take the profile over 64 KiB.
	KindProfileTooLarge
	// KindKeyTooLarge: 400 M_KEY_TOO_LARGE, a profile key over 255 bytes.
	KindKeyTooLarge
)

// Rejection is a command the domain refused. It is a decided outcome, the
// same on every node, not a failure.
type Rejection struct {
	Kind Kind   `msgpack:"k"`
	Msg  string `msgpack:"m"`
}

func (r *Rejection) Error() string { return r.Msg }

func reject(kind Kind, format string, args ...any) *Rejection {
	return &Rejection{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Result is the decided outcome of one command.
type Result struct {
	// Seq is the log head after the command (the position a client must
	// see to read its own write).
	Seq     uint64 `msgpack:"s"`
	EventID string `msgpack:"e"`
	RoomID  string `msgpack:"r"`
	// FilterID is the ID a created filter got.
	FilterID string `msgpack:"f"`
	// Claimed are the keys a /keys/claim gave out (keys.go).
	Claimed []ClaimedKey `msgpack:"ck,omitempty"`
	// SignatureFailures are the signatures /keys/signatures/upload did not
	// store (crosssigning.go).
	SignatureFailures []SignatureFailure `msgpack:"sf,omitempty"`
	// KeyBackup is the backup version a /room_keys command created or
	// changed, or the current one it should have named (keybackup.go).
	KeyBackup *KeyBackupState `msgpack:"kb,omitempty"`
	Err       *Rejection
}
