package rooms_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/rooms"
	"chronicle/raft/machine"
)

func stateIDs(evs []*rooms.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type+"|"+*ev.StateKey+"|"+ev.EventID)
	}
	return out
}

// StateAtExcept is StateAt without one type, at every position.
func TestStateAtExceptSkipsOneType(t *testing.T) {
	d := newDriver(t)
	roomID := d.createRoom(alice, "First").RoomID
	d.member(bob, roomID, bob, "join")
	d.rename(alice, roomID, "Second")
	d.member(carol, roomID, carol, "join")
	d.member(bob, roomID, bob, "leave")
	last := d.rename(alice, roomID, "Third")
	d.view(func(r pebble.Reader) {
		head, err := rooms.GetRoom(r, roomID)
		if err != nil {
			t.Fatal(err)
		}
		for seq := uint64(1); seq <= head.LastSeq; seq++ {
			all, err := rooms.StateAt(r, roomID, seq)
			if err != nil {
				t.Fatal(err)
			}
			for _, skip := range []string{"m.room.member", "m.room.name", "m.room.create", "m.nothing"} {
				got, err := rooms.StateAtExcept(r, roomID, seq, skip)
				if err != nil {
					t.Fatal(err)
				}
				want := slices.DeleteFunc(slices.Clone(all), func(ev *rooms.Event) bool { return ev.Type == skip })
				if !slices.Equal(stateIDs(got), stateIDs(want)) {
					t.Fatalf("at %d without %s: %v, want %v", seq, skip, stateIDs(got), stateIDs(want))
				}
			}
		}
		now, err := rooms.StateAtExcept(r, roomID, 0, "m.room.member")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(stateIDs(now), "m.room.name||"+last.EventID) {
			t.Fatalf("current state without members: %v", stateIDs(now))
		}
	})
}

// FederationJSON is the PDU the log holds, redacted once the event is.
func TestFederationJSON(t *testing.T) {
	d := newDriver(t)
	roomID := d.createRoom(alice, "Room").RoomID
	msg := d.say(alice, roomID, "secret").EventID
	pdu := func() map[string]json.RawMessage {
		var out map[string]json.RawMessage
		d.view(func(r pebble.Reader) {
			ev, err := rooms.EventByID(r, msg)
			if err != nil || ev == nil {
				t.Fatal(err)
			}
			raw, err := rooms.FederationJSON(r, ev)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &out); err != nil {
				t.Fatal(err)
			}
		})
		return out
	}
	before := pdu()
	for _, k := range []string{"auth_events", "prev_events", "depth", "hashes", "sender", "type", "content", "origin_server_ts"} {
		if before[k] == nil {
			t.Fatalf("PDU lacks %s: %v", k, before)
		}
	}
	if string(before["type"]) != `"m.room.message"` || !json.Valid(before["content"]) || len(before["content"]) < 10 {
		t.Fatalf("PDU %v", before)
	}
	d.Do(machine.CmdRedact, alice, &machine.Redact{RoomID: roomID, EventID: msg, TxnID: "r"})
	after := pdu()
	if string(after["content"]) != "{}" {
		t.Fatalf("redacted PDU content %s", after["content"])
	}
	if string(after["hashes"]) != string(before["hashes"]) || string(after["depth"]) != string(before["depth"]) {
		t.Fatal("redaction must keep the protected keys")
	}
}
