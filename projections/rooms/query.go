package rooms

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections"
)

// GetRoom returns a room's summary, or nil if the room does not exist.
func GetRoom(r pebble.Reader, roomID string) (*Room, error) {
	v, closer, err := r.Get(roomKey(roomID))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("room %s: %w", roomID, err)
	}
	defer closer.Close()
	var room Room
	if err := decodeRoom(v, &room); err != nil {
		return nil, err
	}
	return &room, nil
}

// CreateEvent returns the room's m.room.create event, or nil if the room
// does not exist.
func CreateEvent(r pebble.Reader, roomID string) (*Event, error) {
	return StateEvent(r, roomID, "m.room.create", "")
}

// GetEvent returns the event at seq in a room, or nil.
func GetEvent(r pebble.Reader, roomID string, seq uint64) (*Event, error) {
	ev, err := projections.Lookup[Event](r, eventKey(roomID, seq))
	if ev != nil {
		ev.RoomID = roomID
	}
	return ev, err
}

// EventByID finds an event by its ID, or nil.
func EventByID(r pebble.Reader, eventID string) (*Event, error) {
	ref, err := LocateEvent(r, eventID)
	if err != nil || ref == nil {
		return nil, err
	}
	return GetEvent(r, ref.RoomID, ref.Seq)
}

// LocateEvent returns the room and position of an event ID, or nil.
func LocateEvent(r pebble.Reader, eventID string) (*EventRef, error) {
	return projections.Lookup[EventRef](r, eventIDKey(eventID))
}

// CurrentStateRef returns the current state entry (type, stateKey), or nil.
func CurrentStateRef(r pebble.Reader, roomID, evType, sk string) (*StateRef, error) {
	return projections.Lookup[StateRef](r, stateKey(roomID, evType, sk))
}

// StateEvent returns the current state event (type, stateKey), or nil.
func StateEvent(r pebble.Reader, roomID, evType, sk string) (*Event, error) {
	ref, err := CurrentStateRef(r, roomID, evType, sk)
	if err != nil || ref == nil {
		return nil, err
	}
	return GetEvent(r, roomID, ref.Seq)
}

// StateContent decodes the content of the current state event into v and
// reports whether it exists.
func StateContent(r pebble.Reader, roomID, evType, sk string, v any) (bool, error) {
	ev, err := StateEvent(r, roomID, evType, sk)
	if err != nil || ev == nil {
		return false, err
	}
	if err := json.Unmarshal(ev.Content, v); err != nil {
		return false, fmt.Errorf("decode %s content: %w", evType, err)
	}
	return true, nil
}

// StateAt returns the room's state after every event at or before seq, in
// (type, state_key) order. seq == 0 means the current state.
func StateAt(r pebble.Reader, roomID string, seq uint64) ([]*Event, error) {
	p := statePrefix(roomID)
	return stateRangeAt(r, roomID, p, p, p.End(), seq)
}

// stateEventAt loads the event holding one state entry as of seq (0: now),
// given the entry's current ref; nil if the entry did not exist yet then.
func stateEventAt(r pebble.Reader, roomID, evType, sk string, ref StateRef, seq uint64) (*Event, error) {
	at := ref.Seq
	if seq != 0 && at > seq {
		var err error
		if at, err = historyAt(r, roomID, evType, sk, seq); err != nil || at == 0 {
			return nil, err
		}
	}
	return GetEvent(r, roomID, at)
}

// historyAt returns the position of the state entry in force at seq, or 0.
func historyAt(r pebble.Reader, roomID, evType, sk string, seq uint64) (uint64, error) {
	p := historyPrefix(roomID, evType, sk)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.U64(seq + 1)})
	if err != nil {
		return 0, fmt.Errorf("state history of %s: %w", roomID, err)
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	return projections.U64At(it.Key()), nil
}

// MembershipAt returns a user's membership in a room after seq ("" if none).
func MembershipAt(r pebble.Reader, roomID, userID string, seq uint64) (string, error) {
	at, err := historyAt(r, roomID, "m.room.member", userID, seq)
	if err != nil || at == 0 {
		return "", err
	}
	ev, err := GetEvent(r, roomID, at)
	if err != nil || ev == nil {
		return "", err
	}
	return ev.Membership(), nil
}

func splitStateKey(b []byte) (evType, sk string) {
	for i, c := range b {
		if c == 0 {
			rest := b[i+1:]
			return string(b[:i]), string(rest[:len(rest)-1])
		}
	}
	return string(b), ""
}

// Membership returns the event's content.membership (member events only).
func (e *Event) Membership() string {
	var c struct {
		Membership string `json:"membership"`
	}
	_ = json.Unmarshal(e.Content, &c)
	return c.Membership
}

// GetMembership returns a user's current membership in a room, or nil.
func GetMembership(r pebble.Reader, userID, roomID string) (*Membership, error) {
	return projections.Lookup[Membership](r, memberKey(userID, roomID))
}

// UserRoom is one room a user has a membership in.
type UserRoom struct {
	RoomID string
	Membership
}

// UserRooms lists every room the user has a membership event in.
func UserRooms(r pebble.Reader, userID string) ([]UserRoom, error) {
	p := memberPrefix(userID)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("rooms of %s: %w", userID, err)
	}
	defer it.Close()
	var out []UserRoom
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(p):]
		ur := UserRoom{RoomID: string(k[:len(k)-1])}
		if err := decode(it.Value(), &ur.Membership); err != nil {
			return nil, err
		}
		out = append(out, ur)
	}
	return out, it.Error()
}

// TxnEventID returns the event the client transaction with this key
// (TxnKey) produced, or "".
func TxnEventID(r pebble.Reader, key []byte) (string, error) {
	v, closer, err := r.Get(key)
	if err == pebble.ErrNotFound {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("txn %q: %w", key, err)
	}
	defer closer.Close()
	return string(v), nil
}

// TxnKeys calls fn with the key of every recorded client transaction (the
// key is valid only during the call).
func TxnKeys(r pebble.Reader, fn func(key []byte)) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{Prefix, tagTxn}, UpperBound: []byte{Prefix, tagTxn + 1}})
	if err != nil {
		return fmt.Errorf("transaction keys: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		fn(it.Key())
	}
	if err := it.Error(); err != nil {
		it.Close()
		return fmt.Errorf("transaction keys: %w", err)
	}
	return it.Close()
}

// Events returns up to limit events of a room with after < seq <= upTo.
// Forward returns the earliest of them in ascending order; backward the
// latest in descending order. more reports whether the range held more.
func Events(r pebble.Reader, roomID string, after, upTo uint64, limit int, backward bool) (evs []*Event, more bool, err error) {
	if upTo <= after {
		return nil, false, nil
	}
	p := eventsPrefix(roomID)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p.U64(after + 1), UpperBound: p.U64(upTo + 1)})
	if err != nil {
		return nil, false, fmt.Errorf("events of %s: %w", roomID, err)
	}
	defer it.Close()
	valid, step := it.First, it.Next
	if backward {
		valid, step = it.Last, it.Prev
	}
	for ok := valid(); ok; ok = step() {
		if len(evs) == limit {
			return evs, true, nil
		}
		var ev Event
		if err := decode(it.Value(), &ev); err != nil {
			return nil, false, err
		}
		ev.RoomID = roomID
		evs = append(evs, &ev)
	}
	return evs, false, it.Error()
}

// JoinedMembers lists the user IDs whose current membership is join.
func JoinedMembers(r pebble.Reader, roomID string) ([]string, error) {
	by, err := MembersByMembership(r, roomID)
	return by["join"], err
}

// MembersByMembership groups the room's members (every user with a member
// event) by their current membership, each list in user ID order.
func MembersByMembership(r pebble.Reader, roomID string) (map[string][]string, error) {
	p := projections.Key(statePrefix(roomID)).Str("m.room.member")
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", roomID, err)
	}
	defer it.Close()
	out := map[string][]string{}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(p):]
		userID := string(k[:len(k)-1])
		m, err := GetMembership(r, userID, roomID)
		if err != nil {
			return nil, err
		}
		if m != nil {
			out[m.Membership] = append(out[m.Membership], userID)
		}
	}
	return out, it.Error()
}
