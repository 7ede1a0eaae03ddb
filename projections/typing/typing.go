// Package typing is the projection of who is typing in each room. Typing
// stops by a record too: the leader appends an expiry record when a
// timeout passes, so every node agrees on when it stopped and a sync token
// still names one state.
package typing

import (
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Prefix is the key space of this projection.
const Prefix byte = 0x82

const (
	tagTyping  byte = 't' // t roomID userID -> expires (unix ms)
	tagChanged byte = 'c' // c roomID -> seq of the last change
	tagExpiry  byte = 'x' // x expires userID roomID -> nothing: expiry queue
)

func typingPrefix(room string) projections.Key {
	return projections.NewKey(Prefix, tagTyping).Str(room)
}

func changedKey(room string) []byte { return projections.NewKey(Prefix, tagChanged).Str(room) }

func expiryKey(expires int64, user, room string) []byte {
	return projections.NewKey(Prefix, tagExpiry).U64(uint64(expires)).Str(user).Str(room)
}

type entry struct {
	Expires int64 `msgpack:"x"`
}

// Projection folds typing records.
type Projection struct{}

func (Projection) Name() string    { return "typing" }
func (Projection) Version() uint32 { return 1 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	if rec.Type != facts.TypeTypingSet {
		return nil
	}
	var f facts.TypingSet
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	key := typingPrefix(f.RoomID).Str(f.UserID)
	var old entry
	found, err := projections.GetMsgpack(w, key, &old)
	if err != nil {
		return err
	}
	if found {
		if err := w.Delete(expiryKey(old.Expires, f.UserID, f.RoomID), nil); err != nil {
			return fmt.Errorf("drop typing expiry: %w", err)
		}
		if err := w.Delete(key, nil); err != nil {
			return fmt.Errorf("stop typing: %w", err)
		}
	}
	if f.Typing {
		if err := projections.SetMsgpack(w, key, &entry{Expires: f.Expires}); err != nil {
			return err
		}
		if err := w.Set(expiryKey(f.Expires, f.UserID, f.RoomID), nil, nil); err != nil {
			return fmt.Errorf("queue typing expiry: %w", err)
		}
	}
	return w.Set(changedKey(f.RoomID), projections.NewKey().U64(rec.Seq), nil)
}

// Users returns who is typing in a room, sorted.
func Users(r pebble.Reader, room string) ([]string, error) {
	p := typingPrefix(room)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("typing in %s: %w", room, err)
	}
	defer it.Close()
	out := []string{}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(p):]
		out = append(out, string(k[:len(k)-1]))
	}
	sort.Strings(out)
	return out, it.Error()
}

// ChangedAt returns the position of the room's last typing change (0 if
// none).
func ChangedAt(r pebble.Reader, room string) (uint64, error) {
	v, closer, err := r.Get(changedKey(room))
	if err == pebble.ErrNotFound {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("typing change of %s: %w", room, err)
	}
	defer closer.Close()
	return projections.U64At(v), nil
}

// Expired is a typing notification whose timeout has passed.
type Expired struct {
	UserID, RoomID string
	Expires        int64
}

// ExpiredBy lists notifications expiring at or before now (unix ms), and
// the earliest expiry after now (0 if none), for the leader's expirer.
func ExpiredBy(r pebble.Reader, now int64) (due []Expired, next int64, err error) {
	p := projections.NewKey(Prefix, tagExpiry)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, 0, fmt.Errorf("typing expiries: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(p):]
		expires := int64(projections.U64At(k[:8]))
		if expires > now {
			return due, expires, it.Error()
		}
		user, room := splitPair(k[8:])
		due = append(due, Expired{UserID: user, RoomID: room, Expires: expires})
	}
	return due, 0, it.Error()
}

func splitPair(b []byte) (string, string) {
	for i, c := range b {
		if c == 0 {
			rest := b[i+1:]
			return string(b[:i]), string(rest[:max(len(rest)-1, 0)])
		}
	}
	return string(b), ""
}
