package rooms

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections"
)

// Point-in-time reads of single state entries, for readers that must see
// many rooms as of one log position (the space hierarchy walks a tree of
// rooms at the position its first page was served, so that later pages
// continue the same walk). Each costs a point lookup, plus one bounded
// seek when the entry changed after the position; none replays a room.

// StateEntryAt returns the state event (type, stateKey) in force after every
// event at or before seq, or nil. seq == 0 means the current state.
func StateEntryAt(r pebble.Reader, roomID, evType, sk string, seq uint64) (*Event, error) {
	ref, err := CurrentStateRef(r, roomID, evType, sk)
	if err != nil || ref == nil {
		return nil, err
	}
	at := ref.Seq
	if seq != 0 && at > seq {
		if at, err = historyAt(r, roomID, evType, sk, seq); err != nil || at == 0 {
			return nil, err
		}
	}
	return GetEvent(r, roomID, at)
}

// StateOfTypeAt returns every state event of one type in force at seq
// (0: now), in state key order.
func StateOfTypeAt(r pebble.Reader, roomID, evType string, seq uint64) ([]*Event, error) {
	p := projections.Key(statePrefix(roomID)).Str(evType)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("%s state of %s: %w", evType, roomID, err)
	}
	defer it.Close()
	var out []*Event
	for it.First(); it.Valid(); it.Next() {
		var ref StateRef
		if err := decode(it.Value(), &ref); err != nil {
			return nil, err
		}
		k := it.Key()[len(p):]
		ev, err := stateEventAt(r, roomID, evType, string(k[:len(k)-1]), ref, seq)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			out = append(out, ev)
		}
	}
	return out, it.Error()
}

// MembershipOf returns a user's membership in a room at seq (0: now), ""
// if they had none.
func MembershipOf(r pebble.Reader, roomID, userID string, seq uint64) (string, error) {
	m, err := GetMembership(r, userID, roomID)
	if err != nil || m == nil {
		return "", err
	}
	if seq == 0 || m.Seq <= seq {
		return m.Membership, nil
	}
	return MembershipAt(r, roomID, userID, seq)
}

// JoinedCountAt counts the users whose membership at seq (0: now) is
// join. It reads each member entry of the room once.
func JoinedCountAt(r pebble.Reader, roomID string, seq uint64) (int, error) {
	p := projections.Key(statePrefix(roomID)).Str("m.room.member")
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return 0, fmt.Errorf("members of %s: %w", roomID, err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(p):]
		m, err := MembershipOf(r, roomID, string(k[:len(k)-1]), seq)
		if err != nil {
			return 0, err
		}
		if m == "join" {
			n++
		}
	}
	return n, it.Error()
}
