package rooms

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections"
)

// The timestamp index answers /timestamp_to_event without a scan of the
// room: one empty entry per event under (room, origin_server_ts, seq).
// Timestamps come from the clocks of the API nodes that accepted each
// event, so they are not ordered like positions; the index orders by time.

func tsPrefix(roomID string) projections.Key { return key(tagTimestamp, 0, roomID) }

// tsOrder maps a signed timestamp to an unsigned one with the same order.
func tsOrder(ts int64) uint64 { return uint64(ts) ^ (1 << 63) }

func tsKey(roomID string, ts int64, seq uint64) []byte {
	k := binary.BigEndian.AppendUint64(key(tagTimestamp, 16, roomID), tsOrder(ts))
	return binary.BigEndian.AppendUint64(k, seq)
}

func indexTimestamp(w projections.Writer, roomID string, ev *Event) error {
	if err := w.Set(tsKey(roomID, ev.OriginServerTS, ev.Seq), nil, nil); err != nil {
		return fmt.Errorf("timestamp index of %s: %w", ev.EventID, err)
	}
	return nil
}

// maxTimestampScan bounds how many events one lookup examines.
const maxTimestampScan = 10000

// EventNearTimestamp returns the first event with origin_server_ts >= ts
// (forward) or the last with origin_server_ts <= ts (backward) for which
// keep is true, among events at or before upTo; nil if there is none within
// the scan bound.
func EventNearTimestamp(r pebble.Reader, roomID string, ts int64, backward bool, upTo uint64, keep func(*Event) bool) (*Event, error) {
	p := tsPrefix(roomID)
	opts := &pebble.IterOptions{LowerBound: p.U64(tsOrder(ts)), UpperBound: p.End()}
	if backward {
		opts = &pebble.IterOptions{LowerBound: p, UpperBound: p.U64(tsOrder(ts) + 1)}
		if tsOrder(ts) == ^uint64(0) {
			opts.UpperBound = p.End()
		}
	}
	it, err := r.NewIter(opts)
	if err != nil {
		return nil, fmt.Errorf("timestamps of %s: %w", roomID, err)
	}
	defer it.Close()
	valid, step := it.First, it.Next
	if backward {
		valid, step = it.Last, it.Prev
	}
	n := 0
	for ok := valid(); ok && n < maxTimestampScan; ok = step() {
		n++
		seq := projections.U64At(it.Key())
		if seq > upTo {
			continue
		}
		ev, err := GetEvent(r, roomID, seq)
		if err != nil {
			return nil, err
		}
		if ev != nil && keep(ev) {
			return ev, nil
		}
	}
	return nil, it.Error()
}
