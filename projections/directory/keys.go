package directory

import "chronicle/projections"

// Prefix is the key space of this projection.
const Prefix byte = 0x50

const (
	tagAlias     byte = 'a' // a alias -> Alias
	tagRoomAlias byte = 'r' // r roomID alias -> (empty)
	tagPublished byte = 'p' // p roomID -> (empty): listed in /publicRooms
	tagJoined    byte = 'j' // j roomID -> joined member count, uint64 BE
)

func aliasKey(alias string) []byte { return projections.NewKey(Prefix, tagAlias).Str(alias) }

func roomAliasesPrefix(roomID string) projections.Key {
	return projections.NewKey(Prefix, tagRoomAlias).Str(roomID)
}

func roomAliasKey(roomID, alias string) []byte { return roomAliasesPrefix(roomID).Str(alias) }

func publishedPrefix() projections.Key { return projections.NewKey(Prefix, tagPublished) }

func publishedKey(roomID string) []byte { return publishedPrefix().Str(roomID) }

func joinedKey(roomID string) []byte { return projections.NewKey(Prefix, tagJoined).Str(roomID) }
