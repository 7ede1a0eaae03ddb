package keybackup

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"

	"chronicle/projections"
)

// LastVersion is the highest version the user ever created (0: none).
func LastVersion(r pebble.Reader, user string) (uint64, error) {
	v, closer, err := r.Get(lastKey(user))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last backup version: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("last backup version has %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// GetVersion returns a backup version, or nil when it does not exist (or
// was deleted).
func GetVersion(r pebble.Reader, user string, version uint64) (*Backup, error) {
	b, err := projections.Lookup[Backup](r, versionKey(user, version))
	if b != nil {
		b.Version = version
	}
	return b, err
}

// Current returns the user's current backup version: the highest one not
// deleted, or nil when there is none.
func Current(r pebble.Reader, user string) (*Backup, error) {
	p := versionsPrefix(user)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("current backup version: %w", err)
	}
	defer it.Close()
	if !it.Last() {
		return nil, it.Error()
	}
	return GetVersion(r, user, projections.U64At(it.Key()))
}

// GetKey returns one session's key in a backup version, or nil.
func GetKey(r pebble.Reader, user string, version uint64, room, session string) (*RoomKey, error) {
	return projections.Lookup[RoomKey](r, keysPrefix(user, version, room, session))
}

// Keys returns the keys of a backup version, of one room when room is set,
// in room then session order.
func Keys(r pebble.Reader, user string, version uint64, room string) ([]RoomKey, error) {
	p := keysPrefix(user, version, room, "")
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("backed up keys: %w", err)
	}
	defer it.Close()
	var out []RoomKey
	for it.First(); it.Valid(); it.Next() {
		var k RoomKey
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("backed up key: %w", err)
		}
		// msgpack copies what it decodes, so k outlives the iterator.
		if err := msgpack.Unmarshal(v, &k); err != nil {
			return nil, fmt.Errorf("decode backed up key: %w", err)
		}
		out = append(out, k)
	}
	return out, it.Error()
}

// HasKeys reports whether a backup version holds any key in the range
// keysPrefix names (all, a room's, one session's).
func HasKeys(r pebble.Reader, user string, version uint64, room, session string) (bool, error) {
	p := keysPrefix(user, version, room, session)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return false, fmt.Errorf("backed up keys: %w", err)
	}
	defer it.Close()
	return it.First(), it.Error()
}
