package facts

import "encoding/json"

// Record types of user profiles (the spec's /profile/{userId}/{keyName}).
// A profile is public: every field may be in the log as given.
const (
	// TypeProfileFieldSet sets one field of a user's profile (displayname,
	// avatar_url, m.tz or a custom field) to a JSON value.
	TypeProfileFieldSet = "profile.field_set"
	// TypeProfileFieldDeleted removes one field of a user's profile.
	TypeProfileFieldDeleted = "profile.field_deleted"
)

// ProfileFieldSet sets UserID's profile field Key to Value. Registration
// writes one for displayname (the localpart); the member events a change
// of displayname or avatar_url implies follow it as room.event records of
// the same command.
type ProfileFieldSet struct {
	UserID string          `msgpack:"u"`
	Key    string          `msgpack:"k"`
	Value  json.RawMessage `msgpack:"v"` // any JSON value, compact
}

// ProfileFieldDeleted removes UserID's profile field Key.
type ProfileFieldDeleted struct {
	UserID string `msgpack:"u"`
	Key    string `msgpack:"k"`
}
