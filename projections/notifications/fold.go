package notifications

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
	"chronicle/projections/pushrules"
	"chronicle/projections/rooms"
)

func applyEvent(w projections.Writer, rec *rlog.Record) error {
	f, p, err := facts.RoomEventOf(rec)
	if err != nil {
		return err
	}
	var members []member
	read := false // members holds the room's list after this event
	if p.Type == "m.room.member" && p.StateKey != nil {
		if members, read, err = applyMember(w, f.RoomID, *p.StateKey, p.Content, rec.Seq); err != nil {
			return err
		}
	}
	thread := ""
	if mayRelate(p.Content) {
		if thread, err = threadOf(w, f.RoomID, f.EventID); err != nil {
			return err
		}
	}
	var list *memberList // when read: members with their evaluators
	if !read {
		if list, err = readMembers(w, f.RoomID); err != nil {
			return err
		}
		if list != nil {
			members = list.members
		}
	}
	others := len(members)
	for _, mb := range members {
		if mb.User == p.Sender {
			// Sending marks the sender's notifications in this thread as
			// read (the spec: "either by using the API or by sending an
			// event").
			if err := w.Set(threadPrefix(p.Sender, f.RoomID).Str(thread), u64(rec.Seq), nil); err != nil {
				return err
			}
			others--
		}
	}
	if others == 0 {
		return nil // nobody to notify; whoever joins later starts after this
	}
	ev := pushrules.NewEvent(f.RoomID, p.Sender, p.Type, p.StateKey, p.Content)
	room := &memberRoom{roomState: &roomState{r: w, roomID: f.RoomID, version: f.RoomVersion, members: len(members)}}
	shared := pushrules.Shared(room, ev)
	if room.err != nil {
		return room.err
	}
	so := matchOutcome(shared)
	if so != 0 {
		if err := addShared(w, f.RoomID, thread, rec.Seq, so, shared); err != nil {
			return err
		}
	}
	// Each other member's own result, where it differs from the shared
	// one, is an exception.
	for i, mb := range members {
		if mb.User == p.Sender {
			continue
		}
		room.user, room.displayName = mb.User, mb.DisplayName
		var own *pushrules.Match
		if mb.OwnRules {
			eval, err := pushrules.LoadEvaluator(w, mb.User)
			if err != nil {
				return err
			}
			own = eval.Match(room, ev)
		} else if !pushrules.AnyPerMember(room, ev) {
			// No per-member rule can match this event (decided once per
			// event): the shared result, without looking up the member's
			// evaluator.
			continue
		} else {
			var eval *pushrules.Evaluator
			if list != nil {
				eval = list.evals[i]
			} else {
				eval = pushrules.DefaultEvaluator(mb.User)
			}
			if own = eval.PerMember(room, ev); own == nil {
				continue // the shared result
			}
		}
		if room.err != nil {
			return room.err
		}
		oo := matchOutcome(own)
		if oo == so && (oo&outNotify == 0 || bytes.Equal(own.Actions, shared.Actions)) {
			continue
		}
		x := exception{Own: oo, Shared: so}
		if oo&outNotify != 0 {
			x.Actions = own.Actions
		}
		if err := w.Set(exceptionPrefix(mb.User, f.RoomID).Str(thread).U64(rec.Seq), x.encode(), nil); err != nil {
			return err
		}
		if oo&outNotify != 0 && so&outNotify == 0 {
			// Notified where the shared result is not: listed for them
			// alone.
			b, err := listed{Thread: thread, Actions: own.Actions, Highlight: own.Highlight}.encode()
			if err != nil {
				return err
			}
			if err := w.Set(extraPrefix(mb.User, f.RoomID).U64(rec.Seq), b, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func matchOutcome(m *pushrules.Match) outcome {
	if m == nil {
		return 0
	}
	return outcomeOf(m.Notify, m.Highlight)
}

// addShared adds an event to the room's shared totals of its thread (the
// head and the running total at seq) and, if it notifies, to the room's
// list.
func addShared(w projections.Writer, room, thread string, seq uint64, o outcome, m *pushrules.Match) error {
	hk := headPrefix(room).Str(thread)
	head, err := getCounts(w, hk)
	if err != nil {
		return err
	}
	c := o.counts()
	head.Notify += c.Notify
	head.Highlight += c.Highlight
	v := head.encode()
	if err := w.Set(hk, v, nil); err != nil {
		return err
	}
	if err := w.Set(cumPrefix(room, thread).U64(seq), v, nil); err != nil {
		return err
	}
	if o&outNotify == 0 {
		return nil
	}
	b, err := listed{Thread: thread, Actions: m.Actions, Highlight: m.Highlight}.encode()
	if err != nil {
		return err
	}
	return w.Set(listPrefix(room).U64(seq), b, nil)
}

// getCounts reads a Counts value (zero when absent).
func getCounts(r pebble.Reader, key []byte) (Counts, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return Counts{}, nil
	}
	if err != nil {
		return Counts{}, fmt.Errorf("notification totals: %w", err)
	}
	defer closer.Close()
	return decodeCounts(v)
}

// listed is a room's 'n' entry (and a member's 'y' entry): an event that
// notifies. It is written for every notifying event, so it has a plain
// layout rather than msgpack: a flag byte (1: highlight), the thread as a
// uvarint length and bytes, then the actions' JSON.
type listed struct {
	Thread    string
	Actions   json.RawMessage
	Highlight bool
}

func (l listed) encode() ([]byte, error) {
	b := make([]byte, 0, 2+len(l.Thread)+len(l.Actions))
	flag := byte(0)
	if l.Highlight {
		flag = 1
	}
	b = append(b, flag)
	b = binary.AppendUvarint(b, uint64(len(l.Thread)))
	b = append(b, l.Thread...)
	return append(b, l.Actions...), nil
}

// decodeListed reads an entry; the result does not alias v.
func decodeListed(v []byte) (listed, error) {
	if len(v) < 2 {
		return listed{}, fmt.Errorf("notification entry has %d bytes", len(v))
	}
	n, k := binary.Uvarint(v[1:])
	if k <= 0 || uint64(len(v)-1-k) < n {
		return listed{}, fmt.Errorf("notification entry is truncated")
	}
	start := 1 + k
	return listed{
		Highlight: v[0] == 1,
		Thread:    string(v[start : start+int(n)]),
		Actions:   json.RawMessage(bytes.Clone(v[start+int(n):])),
	}, nil
}

// exception is a member's 'x' entry for one event: their own outcome and
// the shared one it replaces, and their actions when they are notified.
type exception struct {
	Own     outcome
	Shared  outcome
	Actions json.RawMessage
}

func (x exception) encode() []byte {
	b := []byte{byte(x.Own), byte(x.Shared)}
	return append(b, x.Actions...)
}

func decodeException(v []byte) (exception, error) {
	if len(v) < 2 {
		return exception{}, fmt.Errorf("exception entry has %d bytes", len(v))
	}
	x := exception{Own: outcome(v[0]), Shared: outcome(v[1])}
	if len(v) > 2 {
		x.Actions = json.RawMessage(bytes.Clone(v[2:])) // v is the store's until its closer closes
	}
	return x, nil
}

// applyMember keeps the room's member list (with display names, for
// contains_display_name) and each member's 'j' entry. A member who leaves
// loses everything of theirs in the room. When it read the list it
// returns it as it is after the event (read true), so the fold does not
// read it again.
func applyMember(w projections.Writer, room, user string, content json.RawMessage, seq uint64) (ms members, read bool, err error) {
	var c struct {
		Membership  string `json:"membership"`
		DisplayName any    `json:"displayname"`
	}
	_ = json.Unmarshal(content, &c)
	_, wasJoined, err := getJoined(w, user, room)
	if err != nil {
		return nil, false, err
	}
	if c.Membership != "join" && !wasJoined {
		return nil, false, nil
	}
	if ms, err = joinedMembers(w, room); err != nil {
		return nil, false, err
	}
	if c.Membership != "join" {
		ms = ms.without(user)
		if err := putMembers(w, room, ms); err != nil {
			return nil, false, err
		}
		return ms, true, clearRoom(w, user, room)
	}
	own, err := pushrules.HasOwnRules(w, user)
	if err != nil {
		return nil, false, err
	}
	name, _ := c.DisplayName.(string)
	ms = ms.with(member{User: user, DisplayName: name, OwnRules: own})
	if err := putMembers(w, room, ms); err != nil {
		return nil, false, err
	}
	if wasJoined {
		return ms, true, nil // a profile change: the member's positions stand
	}
	return ms, true, w.Set(joinedPrefix(user).Str(room), joined{Join: seq}.encode(), nil)
}

// clearRoom drops everything of user's in room (they left).
func clearRoom(w projections.Writer, user, room string) error {
	if err := w.Delete(joinedPrefix(user).Str(room), nil); err != nil {
		return err
	}
	for _, p := range []projections.Key{threadPrefix(user, room), exceptionPrefix(user, room), extraPrefix(user, room)} {
		found, err := anyUnder(w, p)
		if err != nil {
			return err
		}
		if found {
			if err := w.DeleteRange(p, p.End(), nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// anyUnder reports whether any key starts with p.
func anyUnder(r pebble.Reader, p projections.Key) (bool, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return false, err
	}
	found := it.First()
	return found, it.Close()
}

// applyPushRules refreshes the own-rules flag of the user in the member
// list of every room they are joined to, after the pushrules projection (folded first) took
// the change.
func applyPushRules(w projections.Writer, rec *rlog.Record) error {
	var f struct {
		UserID string `msgpack:"u"`
	}
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	own, err := pushrules.HasOwnRules(w, f.UserID)
	if err != nil {
		return err
	}
	rms, err := joinedRooms(w, f.UserID)
	if err != nil {
		return err
	}
	for _, jr := range rms {
		members, err := joinedMembers(w, jr.room)
		if err != nil {
			return err
		}
		if i, ok := members.find(f.UserID); ok && members[i].OwnRules != own {
			members[i].OwnRules = own
			if err := putMembers(w, jr.room, members); err != nil {
				return err
			}
		}
	}
	return nil
}

type joinedRoom struct {
	room string
	joined
}

// joinedRooms lists the rooms user is joined to, in room ID order.
func joinedRooms(r pebble.Reader, user string) ([]joinedRoom, error) {
	p := joinedPrefix(user)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("rooms of %s: %w", user, err)
	}
	defer it.Close()
	var out []joinedRoom
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		j, err := decodeJoined(it.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, joinedRoom{room: string(k[len(p) : len(k)-1]), joined: j})
	}
	return out, it.Error()
}

// applyReceipt moves the reader's read position: an unthreaded receipt
// reads every thread of the room up to the event, a threaded one ("main"
// is the main timeline) only its thread. Positions never move backwards.
func applyReceipt(w projections.Writer, rec *rlog.Record) error {
	var f facts.ReceiptSet
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	if f.Type != "m.read" && f.Type != "m.read.private" {
		return nil
	}
	ref, err := rooms.LocateEvent(w, f.EventID)
	if err != nil || ref == nil || ref.RoomID != f.RoomID {
		return err // the machine checked the event; nothing to do otherwise
	}
	j, ok, err := getJoined(w, f.UserID, f.RoomID)
	if err != nil || !ok {
		return err
	}
	if f.ThreadID == "" {
		if ref.Seq <= j.ReadAll {
			return nil
		}
		j.ReadAll = ref.Seq
		return w.Set(joinedPrefix(f.UserID).Str(f.RoomID), j.encode(), nil)
	}
	thread := f.ThreadID
	if thread == "main" {
		thread = ""
	}
	tk := threadPrefix(f.UserID, f.RoomID).Str(thread)
	cur, _, err := getU64(w, tk)
	if err != nil || ref.Seq <= cur {
		return err
	}
	return w.Set(tk, u64(ref.Seq), nil)
}
