package rooms

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections"
)

// change is one state transition of a single state entry at a position.
type change struct {
	seq   uint64
	value string
}

// Visibility answers "may this user see the event at seq" by the spec's
// history visibility rules, evaluated against the room's state at that
// event. It loads only the user's membership history and the room's
// history_visibility history (both short), so the cost of a check does not
// grow with the length of the room.
type Visibility struct {
	userID  string
	members []change
	vis     []change

	// forgotten: the user forgot the room (POST /forget) at their current
	// membership, and may no longer read its history (forget.go).
	forgotten bool
}

// LoadVisibility reads what the checks need for one user in one room.
func LoadVisibility(r pebble.Reader, roomID, userID string) (*Visibility, error) {
	v := &Visibility{userID: userID}
	var err error
	if v.members, err = stateHistory(r, roomID, "m.room.member", userID, "membership"); err != nil {
		return nil, err
	}
	if v.vis, err = stateHistory(r, roomID, "m.room.history_visibility", "", "history_visibility"); err != nil {
		return nil, err
	}
	// Only a room one left (or was banned from) can be forgotten.
	if n := len(v.members); n > 0 && (v.members[n-1].value == "leave" || v.members[n-1].value == "ban") {
		if v.forgotten, err = IsForgotten(r, userID, roomID, v.members[n-1].seq); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// stateHistory lists every value one state entry's content field took.
func stateHistory(r pebble.Reader, roomID, evType, sk, field string) ([]change, error) {
	p := historyPrefix(roomID, evType, sk)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("history of %s/%s in %s: %w", evType, sk, roomID, err)
	}
	defer it.Close()
	var out []change
	for it.First(); it.Valid(); it.Next() {
		seq := projections.U64At(it.Key())
		ev, err := GetEvent(r, roomID, seq)
		if err != nil {
			return nil, err
		}
		if ev == nil {
			continue
		}
		var c map[string]json.RawMessage
		_ = json.Unmarshal(ev.Content, &c)
		var val string
		_ = json.Unmarshal(c[field], &val)
		out = append(out, change{seq: seq, value: val})
	}
	return out, it.Error()
}

// at returns the value in force after every change with seq <= upTo.
func at(list []change, upTo uint64) string {
	i := sort.Search(len(list), func(i int) bool { return list[i].seq > upTo })
	if i == 0 {
		return ""
	}
	return list[i-1].value
}

func (v *Visibility) joinedAfter(seq uint64) bool {
	for _, c := range v.members {
		if c.seq > seq && c.value == "join" {
			return true
		}
	}
	return false
}

// allowed applies the spec's rules for one membership and visibility.
func (v *Visibility) allowed(seq uint64, membership, hv string) bool {
	if hv == "" {
		hv = "shared" // unset or not understood
	}
	switch {
	case hv == "world_readable":
		return true
	case membership == "join":
		return true
	case hv == "shared" && v.joinedAfter(seq):
		return true
	case hv == "invited" && membership == "invite":
		return true
	}
	return false
}

// CanSee reports whether the user may see ev, using the state before it;
// for history_visibility events and the user's own membership events, the
// state after it also counts, as the spec says.
func (v *Visibility) CanSee(ev *Event) bool {
	if v.forgotten {
		return at(v.vis, ev.Seq-1) == "world_readable"
	}
	memBefore, hvBefore := at(v.members, ev.Seq-1), at(v.vis, ev.Seq-1)
	if v.allowed(ev.Seq, memBefore, hvBefore) {
		return true
	}
	if ev.StateKey == nil {
		return false
	}
	switch {
	case ev.Type == "m.room.history_visibility" && *ev.StateKey == "":
		return v.allowed(ev.Seq, memBefore, at(v.vis, ev.Seq))
	case ev.Type == "m.room.member" && *ev.StateKey == v.userID:
		return v.allowed(ev.Seq, at(v.members, ev.Seq), hvBefore)
	}
	return false
}

// Membership is the user's current membership ("" if never a member).
func (v *Visibility) Membership() string {
	if len(v.members) == 0 {
		return ""
	}
	return v.members[len(v.members)-1].value
}

// WorldReadable reports whether the room's current visibility is
// world_readable.
func (v *Visibility) WorldReadable() bool {
	return len(v.vis) > 0 && v.vis[len(v.vis)-1].value == "world_readable"
}

// StateUpTo is the position whose state the user may read: the head while
// joined or if the room is world-readable; the moment they left, if they
// had been joined; 0 and false otherwise.
func (v *Visibility) StateUpTo(head uint64) (uint64, bool) {
	if v.forgotten && !v.WorldReadable() {
		return 0, false
	}
	if v.Membership() == "join" || v.WorldReadable() {
		return head, true
	}
	if n := len(v.members); n >= 2 && (v.members[n-1].value == "leave" || v.members[n-1].value == "ban") {
		for i := n - 2; i >= 0; i-- {
			if v.members[i].value == "join" {
				return v.members[n-1].seq, true
			}
		}
	}
	return 0, false
}

// Filter keeps the events the user may see.
func (v *Visibility) Filter(evs []*Event) []*Event {
	out := evs[:0:0]
	for _, ev := range evs {
		if v.CanSee(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// maxScanFactor bounds how many invisible events one page may skip over
// before it returns what it has (with a token to continue).
const maxScanFactor = 20

// VisibleEvents is Events filtered by v: up to limit visible events in
// (after, upTo], earliest first when forward, latest first when backward.
// last is the position of the last event examined, where a next page
// continues; more reports whether the range may hold further events.
func VisibleEvents(r pebble.Reader, v *Visibility, roomID string, after, upTo uint64, limit int, backward bool) (evs []*Event, last uint64, more bool, err error) {
	if limit <= 0 {
		return nil, 0, false, nil
	}
	budget := limit*maxScanFactor + 100
	for budget > 0 {
		batch, batchMore, err := Events(r, roomID, after, upTo, min(max(limit-len(evs), 1)*2, budget), backward)
		if err != nil {
			return nil, 0, false, err
		}
		for i, ev := range batch {
			last = ev.Seq
			if v.CanSee(ev) {
				evs = append(evs, ev)
				if len(evs) == limit {
					return evs, last, i < len(batch)-1 || batchMore, nil
				}
			}
		}
		budget -= len(batch)
		if !batchMore || len(batch) == 0 {
			return evs, last, false, nil
		}
		if backward {
			upTo = last - 1
		} else {
			after = last
		}
	}
	return evs, last, true, nil
}
