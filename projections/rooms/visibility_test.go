package rooms_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/rooms"
	"chronicle/raft/machine"
)

func (d *driver) setVisibility(actor, roomID, hv string) *machine.Result {
	d.T.Helper()
	sk := ""
	return d.Do(machine.CmdSendEvent, actor, &machine.SendEvent{RoomID: roomID, Type: "m.room.history_visibility", StateKey: &sk,
		Content: json.RawMessage(fmt.Sprintf(`{"history_visibility":%q}`, hv))})
}

// visibleBodies returns the message bodies user may see in the room.
func visibleBodies(t *testing.T, d *driver, roomID, user string) []string {
	t.Helper()
	var out []string
	d.view(func(r pebble.Reader) {
		v, err := rooms.LoadVisibility(r, roomID, user)
		if err != nil {
			t.Fatal(err)
		}
		evs, _, err := rooms.Events(r, roomID, 0, ^uint64(0)-1, 100000, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range v.Filter(evs) {
			var c struct{ Body string }
			if ev.Type == "m.room.message" && json.Unmarshal(ev.Content, &c) == nil {
				out = append(out, c.Body)
			}
		}
	})
	return out
}

func sameStrings(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// TestHistoryVisibilityRules checks each rule of the spec's "Server
// behaviour" for history visibility, with a late joiner (bob), an invitee
// who never joins (carol) and a user who leaves.
func TestHistoryVisibilityRules(t *testing.T) {
	cases := []struct {
		hv         string
		bob, carol []string // what each sees at the end
	}{
		// bob joins after "before" was sent and leaves after "during".
		{"shared", []string{"before", "invited", "during"}, nil},
		{"joined", []string{"during"}, nil},
		{"invited", []string{"invited", "during"}, []string{"invited", "during", "after"}},
		{"world_readable", []string{"before", "invited", "during", "after"}, []string{"before", "invited", "during", "after"}},
	}
	for _, tc := range cases {
		t.Run(tc.hv, func(t *testing.T) {
			d := newDriver(t)
			room := d.createRoom(alice, "r").RoomID
			d.setVisibility(alice, room, tc.hv)
			d.say(alice, room, "before")
			d.member(alice, room, bob, "invite")
			d.member(alice, room, carol, "invite")
			d.say(alice, room, "invited")
			d.member(bob, room, bob, "join")
			d.say(alice, room, "during")
			d.member(bob, room, bob, "leave")
			d.say(alice, room, "after")
			if got := visibleBodies(t, d, room, bob); !sameStrings(got, tc.bob) {
				t.Errorf("bob sees %q, want %q", got, tc.bob)
			}
			if got := visibleBodies(t, d, room, carol); !sameStrings(got, tc.carol) {
				t.Errorf("carol (invited, never joined) sees %q, want %q", got, tc.carol)
			}
			// Alice was joined throughout and sees everything.
			if got := visibleBodies(t, d, room, alice); len(got) != 4 {
				t.Errorf("alice sees %q", got)
			}
		})
	}
}

// TestOwnMembershipEventsAlwaysVisible: under "joined", a user still sees
// the event that made them join and the one that made them leave.
func TestOwnMembershipEventsAlwaysVisible(t *testing.T) {
	d := newDriver(t)
	room := d.createRoom(alice, "r").RoomID
	d.setVisibility(alice, room, "joined")
	join := d.member(bob, room, bob, "join")
	leave := d.member(bob, room, bob, "leave")
	d.view(func(r pebble.Reader) {
		v, err := rooms.LoadVisibility(r, room, bob)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{join.EventID, leave.EventID} {
			ev, err := rooms.EventByID(r, id)
			if err != nil || ev == nil {
				t.Fatalf("event %s: %v", id, err)
			}
			if !v.CanSee(ev) {
				t.Errorf("bob cannot see his own membership event %s", id)
			}
		}
		if upTo, ok := v.StateUpTo(leave.Seq + 100); !ok || upTo != leave.Seq {
			t.Errorf("state readable up to %d (%v), want his leave at %d", upTo, ok, leave.Seq)
		}
	})
}

// TestVisibleEventsPagesPastHiddenHistory: a late joiner under "joined"
// paging back gets only what follows the join, however much came before.
func TestVisibleEventsPagesPastHiddenHistory(t *testing.T) {
	d := newDriver(t)
	room := d.createRoom(alice, "r").RoomID
	d.setVisibility(alice, room, "joined")
	for i := 0; i < 300; i++ {
		d.say(alice, room, fmt.Sprint("hidden ", i))
	}
	d.member(bob, room, bob, "join")
	for i := 0; i < 5; i++ {
		d.say(alice, room, fmt.Sprint("seen ", i))
	}
	d.view(func(r pebble.Reader) {
		v, _ := rooms.LoadVisibility(r, room, bob)
		evs, _, _, err := rooms.VisibleEvents(r, v, room, 0, ^uint64(0)-1, 10, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 6 { // five messages and his own join
			t.Fatalf("bob got %d events paging back, want 6", len(evs))
		}
		for _, ev := range evs {
			var c struct{ Body string }
			_ = json.Unmarshal(ev.Content, &c)
			if len(c.Body) >= 6 && c.Body[:6] == "hidden" {
				t.Fatalf("bob saw %q from before he joined", c.Body)
			}
		}
	})
}
