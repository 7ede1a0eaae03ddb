package notifications

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"

	"chronicle/projections"
)

// member is a joined member as the room's member list holds them.
type member struct {
	User        string `msgpack:"u"`
	DisplayName string `msgpack:"d,omitempty"`
	// OwnRules: the member changed their push rules, so their result is
	// evaluated in full rather than derived from the shared one.
	OwnRules bool `msgpack:"o,omitempty"`
}

// members is a room's joined members in user ID order. It is one value
// ('m' room), read with one Get by every event's fold and rewritten only
// by membership and push rule changes, which are far rarer than events.
type members []member

func memberKey(room string) projections.Key { return projections.NewKey(Prefix, tagMember).Str(room) }

// joinedMembers reads the room's member list.
func joinedMembers(r pebble.Reader, room string) (members, error) {
	v, closer, err := r.Get(memberKey(room))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", room, err)
	}
	defer closer.Close()
	var out members
	if err := msgpack.Unmarshal(v, &out); err != nil {
		return nil, fmt.Errorf("decode members of %s: %w", room, err)
	}
	return out, nil
}

// putMembers stores the room's member list (none: no key).
func putMembers(w projections.Writer, room string, ms members) error {
	if len(ms) == 0 {
		return w.Delete(memberKey(room), nil)
	}
	b, err := msgpack.Marshal(ms)
	if err != nil {
		return fmt.Errorf("encode members of %s: %w", room, err)
	}
	return w.Set(memberKey(room), b, nil)
}

func (ms members) find(user string) (int, bool) {
	return slices.BinarySearchFunc(ms, user, func(m member, u string) int { return strings.Compare(m.User, u) })
}

// with returns the list with m added or replacing the same user's entry.
func (ms members) with(m member) members {
	i, ok := ms.find(m.User)
	if ok {
		ms[i] = m
		return ms
	}
	return slices.Insert(ms, i, m)
}

// without returns the list without user.
func (ms members) without(user string) members {
	if i, ok := ms.find(user); ok {
		return slices.Delete(ms, i, i+1)
	}
	return ms
}
