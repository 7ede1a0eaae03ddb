package facts

import "encoding/json"

// Record types of server-side room key backups (the spec's /room_keys/*).
// A backup's session_data is encrypted to the backup's public key by the
// client; the server cannot read it, so the log may hold it.
const (
	// TypeKeyBackupCreated creates a backup version, which becomes the
	// user's current one.
	TypeKeyBackupCreated = "key_backup.created"
	// TypeKeyBackupUpdated replaces a backup version's auth_data.
	TypeKeyBackupUpdated = "key_backup.updated"
	// TypeKeyBackupDeleted deletes a backup version and every key in it.
	TypeKeyBackupDeleted = "key_backup.deleted"
	// TypeRoomKeysBackedUp stores keys in a backup version; each one is
	// already decided to be kept over the key it replaces.
	TypeRoomKeysBackedUp = "room_keys.backed_up"
	// TypeRoomKeysDeleted deletes keys from a backup version: all of them,
	// a room's, or one session's.
	TypeRoomKeysDeleted = "room_keys.deleted"
)

// KeyBackupCreated creates version Version (a decimal number, one more
// than the user's previous version) of UserID's backup.
type KeyBackupCreated struct {
	UserID    string          `msgpack:"u"`
	Version   uint64          `msgpack:"v"`
	Algorithm string          `msgpack:"a"`
	AuthData  json.RawMessage `msgpack:"d"` // canonical JSON object
}

// KeyBackupUpdated replaces the auth_data of a backup version.
type KeyBackupUpdated struct {
	UserID   string          `msgpack:"u"`
	Version  uint64          `msgpack:"v"`
	AuthData json.RawMessage `msgpack:"d"`
}

// KeyBackupDeleted deletes a backup version with its keys.
type KeyBackupDeleted struct {
	UserID  string `msgpack:"u"`
	Version uint64 `msgpack:"v"`
}

// BackedUpRoomKey is one megolm session's key in a backup (the spec's
// KeyBackupData, under its room and session IDs).
type BackedUpRoomKey struct {
	RoomID            string          `msgpack:"r"`
	SessionID         string          `msgpack:"s"`
	FirstMessageIndex int64           `msgpack:"i"`
	ForwardedCount    int64           `msgpack:"f"`
	IsVerified        bool            `msgpack:"y"`
	SessionData       json.RawMessage `msgpack:"d"` // canonical JSON object
}

// RoomKeysBackedUp stores keys in a backup version, sorted by room and
// session ID.
type RoomKeysBackedUp struct {
	UserID  string            `msgpack:"u"`
	Version uint64            `msgpack:"v"`
	Keys    []BackedUpRoomKey `msgpack:"k"`
}

// RoomKeysDeleted deletes the keys of a backup version: every key when
// RoomID is empty, a room's when SessionID is, else one session's.
type RoomKeysDeleted struct {
	UserID    string `msgpack:"u"`
	Version   uint64 `msgpack:"v"`
	RoomID    string `msgpack:"r,omitempty"`
	SessionID string `msgpack:"s,omitempty"`
}
