package profiles

import "chronicle/projections"

// Prefix is the key space of this projection.
const Prefix byte = 0x87

const (
	tagField   byte = 'f' // f userID key -> JSON value
	tagHistory byte = 'h' // h userID key seq -> JSON value, empty when deleted
)

func fieldsPrefix(userID string) projections.Key {
	return projections.NewKey(Prefix, tagField).Str(userID)
}

func fieldKey(userID, key string) []byte { return fieldsPrefix(userID).Str(key) }

func historyPrefix(userID string) projections.Key {
	return projections.NewKey(Prefix, tagHistory).Str(userID)
}

func historyKey(userID, key string, seq uint64) []byte {
	return historyPrefix(userID).Str(key).U64(seq)
}
