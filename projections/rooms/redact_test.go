package rooms_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"maunium.net/go/mautrix/id"

	"chronicle/projections/rooms"
	"chronicle/raft/machine"
)

// The redaction algorithm of every room version, on content that holds
// each key some version protects. Versions 1 and 2 cannot be created here
// yet; their algorithm is the one of 3-5.
func TestRedactContentPerVersion(t *testing.T) {
	type tc struct {
		evType, content string
		want            func(v int) string
	}
	same := func(s string) func(int) string { return func(int) string { return s } }
	from := func(first int, before, after string) func(int) string {
		return func(v int) string {
			if v >= first {
				return after
			}
			return before
		}
	}
	cases := []tc{
		{"m.room.message", `{"msgtype":"m.text","body":"secret"}`, same(`{}`)},
		{"m.room.create", `{"creator":"@a:x","room_version":"9","m.federate":false}`,
			from(11, `{"creator":"@a:x"}`, `{"creator":"@a:x","room_version":"9","m.federate":false}`)},
		{"m.room.member", `{"membership":"join","displayname":"A","join_authorised_via_users_server":"@b:x","third_party_invite":{"signed":{"token":"t"},"display_name":"d"}}`,
			func(v int) string {
				switch {
				case v >= 11:
					return `{"membership":"join","join_authorised_via_users_server":"@b:x","third_party_invite":{"signed":{"token":"t"}}}`
				case v >= 9:
					return `{"membership":"join","join_authorised_via_users_server":"@b:x"}`
				}
				return `{"membership":"join"}`
			}},
		{"m.room.join_rules", `{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!r:x"}],"other":1}`,
			from(8, `{"join_rule":"restricted"}`, `{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!r:x"}]}`)},
		{"m.room.power_levels", `{"ban":50,"events":{"m.room.name":50},"events_default":0,"invite":0,"kick":50,"notifications":{"room":50},"redact":50,"state_default":50,"users":{"@a:x":100},"users_default":0}`,
			from(11, `{"ban":50,"events":{"m.room.name":50},"events_default":0,"kick":50,"redact":50,"state_default":50,"users":{"@a:x":100},"users_default":0}`,
				`{"ban":50,"events":{"m.room.name":50},"events_default":0,"kick":50,"redact":50,"state_default":50,"users":{"@a:x":100},"users_default":0,"invite":0}`)},
		{"m.room.history_visibility", `{"history_visibility":"joined","x":1}`, same(`{"history_visibility":"joined"}`)},
		{"m.room.aliases", `{"aliases":["#a:x"],"x":1}`, from(6, `{"aliases":["#a:x"]}`, `{}`)},
		{"m.room.redaction", `{"redacts":"$e","reason":"spam"}`, from(11, `{}`, `{"redacts":"$e"}`)},
		{"m.room.name", `{"name":"n"}`, same(`{}`)},
	}
	for v := 1; v <= 12; v++ {
		version := id.RoomVersion(fmt.Sprint(v))
		for _, c := range cases {
			got := rooms.RedactContent(c.evType, json.RawMessage(c.content), version)
			if !sameJSON(t, got, c.want(v)) {
				t.Errorf("v%d %s: redacted to %s, want %s", v, c.evType, got, c.want(v))
			}
		}
	}
}

func sameJSON(t *testing.T, a json.RawMessage, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

// Folding a redaction rewrites the stored event for every read: the
// timeline, the event index, current state and state at a past position.
func TestRedactionFoldsIntoEveryRead(t *testing.T) {
	d := newDriver(t)
	roomID := d.createRoom(alice, "Secret name").RoomID
	d.member(bob, roomID, bob, "join")
	msg := d.say(bob, roomID, "oops").EventID
	var nameID string
	d.view(func(r pebble.Reader) {
		ev, err := rooms.StateEvent(r, roomID, "m.room.name", "")
		if err != nil || ev == nil {
			t.Fatal(err)
		}
		nameID = ev.EventID
	})
	red := d.Do(machine.CmdRedact, alice, &machine.Redact{RoomID: roomID, EventID: nameID, Content: json.RawMessage(`{"reason":"leak"}`), TxnID: "r1"}).EventID
	d.Do(machine.CmdRedact, bob, &machine.Redact{RoomID: roomID, EventID: msg, TxnID: "r2"})

	d.view(func(r pebble.Reader) {
		ev, err := rooms.EventByID(r, nameID)
		if err != nil {
			t.Fatal(err)
		}
		if string(ev.Content) != "{}" || ev.RedactedBecause == nil || ev.RedactedBecause.EventID != red {
			t.Fatalf("redacted name event: %s because %+v", ev.Content, ev.RedactedBecause)
		}
		var reason struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(ev.RedactedBecause.Content, &reason)
		if reason.Reason != "leak" || ev.RedactedBecause.Sender != alice {
			t.Fatalf("redacted_because: %+v", ev.RedactedBecause)
		}
		var name map[string]any
		if found, err := rooms.StateContent(r, roomID, "m.room.name", "", &name); err != nil || !found || len(name) != 0 {
			t.Fatalf("current state m.room.name: %v %v %v", name, found, err)
		}
		past, err := rooms.StateAt(r, roomID, ev.Seq)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range past {
			if st.Type == "m.room.name" && string(st.Content) != "{}" {
				t.Fatalf("state at %d: m.room.name %s", ev.Seq, st.Content)
			}
		}
		evs, _, err := rooms.Events(r, roomID, 0, ^uint64(0)>>1, 1000, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.EventID == msg && (string(e.Content) != "{}" || e.RedactedBecause == nil) {
				t.Fatalf("timeline still has %s", e.Content)
			}
		}
	})
}

// A user who forgot a room no longer sees its history or state; joining
// again restores what their membership allows.
func TestForgottenRoomHidesHistory(t *testing.T) {
	d := newDriver(t)
	roomID := d.createRoom(alice, "r").RoomID
	d.member(bob, roomID, bob, "join")
	msg := d.say(alice, roomID, "hello").EventID
	d.member(bob, roomID, bob, "leave")
	canSee := func() (bool, bool) {
		var see, state bool
		d.view(func(r pebble.Reader) {
			v, err := rooms.LoadVisibility(r, roomID, bob)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := rooms.EventByID(r, msg)
			if err != nil {
				t.Fatal(err)
			}
			see = v.CanSee(ev)
			_, state = v.StateUpTo(1 << 40)
		})
		return see, state
	}
	if see, state := canSee(); !see || !state {
		t.Fatalf("before forgetting: see %v state %v", see, state)
	}
	d.Do(machine.CmdForgetRoom, bob, &machine.ForgetRoom{RoomID: roomID})
	if see, state := canSee(); see || state {
		t.Fatalf("after forgetting: see %v state %v", see, state)
	}
	d.member(bob, roomID, bob, "join")
	if see, state := canSee(); !see || !state {
		t.Fatalf("after joining again: see %v state %v", see, state)
	}
}
