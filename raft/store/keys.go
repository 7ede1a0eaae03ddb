package store

import "encoding/binary"

// Key layout. One Pebble keyspace holds both stores, separated by a one-byte
// prefix so each can be bounded by [prefix, prefix+1) when iterating.
const (
	prefixLog    byte = 'l' // 'l' + uint64 big-endian log index
	prefixStable byte = 's' // 's' + raw StableStore key
)

// logKeyLen is the length of every log key: prefix + 8-byte index.
const logKeyLen = 1 + 8

var (
	// logLower and logUpper bound every iterator over log entries.
	logLower = []byte{prefixLog}
	logUpper = []byte{prefixLog + 1}
)

// logKey returns the key of the log entry at index. Big-endian encoding makes
// Pebble's byte order equal numeric order, so First/Last of the prefix are the
// lowest and highest stored indexes.
func logKey(index uint64) []byte {
	k := make([]byte, logKeyLen)
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

// logKeyIndex decodes the index from a key produced by logKey.
func logKeyIndex(key []byte) (uint64, bool) {
	if len(key) != logKeyLen || key[0] != prefixLog {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[1:]), true
}

// stableKey returns the Pebble key for a StableStore key.
func stableKey(key []byte) []byte {
	k := make([]byte, 0, 1+len(key))
	k = append(k, prefixStable)
	return append(k, key...)
}
