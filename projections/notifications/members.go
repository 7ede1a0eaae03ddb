package notifications

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections"
	"chronicle/projections/pushrules"
)

// member is a joined member as the room's member list holds them.
type member struct {
	User        string
	DisplayName string
	// OwnRules: the member changed their push rules, so their result is
	// evaluated in full rather than derived from the shared one.
	OwnRules bool
}

// members is a room's joined members in user ID order. It is one value
// ('m' room), read with one Get by every event's fold and rewritten only
// by membership and push rule changes, which are far rarer than events.
type members []member

func memberKey(room string) projections.Key { return projections.NewKey(Prefix, tagMember).Str(room) }

// joinedMembers reads the room's member list, as a copy the caller may
// change.
func joinedMembers(r pebble.Reader, room string) (members, error) {
	l, err := readMembers(r, room)
	if l == nil || err != nil {
		return nil, err
	}
	return slices.Clone(l.members), nil
}

// memberList is a decoded member list shared by the folds that read the
// same stored list; nobody modifies it.
type memberList struct {
	members members
	// evals[i] is members[i]'s evaluator when they have only the
	// server-default rules (nil otherwise): a pure function of the user
	// ID, looked up once per list rather than per member and event.
	evals []*pushrules.Evaluator
}

// readMembers reads the room's member list for reading only (nil when
// there is none). Every event's fold reads it, and it changes only with
// membership and push rule changes, so decoded lists are memoised by
// their exact stored bytes: what is stored decides, as without the cache
// (a list written by a command that is later rejected is simply never
// read again), and the cache only saves the decoding.
func readMembers(r pebble.Reader, room string) (*memberList, error) {
	v, closer, err := r.Get(memberKey(room))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", room, err)
	}
	defer closer.Close()
	decodedLists.Lock()
	l := decodedLists.m[string(v)] // a lookup by []byte does not copy it
	decodedLists.Unlock()
	if l != nil {
		return l, nil
	}
	ms, err := decodeMembers(v)
	if err != nil {
		return nil, fmt.Errorf("decode members of %s: %w", room, err)
	}
	l = &memberList{members: ms, evals: make([]*pushrules.Evaluator, len(ms))}
	for i, m := range ms {
		if !m.OwnRules {
			l.evals[i] = pushrules.DefaultEvaluator(m.User)
		}
	}
	decodedLists.Lock()
	if decodedLists.bytes+len(v) > maxDecodedBytes {
		decodedLists.m, decodedLists.bytes = map[string]*memberList{}, 0
	}
	if _, ok := decodedLists.m[string(v)]; !ok {
		decodedLists.m[string(v)] = l
		decodedLists.bytes += len(v)
	}
	decodedLists.Unlock()
	return l, nil
}

// decodedLists is readMembers' memo, bounded by the bytes of its keys
// (cleared when full). Its entries are pure functions of their keys.
var decodedLists = struct {
	sync.Mutex
	m     map[string]*memberList
	bytes int
}{m: map[string]*memberList{}}

const maxDecodedBytes = 8 << 20

// putMembers stores the room's member list (none: no key).
func putMembers(w projections.Writer, room string, ms members) error {
	if len(ms) == 0 {
		return w.Delete(memberKey(room), nil)
	}
	return w.Set(memberKey(room), ms.encode(), nil)
}

// encode writes the list as, per member, a flag byte (1: own rules) and
// the user ID and display name each as a uvarint length and bytes. Every
// event's fold decodes it, so it is a plain layout rather than msgpack:
// decoding makes one string of the whole value and slices it.
func (ms members) encode() []byte {
	var b []byte
	for _, m := range ms {
		flag := byte(0)
		if m.OwnRules {
			flag = 1
		}
		b = append(b, flag)
		b = binary.AppendUvarint(b, uint64(len(m.User)))
		b = append(b, m.User...)
		b = binary.AppendUvarint(b, uint64(len(m.DisplayName)))
		b = append(b, m.DisplayName...)
	}
	return b
}

func decodeMembers(v []byte) (members, error) {
	s := string(v) // one copy; the members' strings are slices of it
	off := 0
	next := func() (string, bool) {
		n, k := binary.Uvarint(v[off:])
		if k <= 0 || uint64(len(v)-off-k) < n {
			return "", false
		}
		start := off + k
		off = start + int(n)
		return s[start:off], true
	}
	var out members
	for off < len(v) {
		m := member{OwnRules: v[off] == 1}
		off++
		var ok1, ok2 bool
		m.User, ok1 = next()
		m.DisplayName, ok2 = next()
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("member list truncated after %d members", len(out))
		}
		out = append(out, m)
	}
	return out, nil
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
