package projections

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"
)

// Key builds keys as prefix bytes followed by parts; strings are terminated
// by 0x00 so that prefixes of one ID never collide with another (Matrix IDs
// never contain NUL; the API rejects it in free-form parts).
type Key []byte

// NewKey starts a key with the given prefix bytes.
func NewKey(prefix ...byte) Key { return Key(append(make([]byte, 0, 64), prefix...)) }

// Each method returns a new key and never writes into k's spare capacity,
// so two keys built from one prefix (an iterator's bounds) never alias.

// Str appends s and a 0x00 terminator.
func (k Key) Str(s string) Key { return append(append(k.grow(len(s)+1), s...), 0) }

// U64 appends v big-endian, so keys sort by number.
func (k Key) U64(v uint64) Key { return binary.BigEndian.AppendUint64(k.grow(8), v) }

// Raw appends bytes without terminator.
func (k Key) Raw(b []byte) Key { return append(k.grow(len(b)), b...) }

// grow copies k into a new slice with room for n more bytes.
func (k Key) grow(n int) Key {
	out := make(Key, len(k), len(k)+n+16)
	copy(out, k)
	return out
}

// End returns the smallest key greater than every key starting with k.
func (k Key) End() Key {
	end := append(Key(nil), k...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// GetMsgpack reads key into v; found is false when absent.
func GetMsgpack(r pebble.Reader, key []byte, v any) (found bool, err error) {
	val, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %x: %w", key, err)
	}
	defer closer.Close()
	if err := msgpack.Unmarshal(val, v); err != nil {
		return false, fmt.Errorf("decode %x: %w", key, err)
	}
	return true, nil
}

// SetMsgpack writes v under key.
func SetMsgpack(w interface {
	Set([]byte, []byte, *pebble.WriteOptions) error
}, key []byte, v any) error {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %x: %w", key, err)
	}
	if err := w.Set(key, b, nil); err != nil {
		return fmt.Errorf("set %x: %w", key, err)
	}
	return nil
}

// U64At decodes a big-endian uint64 from the last 8 bytes of key.
func U64At(key []byte) uint64 {
	if len(key) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(key[len(key)-8:])
}

// Lookup reads the msgpack value under key, or nil when absent: the shape
// of every "get one thing by key" query of the projections.
func Lookup[T any](r pebble.Reader, key []byte) (*T, error) {
	var v T
	found, err := GetMsgpack(r, key, &v)
	if err != nil || !found {
		return nil, err
	}
	return &v, nil
}
