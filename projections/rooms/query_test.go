package rooms_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/rooms"
	"chronicle/raft/machine"
	"chronicle/raft/machine/machinetest"
)

// driver applies commands to a real machine (machinetest).
type driver struct{ *machinetest.Driver }

func newDriver(t *testing.T) *driver {
	t.Helper()
	d := &driver{machinetest.New(t)}
	d.Register(alice, bob, carol)
	return d
}

const (
	alice = "@alice:localhost"
	bob   = "@bob:localhost"
	carol = "@carol:localhost"
)

func (d *driver) createRoom(actor string, name string) *machine.Result {
	d.T.Helper()
	return d.Do(machine.CmdCreateRoom, actor, &machine.CreateRoom{Preset: "public_chat", Name: &name})
}

func (d *driver) rename(actor, roomID, name string) *machine.Result {
	d.T.Helper()
	sk := ""
	return d.Do(machine.CmdSendEvent, actor, &machine.SendEvent{RoomID: roomID, Type: "m.room.name", StateKey: &sk,
		Content: json.RawMessage(fmt.Sprintf(`{"name":%q}`, name))})
}

func (d *driver) say(actor, roomID, body string) *machine.Result {
	d.T.Helper()
	return d.Do(machine.CmdSendEvent, actor, &machine.SendEvent{RoomID: roomID, Type: "m.room.message",
		Content: json.RawMessage(fmt.Sprintf(`{"msgtype":"m.text","body":%q}`, body)), TxnID: fmt.Sprint("txn", d.Idx)})
}

func (d *driver) member(actor, roomID, target, membership string) *machine.Result {
	d.T.Helper()
	return d.Do(machine.CmdMembership, actor, &machine.Membership{RoomID: roomID, Target: target, Membership: membership})
}

func (d *driver) view(fn func(r pebble.Reader)) {
	d.T.Helper()
	if err := d.M.View(func(r pebble.Reader) error { fn(r); return nil }); err != nil {
		d.T.Fatal(err)
	}
}

// nameAt returns the room name in the state at seq ("" if none).
func nameAt(t *testing.T, r pebble.Reader, roomID string, seq uint64) string {
	t.Helper()
	st, err := rooms.StateAt(r, roomID, seq)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range st {
		if ev.Type == "m.room.name" {
			var c struct{ Name string }
			if err := json.Unmarshal(ev.Content, &c); err != nil {
				t.Fatal(err)
			}
			return c.Name
		}
	}
	return ""
}

func TestStateAtPositions(t *testing.T) {
	d := newDriver(t)
	beforeRoom := d.Do(machine.CmdLogin, alice, &machine.Login{DeviceID: "E"}).Seq
	created := d.createRoom(alice, "n0")
	room := created.RoomID
	other := d.createRoom(bob, "other").RoomID

	type point struct {
		seq  uint64
		name string
	}
	points := []point{{created.Seq, "n0"}}
	points = append(points, point{d.say(bob, other, "unrelated").Seq, "n0"})
	var renames []*machine.Result
	for i, name := range []string{"n1", "n2", "n3"} {
		res := d.rename(alice, room, name)
		renames = append(renames, res)
		points = append(points, point{res.Seq, name})
		points = append(points, point{d.say(alice, room, fmt.Sprint("after rename ", i)).Seq, name})
		d.rename(bob, other, fmt.Sprint("other ", i))
		points = append(points, point{d.say(bob, other, "unrelated").Seq, name})
	}

	d.view(func(r pebble.Reader) {
		for _, p := range points {
			if got := nameAt(t, r, room, p.seq); got != p.name {
				t.Errorf("name at %d = %q, want %q", p.seq, got, p.name)
			}
			if p.seq > renames[0].Seq {
				// Between two positions the state does not move.
				if got := nameAt(t, r, room, p.seq-1); got == "" {
					t.Errorf("no name at %d", p.seq-1)
				}
			}
		}
		if got := nameAt(t, r, room, 0); got != "n3" {
			t.Errorf("current name %q, want n3", got)
		}
		if got := nameAt(t, r, other, 0); got != "other 2" {
			t.Errorf("other room's current name %q", got)
		}
		// Before the room existed its state is empty.
		if st, err := rooms.StateAt(r, room, beforeRoom); err != nil || len(st) != 0 {
			t.Errorf("state before creation: %d entries (%v)", len(st), err)
		}
		// At the create event's position only the create event.
		create, err := rooms.StateEvent(r, room, "m.room.create", "")
		if err != nil || create == nil {
			t.Fatalf("create event: %v", err)
		}
		st, err := rooms.StateAt(r, room, create.Seq)
		if err != nil || len(st) != 1 || st[0].Type != "m.room.create" {
			t.Errorf("state at the create event: %d entries (%v)", len(st), err)
		}
		// State after creation holds the preset's entries, sorted by
		// (type, state_key), and each entry is the event at its position.
		full, err := rooms.StateAt(r, room, created.Seq)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, ev := range full {
			types = append(types, ev.Type)
			if ev.RoomID != room || ev.StateKey == nil || ev.Seq > created.Seq {
				t.Errorf("state entry %+v", ev)
			}
		}
		want := []string{"m.room.create", "m.room.guest_access", "m.room.history_visibility", "m.room.join_rules", "m.room.member", "m.room.name", "m.room.power_levels"}
		if !slices.Equal(types, want) {
			t.Errorf("state types at creation %v, want %v", types, want)
		}
		// Each rename records what it replaced.
		for i, res := range renames {
			ev, err := rooms.EventByID(r, res.EventID)
			if err != nil || ev == nil {
				t.Fatalf("rename %d: %v", i, err)
			}
			prevName := fmt.Sprintf(`{"name":"n%d"}`, i)
			if string(ev.PrevContent) != prevName || ev.PrevSender != alice || ev.Seq != res.Seq {
				t.Errorf("rename %d: prev content %s sender %s seq %d", i, ev.PrevContent, ev.PrevSender, ev.Seq)
			}
			if i > 0 && ev.ReplacesState != renames[i-1].EventID {
				t.Errorf("rename %d replaces %s, want %s", i, ev.ReplacesState, renames[i-1].EventID)
			}
		}
		ref, err := rooms.CurrentStateRef(r, room, "m.room.name", "")
		if err != nil || ref == nil || ref.EventID != renames[2].EventID || ref.Seq != renames[2].Seq {
			t.Errorf("current name ref %+v (%v)", ref, err)
		}
		var name struct{ Name string }
		if ok, err := rooms.StateContent(r, room, "m.room.name", "", &name); !ok || err != nil || name.Name != "n3" {
			t.Errorf("StateContent name %q %v %v", name.Name, ok, err)
		}
		if ok, err := rooms.StateContent(r, room, "m.room.topic", "", &name); ok || err != nil {
			t.Errorf("StateContent of a missing entry: %v %v", ok, err)
		}
	})
}

func TestMembershipHistory(t *testing.T) {
	d := newDriver(t)
	room := d.createRoom(alice, "r").RoomID
	before := d.say(alice, room, "before bob").Seq
	join1 := d.member(bob, room, bob, "join")
	mid1 := d.say(bob, room, "hi").Seq
	leave := d.member(bob, room, bob, "leave")
	mid2 := d.say(alice, room, "bob left").Seq
	join2 := d.member(bob, room, bob, "join")
	// carol: join, kicked, banned, unbanned.
	cj := d.member(carol, room, carol, "join").Seq
	ck := d.Do(machine.CmdMembership, alice, &machine.Membership{RoomID: room, Target: carol, Membership: "kick", Reason: "r"}).Seq
	cb := d.member(alice, room, carol, "ban").Seq
	cu := d.member(alice, room, carol, "leave").Seq
	head := d.say(alice, room, "end").Seq

	d.view(func(r pebble.Reader) {
		for _, c := range []struct {
			user string
			seq  uint64
			want string
		}{
			{bob, before, ""}, {bob, join1.Seq - 1, ""}, {bob, join1.Seq, "join"}, {bob, mid1, "join"},
			{bob, leave.Seq - 1, "join"}, {bob, leave.Seq, "leave"}, {bob, mid2, "leave"},
			{bob, join2.Seq - 1, "leave"}, {bob, join2.Seq, "join"}, {bob, head, "join"},
			{carol, cj - 1, ""}, {carol, cj, "join"}, {carol, ck, "leave"}, {carol, cb, "ban"}, {carol, cu, "leave"}, {carol, head, "leave"},
			{alice, 1, ""}, {alice, head, "join"},
		} {
			got, err := rooms.MembershipAt(r, room, c.user, c.seq)
			if err != nil || got != c.want {
				t.Errorf("membership of %s at %d = %q (%v), want %q", c.user, c.seq, got, err, c.want)
			}
		}
		// StateAt agrees with MembershipAt.
		for _, seq := range []uint64{join1.Seq, leave.Seq, mid2, join2.Seq} {
			st, err := rooms.StateAt(r, room, seq)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := rooms.MembershipAt(r, room, bob, seq)
			found := false
			for _, ev := range st {
				if ev.Type == "m.room.member" && *ev.StateKey == bob {
					found = true
					if ev.Membership() != want {
						t.Errorf("StateAt(%d) bob %q, MembershipAt %q", seq, ev.Membership(), want)
					}
				}
			}
			if !found {
				t.Errorf("StateAt(%d) has no member event for bob", seq)
			}
		}
		m, err := rooms.GetMembership(r, bob, room)
		if err != nil || m == nil || m.Membership != "join" || m.Seq != join2.Seq || m.EventID != join2.EventID {
			t.Errorf("current membership of bob %+v (%v)", m, err)
		}
		joined, err := rooms.JoinedMembers(r, room)
		if err != nil || !slices.Equal(joined, []string{alice, bob}) {
			t.Errorf("joined members %v (%v)", joined, err)
		}
		ur, err := rooms.UserRooms(r, carol)
		if err != nil || len(ur) != 1 || ur[0].RoomID != room || ur[0].Membership.Membership != "leave" || ur[0].Seq != cu {
			t.Errorf("carol's rooms %+v (%v)", ur, err)
		}
		if m, err := rooms.GetMembership(r, bob, "!nope:localhost"); m != nil || err != nil {
			t.Errorf("membership in unknown room %+v %v", m, err)
		}
	})
}

func seqs(evs []*rooms.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Seq
	}
	return out
}

func TestEventsPaging(t *testing.T) {
	d := newDriver(t)
	room := d.createRoom(alice, "r").RoomID
	other := d.createRoom(bob, "o").RoomID
	for i := range 12 {
		d.say(alice, room, fmt.Sprint("m", i))
		if i%3 == 0 {
			d.say(bob, other, "noise")
		}
	}
	head := d.say(bob, other, "last noise").Seq

	d.view(func(r pebble.Reader) {
		all, more, err := rooms.Events(r, room, 0, head, 1000, false)
		if err != nil || more {
			t.Fatalf("all events: more %v err %v", more, err)
		}
		if len(all) != 7+12 { // create, member, power levels, 3 preset entries, name; 12 messages
			t.Fatalf("%d events in the room", len(all))
		}
		for i, ev := range all {
			if ev.RoomID != room {
				t.Errorf("event %s from room %s", ev.EventID, ev.RoomID)
			}
			if i > 0 && ev.Seq <= all[i-1].Seq {
				t.Errorf("forward order broken at %d", i)
			}
			if ev.Depth != int64(i+1) {
				t.Errorf("event %d depth %d", i, ev.Depth)
			}
		}
		allSeqs := seqs(all)
		rev := slices.Clone(allSeqs)
		slices.Reverse(rev)

		if evs, more, _ := rooms.Events(r, room, 0, head, len(all), false); len(evs) != len(all) || more {
			t.Errorf("limit == count: %d events, more %v", len(evs), more)
		}
		if evs, more, _ := rooms.Events(r, room, 0, head, len(all)-1, false); !slices.Equal(seqs(evs), allSeqs[:len(all)-1]) || !more {
			t.Errorf("limit == count-1 forward: %v, more %v", seqs(evs), more)
		}
		if evs, more, _ := rooms.Events(r, room, 0, head, 5, true); !slices.Equal(seqs(evs), rev[:5]) || !more {
			t.Errorf("backward limit 5: %v, more %v", seqs(evs), more)
		}
		if evs, more, _ := rooms.Events(r, room, 0, head, 1000, true); !slices.Equal(seqs(evs), rev) || more {
			t.Errorf("backward all: more %v", more)
		}
		// Bounds: after is exclusive, upTo inclusive.
		k := all[8].Seq
		if evs, _, _ := rooms.Events(r, room, k, head, 1, false); len(evs) != 1 || evs[0].Seq != all[9].Seq {
			t.Errorf("first after %d: %v", k, seqs(evs))
		}
		if evs, _, _ := rooms.Events(r, room, 0, k, 1, true); len(evs) != 1 || evs[0].Seq != k {
			t.Errorf("last up to %d: %v", k, seqs(evs))
		}
		if evs, more, _ := rooms.Events(r, room, k, k, 10, false); len(evs) != 0 || more {
			t.Errorf("empty range: %v, more %v", seqs(evs), more)
		}
		if evs, more, _ := rooms.Events(r, room, 0, head, 0, false); len(evs) != 0 || !more {
			t.Errorf("limit 0: %v, more %v", seqs(evs), more)
		}
		if evs, more, _ := rooms.Events(r, "!nope:localhost", 0, head, 10, true); len(evs) != 0 || more {
			t.Errorf("unknown room: %v", seqs(evs))
		}

		// Paging backward in threes, as /messages does, visits every event
		// once, newest first.
		var got []uint64
		upTo := head
		for page := 0; ; page++ {
			evs, more, err := rooms.Events(r, room, 0, upTo, 3, true)
			if err != nil || page > 20 {
				t.Fatalf("page %d: %v", page, err)
			}
			got = append(got, seqs(evs)...)
			if !more {
				break
			}
			upTo = evs[len(evs)-1].Seq - 1
		}
		if !slices.Equal(got, rev) {
			t.Errorf("backward pages %v, want %v", got, rev)
		}
		// And forward in fours.
		got = got[:0]
		after := uint64(0)
		for page := 0; ; page++ {
			evs, more, err := rooms.Events(r, room, after, head, 4, false)
			if err != nil || page > 20 {
				t.Fatalf("page %d: %v", page, err)
			}
			got = append(got, seqs(evs)...)
			if !more {
				break
			}
			after = evs[len(evs)-1].Seq
		}
		if !slices.Equal(got, allSeqs) {
			t.Errorf("forward pages %v, want %v", got, allSeqs)
		}
		// A single event by position and by ID agree.
		ev, err := rooms.GetEvent(r, room, all[10].Seq)
		if err != nil || ev == nil || ev.EventID != all[10].EventID {
			t.Fatalf("GetEvent: %+v %v", ev, err)
		}
		byID, err := rooms.EventByID(r, ev.EventID)
		if err != nil || byID == nil || byID.Seq != ev.Seq || byID.RoomID != room {
			t.Fatalf("EventByID: %+v %v", byID, err)
		}
		if ev, err := rooms.GetEvent(r, other, all[10].Seq); ev != nil || err != nil {
			t.Errorf("event of one room found in another: %+v %v", ev, err)
		}
		// The room summary points at the latest event.
		summary, err := rooms.GetRoom(r, room)
		if err != nil || summary == nil || summary.LastSeq != all[len(all)-1].Seq || summary.LastEventID != all[len(all)-1].EventID ||
			summary.Depth != int64(len(all)) || summary.Version != machine.DefaultRoomVersion {
			t.Errorf("room summary %+v (%v)", summary, err)
		}
		if create, err := rooms.CreateEvent(r, room); err != nil || create == nil || create.Sender != alice || create.Seq != all[0].Seq {
			t.Errorf("create event %+v (%v)", create, err)
		}
	})
}

// An inverted range (after > upTo) gives no events; it must not fault.
func TestEventsInvertedRange(t *testing.T) {
	d := newDriver(t)
	room := d.createRoom(alice, "r").RoomID
	head := d.say(alice, room, "x").Seq
	d.view(func(r pebble.Reader) {
		var evs []*rooms.Event
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("panic: %v", p)
				}
			}()
			evs, _, err = rooms.Events(r, room, head, 2, 10, false)
		}()
		if err != nil || len(evs) != 0 {
			t.Fatalf("Events(after=%d, upTo=2) with after > upTo: %d events, err %v", head, len(evs), err)
		}
	})
}

func TestTxnIndex(t *testing.T) {
	d := newDriver(t)
	room := d.createRoom(alice, "r").RoomID
	sent := d.Do(machine.CmdSendEvent, alice, &machine.SendEvent{RoomID: room, Type: "m.room.message", Content: json.RawMessage(`{"body":"x"}`), TxnID: "abc"})
	d.view(func(r pebble.Reader) {
		if got, err := rooms.TxnEventID(r, rooms.TxnKey(alice, "D", room, "abc")); got != sent.EventID || err != nil {
			t.Errorf("txn abc -> %q (%v), want %s", got, err, sent.EventID)
		}
		for _, k := range [][4]string{{alice, "OTHER", room, "abc"}, {bob, "D", room, "abc"}, {alice, "D", room, "ab"}, {alice, "D", room, "abcd"}, {alice, "D", "!other", "abc"}} {
			if got, err := rooms.TxnEventID(r, rooms.TxnKey(k[0], k[1], k[2], k[3])); got != "" || err != nil {
				t.Errorf("txn %v -> %q (%v)", k, got, err)
			}
		}
		ev, _ := rooms.EventByID(r, sent.EventID)
		if ev == nil || ev.TxnID != "abc" || ev.DeviceID != "D" {
			t.Errorf("event txn fields %+v", ev)
		}
	})
}
