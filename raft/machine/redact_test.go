package machine

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/rooms"
)

// eventOf reads an event as the rooms projection stores it.
func eventOf(t *testing.T, m *Machine, eventID string) *rooms.Event {
	t.Helper()
	var ev *rooms.Event
	if err := m.View(func(r pebble.Reader) error {
		var err error
		ev, err = rooms.EventByID(r, eventID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if ev == nil {
		t.Fatalf("event %s not found", eventID)
	}
	return ev
}

// redactionRoom creates a private room of the given version as alice with
// bob joined; bob has power 0, alice 100 (or creator power in v12).
func redactionRoom(w *workload, version string) string {
	w.t.Helper()
	alice, bob := uid("alice"), uid("bob")
	roomID := ""
	if version != "12" {
		roomID = fmt.Sprintf("!redact%s:localhost", version)
	}
	room := w.ok(CmdCreateRoom, alice, "A", &CreateRoom{RoomVersion: version, RoomID: roomID, Preset: "private_chat", Invite: []string{bob}}).RoomID
	w.member(bob, room, bob, "join")
	return room
}

func registerRedactionUsers(w *workload) {
	for _, u := range []struct{ name, dev string }{{"alice", "A"}, {"bob", "B"}, {"carol", "C"}} {
		w.ok(CmdRegister, "", "", &Register{UserID: uid(u.name), DeviceID: u.dev})
	}
}

// The spec's redaction power rule, with the checks that come before it.
func TestRedactionPowerRule(t *testing.T) {
	for _, version := range []string{"10", "11", "12"} {
		t.Run("v"+version, func(t *testing.T) {
			m := openMachine(t, t.TempDir())
			defer m.Close()
			w := newWorkload(t, m)
			registerRedactionUsers(w)
			alice, bob, carol := uid("alice"), uid("bob"), uid("carol")
			room := redactionRoom(w, version)
			fromAlice := w.send(alice, "A", room, "a1", "alice says")
			fromBob := w.send(bob, "B", room, "b1", "bob says")
			alsoBob := w.send(bob, "B", room, "b2", "bob again")

			// bob (power 0 < redact 50) may not redact alice's event...
			w.rej(KindForbidden, CmdRedact, bob, "B", &Redact{RoomID: room, EventID: fromAlice.EventID, TxnID: "r1"})
			// ... not even by sending m.room.redaction through /send.
			w.rej(KindForbidden, CmdSendEvent, bob, "B", &SendEvent{RoomID: room, Type: "m.room.redaction",
				Content: json.RawMessage(fmt.Sprintf(`{"redacts":%q}`, fromAlice.EventID)), TxnID: "r1s"})
			if ev := eventOf(t, m, fromAlice.EventID); ev.RedactedBecause != nil {
				t.Fatalf("a refused redaction redacted the event: %+v", ev)
			}
			// ... but his own, with a reason.
			head := w.head()
			red := w.ok(CmdRedact, bob, "B", &Redact{RoomID: room, EventID: fromBob.EventID, Content: json.RawMessage(`{"reason":"typo"}`), TxnID: "r2"})
			if got := eventOf(t, m, fromBob.EventID); got.RedactedBecause == nil || got.RedactedBecause.EventID != red.EventID || string(got.Content) != "{}" {
				t.Fatalf("bob's own redaction not applied: %+v", got)
			}
			// A retried transaction answers with the same event, writing nothing.
			if again := w.ok(CmdRedact, bob, "B", &Redact{RoomID: room, EventID: fromBob.EventID, TxnID: "r2"}); again.EventID != red.EventID || w.head().Seq != head.Seq+1 {
				t.Fatalf("retry gave %s (head %d), want %s (head %d)", again.EventID, w.head().Seq, red.EventID, head.Seq+1)
			}
			// /send m.room.redaction of one's own event works too.
			viaSend := w.ok(CmdSendEvent, bob, "B", &SendEvent{RoomID: room, Type: "m.room.redaction",
				Content: json.RawMessage(fmt.Sprintf(`{"redacts":%q}`, alsoBob.EventID)), TxnID: "r3"})
			if got := eventOf(t, m, alsoBob.EventID); got.RedactedBecause == nil || got.RedactedBecause.EventID != viaSend.EventID {
				t.Fatalf("redaction sent through /send not applied: %+v", got)
			}
			// alice (power 100 >= 50) may redact bob's events.
			fromBob2 := w.send(bob, "B", room, "b3", "bob's third")
			w.ok(CmdRedact, alice, "A", &Redact{RoomID: room, EventID: fromBob2.EventID, TxnID: "r4"})

			// Unknown events, and events of another room, are 404; a
			// non-member learns nothing (403 before any lookup).
			w.rej(KindNotFound, CmdRedact, alice, "A", &Redact{RoomID: room, EventID: "$nope", TxnID: "r5"})
			otherRoom := w.ok(CmdCreateRoom, carol, "C", &CreateRoom{RoomVersion: version, RoomID: "!carols" + version + ":localhost", Preset: "public_chat"}).RoomID
			inOther := w.send(carol, "C", otherRoom, "c1", "elsewhere")
			w.rej(KindNotFound, CmdRedact, alice, "A", &Redact{RoomID: room, EventID: inOther.EventID, TxnID: "r6"})
			w.rej(KindForbidden, CmdRedact, carol, "C", &Redact{RoomID: room, EventID: fromAlice.EventID, TxnID: "r7"})
			w.rej(KindForbidden, CmdRedact, carol, "C", &Redact{RoomID: room, EventID: "$nope", TxnID: "r8"})
			// content.redacts must agree with the event named.
			w.rej(KindInvalidParam, CmdRedact, alice, "A", &Redact{RoomID: room, EventID: fromAlice.EventID,
				Content: json.RawMessage(`{"redacts":"$other"}`), TxnID: "r9"})
			// The create event is never redacted.
			create := ""
			if err := m.View(func(r pebble.Reader) error {
				ev, err := rooms.CreateEvent(r, room)
				create = ev.EventID
				return err
			}); err != nil {
				t.Fatal(err)
			}
			w.rej(KindForbidden, CmdRedact, alice, "A", &Redact{RoomID: room, EventID: create, TxnID: "r10"})

			// Lowering the room's redact level to 0 lets bob redact alice's.
			pl := eventStateContent(t, m, room, "m.room.power_levels")
			pl["redact"] = 0
			w.ok(CmdSendEvent, alice, "A", &SendEvent{RoomID: room, Type: "m.room.power_levels", StateKey: strp(""), Content: mustJSON(t, pl)})
			w.ok(CmdRedact, bob, "B", &Redact{RoomID: room, EventID: fromAlice.EventID, TxnID: "r11"})
		})
	}
}

func eventStateContent(t *testing.T, m *Machine, roomID, evType string) map[string]any {
	t.Helper()
	var out map[string]any
	if err := m.View(func(r pebble.Reader) error {
		_, err := rooms.StateContent(r, roomID, evType, "", &out)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The shape of the redaction event per room version: v1-10 name the
// target at the top level of the PDU, v11+ inside content. Clients get
// both forms in every version.
func TestRedactionEventShape(t *testing.T) {
	for _, version := range []string{"3", "10", "11", "12"} {
		t.Run("v"+version, func(t *testing.T) {
			m := openMachine(t, t.TempDir())
			defer m.Close()
			w := newWorkload(t, m)
			registerRedactionUsers(w)
			room := redactionRoom(w, version)
			msg := w.send(uid("bob"), "B", room, "b1", "hello")
			red := w.ok(CmdRedact, uid("bob"), "B", &Redact{RoomID: room, EventID: msg.EventID, Content: json.RawMessage(`{"reason":"oops"}`), TxnID: "r"})

			ref := func() *rooms.EventRef {
				var ref *rooms.EventRef
				_ = m.View(func(r pebble.Reader) (err error) { ref, err = rooms.LocateEvent(r, red.EventID); return })
				return ref
			}()
			x := &applyCtx{m: m, b: m.db.NewIndexedBatch()}
			defer x.b.Close()
			p, err := x.pduAt(red.EventID, ref.Seq)
			if err != nil {
				t.Fatal(err)
			}
			var content map[string]any
			_ = json.Unmarshal(p.Content, &content)
			v11 := version == "11" || version == "12"
			if v11 != (p.Redacts == nil) || v11 != (content["redacts"] == msg.EventID) || content["reason"] != "oops" {
				t.Fatalf("v%s redaction PDU: top-level redacts %v, content %s", version, p.Redacts, p.Content)
			}
			ev := eventOf(t, m, red.EventID)
			var cc map[string]any
			_ = json.Unmarshal(ev.Content, &cc)
			if ev.Redacts != msg.EventID || cc["redacts"] != msg.EventID || cc["reason"] != "oops" {
				t.Fatalf("v%s redaction for clients: redacts %q, content %s", version, ev.Redacts, ev.Content)
			}
		})
	}
}

// What a redaction leaves of each kind of event, per room version, as
// folded by the rooms projection on a real store; and that the auth rules
// read redacted events afterwards (v1-10 do not protect the power levels'
// "invite", v11+ do).
func TestRedactionAlgorithmPerVersion(t *testing.T) {
	for _, version := range SupportedRoomVersions {
		t.Run("v"+version, func(t *testing.T) {
			m := openMachine(t, t.TempDir())
			defer m.Close()
			w := newWorkload(t, m)
			registerRedactionUsers(w)
			alice, bob, carol := uid("alice"), uid("bob"), uid("carol")
			room := redactionRoom(w, version)
			state := func(evType, sk, content string) string {
				return w.ok(CmdSendEvent, alice, "A", &SendEvent{RoomID: room, Type: evType, StateKey: strp(sk), Content: json.RawMessage(content)}).EventID
			}
			redact := func(eventID string) {
				w.ok(CmdRedact, alice, "A", &Redact{RoomID: room, EventID: eventID, TxnID: "r-" + eventID})
			}
			content := func(eventID string) map[string]any {
				var c map[string]any
				if err := json.Unmarshal(eventOf(t, m, eventID).Content, &c); err != nil {
					t.Fatal(err)
				}
				return c
			}
			keys := func(c map[string]any) string {
				b, _ := json.Marshal(c)
				return string(b)
			}
			v := map[string]int{"1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7": 7, "8": 8, "9": 9, "10": 10, "11": 11, "12": 12}[version]

			pl := eventStateContent(t, m, room, "m.room.power_levels")
			pl["invite"] = 100
			plID := state("m.room.power_levels", "", string(mustJSON(t, pl)))
			w.rej(KindForbidden, CmdMembership, bob, "B", &Membership{RoomID: room, Target: carol, Membership: "invite"})

			msg := w.send(bob, "B", room, "m", "secret").EventID
			jr := state("m.room.join_rules", "", `{"join_rule":"invite","allow":[{"type":"m.room_membership","room_id":"!x:localhost"}],"extra":1}`)
			hv := state("m.room.history_visibility", "", `{"history_visibility":"shared","extra":1}`)
			name := state("m.room.name", "", `{"name":"Secret name"}`)
			member := w.ok(CmdSendEvent, bob, "B", &SendEvent{RoomID: room, Type: "m.room.member", StateKey: strp(bob), Content: json.RawMessage(`{"membership":"join","displayname":"Bobby"}`)}).EventID
			nameAfter := state("m.room.name", "", `{"name":"Public name"}`)
			for _, id := range []string{plID, msg, jr, hv, name, member} {
				redact(id)
			}

			if c := content(msg); len(c) != 0 {
				t.Errorf("message: %s", keys(c))
			}
			if c := content(name); len(c) != 0 {
				t.Errorf("name: %s", keys(c))
			}
			if got := eventOf(t, m, nameAfter); string(got.PrevContent) != "{}" {
				t.Errorf("the next name event still carries prev_content %s", got.PrevContent)
			}
			if c := content(hv); keys(c) != `{"history_visibility":"shared"}` {
				t.Errorf("history_visibility: %s", keys(c))
			}
			wantJR := `{"join_rule":"invite"}`
			if v >= 8 {
				wantJR = `{"allow":[{"room_id":"!x:localhost","type":"m.room_membership"}],"join_rule":"invite"}`
			}
			if c := content(jr); keys(c) != wantJR {
				t.Errorf("join_rules: %s, want %s", keys(c), wantJR)
			}
			if c := content(member); keys(c) != `{"membership":"join"}` {
				t.Errorf("member: %s", keys(c))
			}
			c := content(plID)
			if _, ok := c["notifications"]; ok {
				t.Errorf("power levels kept notifications: %s", keys(c))
			}
			if _, ok := c["users"]; !ok {
				t.Errorf("power levels lost users: %s", keys(c))
			}
			_, keptInvite := c["invite"]
			if keptInvite != (v >= 11) {
				t.Errorf("power levels: invite kept %v in v%d: %s", keptInvite, v, keys(c))
			}
			// The auth rules now read the redacted power levels: in v1-10
			// the invite level fell back to 0, so bob may invite.
			res := w.cmd(CmdMembership, bob, "B", &Membership{RoomID: room, Target: carol, Membership: "invite"})
			if (res.Err == nil) != (v < 11) {
				t.Errorf("bob inviting after the power levels were redacted: %v (v%d)", res.Err, v)
			}
			// Redacting a redaction: v1-10 keep nothing of it, v11+ keep
			// content.redacts; the redacted event's redacted_because copy
			// follows.
			first := eventOf(t, m, msg).RedactedBecause
			redact(first.EventID)
			red := eventOf(t, m, first.EventID)
			var rc map[string]any
			_ = json.Unmarshal(red.Content, &rc)
			if v >= 11 {
				if keys(rc) != fmt.Sprintf(`{"redacts":%q}`, msg) || red.Redacts != msg {
					t.Errorf("redacted redaction: %s redacts %q", red.Content, red.Redacts)
				}
			} else if len(rc) != 0 || red.Redacts != "" {
				t.Errorf("redacted redaction: %s redacts %q", red.Content, red.Redacts)
			}
			if rb := eventOf(t, m, msg).RedactedBecause; rb == nil || string(rb.Content) != string(red.Content) {
				t.Errorf("redacted_because copy not refreshed: %+v", rb)
			}

			// Replaying the log gives the same projections.
			before := digestsOf(t, m)
			if err := m.Engine().Rebuild(m.db, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatal(err)
			}
			after := digestsOf(t, m)
			for name, d := range before {
				if after[name] != d {
					t.Errorf("projection %s differs after a rebuild", name)
				}
			}
		})
	}
}

// Forgetting: only after leaving; idempotent; a new membership un-forgets.
func TestForgetRoom(t *testing.T) {
	m := openMachine(t, t.TempDir())
	defer m.Close()
	w := newWorkload(t, m)
	registerRedactionUsers(w)
	alice, bob := uid("alice"), uid("bob")
	room := redactionRoom(w, "12")
	w.rej(KindStillInRoom, CmdForgetRoom, bob, "B", &ForgetRoom{RoomID: room})
	w.member(bob, room, bob, "leave")
	head := w.head()
	w.ok(CmdForgetRoom, bob, "B", &ForgetRoom{RoomID: room})
	if w.head().Seq != head.Seq+1 {
		t.Fatalf("forget wrote %d records", w.head().Seq-head.Seq)
	}
	w.ok(CmdForgetRoom, bob, "B", &ForgetRoom{RoomID: room})
	w.ok(CmdForgetRoom, bob, "B", &ForgetRoom{RoomID: "!never:localhost"})
	if w.head().Seq != head.Seq+1 {
		t.Fatalf("a repeated forget wrote a record")
	}
	forgotten := func() bool {
		var f bool
		if err := m.View(func(r pebble.Reader) error {
			ms, err := rooms.GetMembership(r, bob, room)
			if err != nil {
				return err
			}
			f, err = rooms.IsForgotten(r, bob, room, ms.Seq)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return f
	}
	if !forgotten() {
		t.Fatal("room not forgotten")
	}
	w.member(alice, room, bob, "invite")
	if forgotten() {
		t.Fatal("a new invite left the room forgotten")
	}
	w.rej(KindStillInRoom, CmdForgetRoom, bob, "B", &ForgetRoom{RoomID: room})
}

// Redactions, refused redactions and forgetting decide and fold the same
// on a second machine fed the same commands (the PDU cache is dropped on
// redaction, so cache state cannot make the two differ).
func TestRedactionDeterminism(t *testing.T) {
	a := openMachine(t, t.TempDir())
	defer a.Close()
	w := newWorkload(t, a)
	registerRedactionUsers(w)
	alice, bob, carol := uid("alice"), uid("bob"), uid("carol")
	for _, version := range []string{"9", "11", "12"} {
		room := redactionRoom(w, version)
		pl := eventStateContent(t, a, room, "m.room.power_levels")
		pl["invite"] = 100
		plID := w.ok(CmdSendEvent, alice, "A", &SendEvent{RoomID: room, Type: "m.room.power_levels", StateKey: strp(""), Content: mustJSON(t, pl)}).EventID
		w.rej(KindForbidden, CmdMembership, bob, "B", &Membership{RoomID: room, Target: carol, Membership: "invite"})
		msg := w.send(alice, "A", room, "m"+version, "hello")
		w.rej(KindForbidden, CmdRedact, bob, "B", &Redact{RoomID: room, EventID: msg.EventID, TxnID: "x"})
		red := w.ok(CmdRedact, alice, "A", &Redact{RoomID: room, EventID: msg.EventID, TxnID: "y"})
		w.ok(CmdRedact, alice, "A", &Redact{RoomID: room, EventID: red.EventID, TxnID: "z"})
		w.ok(CmdRedact, alice, "A", &Redact{RoomID: room, EventID: plID, TxnID: "p"})
		w.cmd(CmdMembership, bob, "B", &Membership{RoomID: room, Target: carol, Membership: "invite"})
		w.member(bob, room, bob, "leave")
		w.ok(CmdForgetRoom, bob, "B", &ForgetRoom{RoomID: room})
	}
	b := openMachine(t, t.TempDir())
	defer b.Close()
	replayStream(t, b, w.steps)
	compareStores(t, a, b)
}
