package keybackup

import "chronicle/projections"

// Prefix is the key space of this projection.
const Prefix byte = 0x86

const (
	tagLast    byte = 'l' // l userID -> highest version ever created (uint64 BE)
	tagVersion byte = 'v' // v userID version -> Backup
	tagKey     byte = 'k' // k userID version roomID sessionID -> RoomKey
)

func lastKey(user string) []byte { return projections.NewKey(Prefix, tagLast).Str(user) }

func versionsPrefix(user string) projections.Key {
	return projections.NewKey(Prefix, tagVersion).Str(user)
}

func versionKey(user string, version uint64) []byte { return versionsPrefix(user).U64(version) }

// keysPrefix is the range of a version's keys: all of them, a room's (room
// set) or one session's (both set).
func keysPrefix(user string, version uint64, room, session string) projections.Key {
	k := projections.NewKey(Prefix, tagKey).Str(user).U64(version)
	if room != "" {
		k = k.Str(room)
		if session != "" {
			k = k.Str(session)
		}
	}
	return k
}
