package directory

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections"
)

// GetAlias returns an alias mapping, or nil.
func GetAlias(r pebble.Reader, alias string) (*Alias, error) {
	return projections.Lookup[Alias](r, aliasKey(alias))
}

// RoomAliases lists the local aliases of a room, sorted.
func RoomAliases(r pebble.Reader, roomID string) ([]string, error) {
	p := roomAliasesPrefix(roomID)
	return suffixes(r, p, "aliases of "+roomID)
}

// IsPublished reports whether the room is listed in the published room
// directory.
func IsPublished(r pebble.Reader, roomID string) (bool, error) {
	_, closer, err := r.Get(publishedKey(roomID))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("visibility of %s: %w", roomID, err)
	}
	closer.Close()
	return true, nil
}

// PublishedRooms lists the published rooms' IDs, sorted.
func PublishedRooms(r pebble.Reader) ([]string, error) {
	return suffixes(r, publishedPrefix(), "published rooms")
}

// suffixes lists the NUL-terminated strings following p in every key
// under p.
func suffixes(r pebble.Reader, p projections.Key, what string) ([]string, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer it.Close()
	out := []string{}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(p):]
		if len(k) == 0 {
			continue
		}
		out = append(out, string(k[:len(k)-1]))
	}
	return out, it.Error()
}
