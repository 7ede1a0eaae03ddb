package notifications

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"

	"chronicle/projections"
)

func decodeValue(b []byte, v any) error {
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode notification entry: %w", err)
	}
	return nil
}

// ThreadCounts are one thread's counts ("" is the main timeline).
type ThreadCounts struct {
	Thread string
	Counts
}

// RoomCounts returns a user's unread counts in a room per thread, in
// thread order (the main timeline, "", first when it has any).
func RoomCounts(r pebble.Reader, user, room string) ([]ThreadCounts, error) {
	tcs, _, err := roomCounts(r, user, room)
	return tcs, err
}

// Total sums thread counts.
func Total(tcs []ThreadCounts) Counts {
	var c Counts
	for _, tc := range tcs {
		c.Notify += tc.Notify
		c.Highlight += tc.Highlight
	}
	return c
}

// IsUnread reports whether a notification is still unread.
func IsUnread(r pebble.Reader, user string, n *Notif) (bool, error) {
	_, closer, err := r.Get(unreadPrefix(user, n.RoomID).Str(n.Thread).U64(n.Seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("unread entry: %w", err)
	}
	return true, closer.Close()
}

// List returns up to limit of the user's notifications, newest first,
// those before position before (^uint64(0) for the newest), only
// highlights if onlyHighlight. next is the position to continue before, 0
// when there is nothing older.
func List(r pebble.Reader, user string, before uint64, limit int, onlyHighlight bool) (out []Notif, next uint64, err error) {
	if before == 0 || limit <= 0 {
		return nil, 0, nil
	}
	p := listPrefix(user)
	upper := p.End()
	if before != ^uint64(0) {
		upper = p.U64(before)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: upper})
	if err != nil {
		return nil, 0, fmt.Errorf("notifications of %s: %w", user, err)
	}
	defer it.Close()
	for ok := it.Last(); ok; ok = it.Prev() {
		seq := projections.U64At(it.Key())
		if len(out) == limit {
			return out, out[len(out)-1].Seq, nil
		}
		var n Notif
		if err := decodeValue(it.Value(), &n); err != nil {
			return nil, 0, err
		}
		if onlyHighlight && !n.Highlight {
			continue
		}
		n.Seq = seq
		out = append(out, n)
	}
	return out, 0, it.Error()
}
