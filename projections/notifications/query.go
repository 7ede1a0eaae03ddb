package notifications

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections"
)

// ThreadCounts are one thread's counts ("" is the main timeline).
type ThreadCounts struct {
	Thread string
	Counts
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

// threadReads reads the user's per-thread read positions in room.
func threadReads(r pebble.Reader, user, room string) (map[string]uint64, error) {
	p := threadPrefix(user, room)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("read positions of %s in %s: %w", user, room, err)
	}
	defer it.Close()
	out := map[string]uint64{}
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		if len(v) != 8 {
			return nil, fmt.Errorf("read position has %d bytes", len(v))
		}
		out[string(k[len(p):len(k)-1])] = binary.BigEndian.Uint64(v)
	}
	return out, it.Error()
}

// signed are counts that exceptions may lower below the shared ones.
type signed struct{ notify, highlight int64 }

func (s *signed) add(c Counts, sign int64) {
	s.notify += sign * int64(c.Notify)
	s.highlight += sign * int64(c.Highlight)
}

// RoomCounts returns a user's unread counts in a room per thread, in
// thread order, those that are not zero: per thread, the room's shared
// totals after the user's floor (join, unthreaded and threaded read
// positions), corrected by the user's exceptions after it.
func RoomCounts(r pebble.Reader, user, room string) ([]ThreadCounts, error) {
	j, ok, err := getJoined(r, user, room)
	if err != nil || !ok {
		return nil, err
	}
	reads, err := threadReads(r, user, room)
	if err != nil {
		return nil, err
	}
	by := map[string]*signed{}
	get := func(th string) *signed {
		s := by[th]
		if s == nil {
			s = &signed{}
			by[th] = s
		}
		return s
	}
	if err := sharedAfter(r, room, j, reads, get); err != nil {
		return nil, err
	}
	if err := exceptionsAfter(r, user, room, j, reads, get); err != nil {
		return nil, err
	}
	out := make([]ThreadCounts, 0, len(by))
	for th, s := range by {
		c := Counts{Notify: uint64(max(s.notify, 0)), Highlight: uint64(max(s.highlight, 0))}
		if c != (Counts{}) {
			out = append(out, ThreadCounts{Thread: th, Counts: c})
		}
	}
	slices.SortFunc(out, func(a, b ThreadCounts) int { return cmpString(a.Thread, b.Thread) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// sharedAfter adds, for every thread of the room, the shared totals after
// the user's floor in it: the head minus the running total at the floor.
func sharedAfter(r pebble.Reader, room string, j joined, reads map[string]uint64, get func(string) *signed) error {
	hp := headPrefix(room)
	heads, err := r.NewIter(&pebble.IterOptions{LowerBound: hp, UpperBound: hp.End()})
	if err != nil {
		return fmt.Errorf("notification totals of %s: %w", room, err)
	}
	defer heads.Close()
	var cums *pebble.Iterator
	for heads.First(); heads.Valid(); heads.Next() {
		k := heads.Key()
		th := string(k[len(hp) : len(k)-1])
		head, err := decodeCounts(heads.Value())
		if err != nil {
			return err
		}
		if cums == nil {
			cp := projections.NewKey(Prefix, tagCum).Str(room)
			if cums, err = r.NewIter(&pebble.IterOptions{LowerBound: cp, UpperBound: cp.End()}); err != nil {
				return fmt.Errorf("notification totals of %s: %w", room, err)
			}
			defer cums.Close()
		}
		floor := j.floor(reads[th])
		tp := cumPrefix(room, th)
		var base Counts
		if cums.SeekLT(tp.U64(floor+1)) && inSeqs(cums.Key(), tp) {
			if base, err = decodeCounts(cums.Value()); err != nil {
				return err
			}
		}
		s := get(th)
		s.add(head, 1)
		s.add(base, -1)
	}
	if cums != nil {
		if err := cums.Error(); err != nil {
			return err
		}
	}
	return heads.Error()
}

// inSeqs reports whether k is prefix p followed by a position.
func inSeqs(k []byte, p projections.Key) bool {
	return len(k) == len(p)+8 && bytes.HasPrefix(k, p)
}

// exceptionsAfter applies the user's exceptions after their floor in each
// thread: their own outcome instead of the shared one. Earlier exceptions
// are sought past, not walked.
func exceptionsAfter(r pebble.Reader, user, room string, j joined, reads map[string]uint64, get func(string) *signed) error {
	p := exceptionPrefix(user, room)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return fmt.Errorf("exceptions of %s in %s: %w", user, room, err)
	}
	defer it.Close()
	for ok := it.First(); ok; {
		k := it.Key()
		th := string(k[len(p) : len(k)-9]) // thread, then 0x00 and the seq
		tp := p.Str(th)
		s := get(th)
		for ok = it.SeekGE(tp.U64(j.floor(reads[th]) + 1)); ok && inSeqs(it.Key(), tp); ok = it.Next() {
			x, err := decodeException(it.Value())
			if err != nil {
				return err
			}
			s.add(x.Own.counts(), 1)
			s.add(x.Shared.counts(), -1)
		}
	}
	return it.Error()
}

// maxListScan bounds how many of one room's shared notifications a List
// call walks for one user (a user who muted a busy room would otherwise
// walk its whole history to find nothing).
const maxListScan = 2000

// List returns up to limit of the user's notifications, newest first,
// those before position before (^uint64(0) for the newest), only
// highlights if onlyHighlight, over the rooms they are joined to and from
// when they joined. next is the position to continue before, 0 when there
// is nothing older.
func List(r pebble.Reader, user string, before uint64, limit int, onlyHighlight bool) (out []Notif, next uint64, err error) {
	if before == 0 || limit <= 0 {
		return nil, 0, nil
	}
	rms, err := joinedRooms(r, user)
	if err != nil {
		return nil, 0, err
	}
	// cut: rooms whose walk stopped early were seen only above it, so
	// this page holds nothing at or below it.
	var cut uint64
	for _, jr := range rms {
		got, horizon, err := roomList(r, user, jr, before, limit+1, onlyHighlight)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, got...)
		cut = max(cut, horizon)
	}
	out = slices.DeleteFunc(out, func(n Notif) bool { return n.Seq <= cut })
	slices.SortFunc(out, func(a, b Notif) int {
		switch {
		case a.Seq > b.Seq:
			return -1
		case a.Seq < b.Seq:
			return 1
		}
		return 0
	})
	if len(out) > limit {
		out = out[:limit]
		return out, out[limit-1].Seq, nil
	}
	if cut > 0 {
		return out, cut + 1, nil
	}
	return out, 0, nil
}

// roomList returns up to want of the user's notifications in one room
// before before, newest first: the room's shared ones (unless the user's
// exception says otherwise) and those listed for the user alone. horizon
// is non-zero when the walk stopped after maxListScan entries: nothing at
// or below it was looked at.
func roomList(r pebble.Reader, user string, jr joinedRoom, before uint64, want int, onlyHighlight bool) (out []Notif, horizon uint64, err error) {
	reads, err := threadReads(r, user, jr.room)
	if err != nil {
		return nil, 0, err
	}
	hasExceptions, err := anyUnder(r, exceptionPrefix(user, jr.room))
	if err != nil {
		return nil, 0, err
	}
	add := func(seq uint64, l *listed) {
		if onlyHighlight && !l.Highlight {
			return
		}
		out = append(out, Notif{
			RoomID: jr.room, Seq: seq, Thread: l.Thread, Actions: l.Actions, Highlight: l.Highlight,
			Read: seq <= jr.floor(reads[l.Thread]),
		})
	}
	walk := func(p projections.Key, each func(seq uint64, l *listed) (bool, error)) error {
		upper := p.End()
		if before != ^uint64(0) {
			upper = p.U64(before)
		}
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: p.U64(jr.Join + 1), UpperBound: upper})
		if err != nil {
			return fmt.Errorf("notifications of %s in %s: %w", user, jr.room, err)
		}
		defer it.Close()
		for ok := it.Last(); ok; ok = it.Prev() {
			l, err := decodeListed(it.Value())
			if err != nil {
				return err
			}
			more, err := each(projections.U64At(it.Key()), &l)
			if err != nil || !more {
				return err
			}
		}
		return it.Error()
	}
	scanned, found := 0, 0
	err = walk(listPrefix(jr.room), func(seq uint64, l *listed) (bool, error) {
		if scanned++; scanned > maxListScan {
			horizon = seq
			return false, nil
		}
		if hasExceptions {
			x, has, err := getException(r, exceptionPrefix(user, jr.room).Str(l.Thread).U64(seq))
			if err != nil {
				return false, err
			}
			if has {
				if x.Own&outNotify == 0 {
					return true, nil
				}
				l.Actions, l.Highlight = x.Actions, x.Own&outHighlight != 0
			}
		}
		n := len(out)
		add(seq, l)
		if len(out) > n {
			found++
		}
		return found < want, nil
	})
	if err != nil {
		return nil, 0, err
	}
	extras := 0
	err = walk(extraPrefix(user, jr.room), func(seq uint64, l *listed) (bool, error) {
		if seq <= horizon {
			return false, nil
		}
		n := len(out)
		add(seq, l)
		if len(out) > n {
			extras++
		}
		return extras < want, nil
	})
	return out, horizon, err
}

// getException reads one 'x' entry.
func getException(r pebble.Reader, key []byte) (exception, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return exception{}, false, nil
	}
	if err != nil {
		return exception{}, false, fmt.Errorf("notification exception: %w", err)
	}
	defer closer.Close()
	x, err := decodeException(v)
	return x, err == nil, err
}
