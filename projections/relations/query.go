package relations

import (
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"

	"chronicle/projections"
)

// GetSummary returns what is aggregated for a parent, or nil if it has no
// indexed children.
func GetSummary(r pebble.Reader, roomID, parentID string) (*Summary, error) {
	return projections.Lookup[Summary](r, summaryKey(roomID, parentID))
}

// GetRelation returns what an event relates to, or nil.
func GetRelation(r pebble.Reader, roomID, childID string) (*Relation, error) {
	return projections.Lookup[Relation](r, relationKey(roomID, childID))
}

// seqRange bounds keys under p to positions in (after, upTo].
func seqRange(p projections.Key, after, upTo uint64) *pebble.IterOptions {
	hi := p.End()
	if upTo < math.MaxUint64 {
		hi = p.U64(upTo + 1)
	}
	return &pebble.IterOptions{LowerBound: p.U64(after + 1), UpperBound: hi}
}

// iterate visits the entries of p with positions in (after, upTo],
// ascending or descending, until fn returns false.
func iterate(r pebble.Reader, p projections.Key, after, upTo uint64, backward bool, fn func(seq uint64, val []byte) (bool, error)) error {
	if upTo <= after {
		return nil
	}
	it, err := r.NewIter(seqRange(p, after, upTo))
	if err != nil {
		return fmt.Errorf("relations index: %w", err)
	}
	defer it.Close()
	step := it.Next
	ok := it.First()
	if backward {
		step, ok = it.Prev, it.Last()
	}
	for ; ok; ok = step() {
		more, err := fn(projections.U64At(it.Key()), it.Value())
		if err != nil || !more {
			return err
		}
	}
	return it.Error()
}

// Scan visits the children of a parent with positions in (after, upTo],
// earliest first or (backward) latest first, until fn returns false. With
// relType "" it visits every child; otherwise those of relType, and with
// evType also set those of that event type too.
func Scan(r pebble.Reader, roomID, parentID, relType, evType string, after, upTo uint64, backward bool, fn func(*Child) (bool, error)) error {
	return iterate(r, scanPrefix(roomID, parentID, relType, evType), after, upTo, backward, func(seq uint64, val []byte) (bool, error) {
		var c Child
		if err := msgpack.Unmarshal(val, &c); err != nil {
			return false, fmt.Errorf("decode child: %w", err)
		}
		c.Seq = seq
		return fn(&c)
	})
}

// Descendants returns the events related to parent directly or through up
// to depth-1 intermediate events, with positions at most upTo, in position
// order. The filters apply to every level: a matching event reached only
// through a non-matching one is not included (as the spec says for
// recursive /relations). It stops after max events and reports truncated.
func Descendants(r pebble.Reader, roomID, parentID, relType, evType string, depth int, upTo uint64, max int) (out []*Child, truncated bool, err error) {
	level := []string{parentID}
	for d := 0; d < depth && len(level) > 0; d++ {
		var next []string
		for _, p := range level {
			err := Scan(r, roomID, p, relType, evType, 0, upTo, false, func(c *Child) (bool, error) {
				if len(out) >= max {
					truncated = true
					return false, nil
				}
				out = append(out, c)
				next = append(next, c.EventID)
				return true, nil
			})
			if err != nil {
				return nil, false, err
			}
			if truncated {
				break
			}
		}
		if truncated {
			break
		}
		level = next
	}
	// A child always follows its parent in the log, so no event is reached
	// twice (each event has one parent); sort merges the levels.
	slices.SortFunc(out, func(a, b *Child) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	return out, truncated, nil
}

// Threads visits a room's threads whose latest event is at or before upTo,
// the most recently active first, until fn returns false.
func Threads(r pebble.Reader, roomID string, upTo uint64, fn func(*ThreadRef) (bool, error)) error {
	return iterate(r, activityPrefix(roomID), 0, upTo, true, func(seq uint64, val []byte) (bool, error) {
		var t ThreadRef
		if err := msgpack.Unmarshal(val, &t); err != nil {
			return false, fmt.Errorf("decode thread: %w", err)
		}
		t.Latest = seq
		return fn(&t)
	})
}

// Participated reports whether user sent an event in the thread of root
// (being the root's sender also counts for the spec; callers check that).
func Participated(r pebble.Reader, roomID, rootID, userID string) (bool, error) {
	n, err := readU64(r, participantKey(roomID, rootID, userID))
	return n > 0, err
}

// Edits visits the valid edits of an original event, the most recent
// (origin_server_ts, then event ID) first, until fn returns false.
func Edits(r pebble.Reader, roomID, originalID string, fn func(*Edit) (bool, error)) error {
	p := editPrefix(roomID, originalID)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return fmt.Errorf("edits of %s: %w", originalID, err)
	}
	defer it.Close()
	for ok := it.Last(); ok; ok = it.Prev() {
		var e Edit
		if err := msgpack.Unmarshal(it.Value(), &e); err != nil {
			return fmt.Errorf("decode edit: %w", err)
		}
		more, err := fn(&e)
		if err != nil || !more {
			return err
		}
	}
	return it.Error()
}
