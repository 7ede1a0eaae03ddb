package facts

// Record types of room aliases and the published room directory.
const (
	TypeAliasCreated      = "alias.created"
	TypeAliasDeleted      = "alias.deleted"
	TypeRoomVisibilitySet = "room.visibility_set"
)

// AliasCreated maps a local room alias to a room. Creator is the user who
// created the mapping (it may delete it again).
type AliasCreated struct {
	Alias   string `msgpack:"a"`
	RoomID  string `msgpack:"r"`
	Creator string `msgpack:"u"`
}

// AliasDeleted removes a room alias mapping.
type AliasDeleted struct {
	Alias  string `msgpack:"a"`
	RoomID string `msgpack:"r"`
}

// RoomVisibilitySet sets a room's visibility in the published room
// directory: "public" (listed by /publicRooms) or "private".
type RoomVisibilitySet struct {
	RoomID     string `msgpack:"r"`
	Visibility string `msgpack:"v"`
}
