package machine

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections/directory"
	"chronicle/projections/facts"
	"chronicle/projections/reports"
	"chronicle/projections/rooms"
)

// Tests of knocking, restricted joins, room upgrades and reports, driven
// through the whole machine. Each ends by replaying its command stream on a
// second machine: the same decisions, byte-identical stores.

func replayOnFresh(t *testing.T, w *workload) {
	t.Helper()
	b := openMachine(t, t.TempDir())
	defer b.Close()
	replayStream(t, b, w.steps)
	compareStores(t, w.m, b)
	verifyChain(t, w.m)
}

// stateOf returns the content of a current state event, nil if absent.
func stateContentOf(t *testing.T, m *Machine, roomID, evType, sk string) map[string]any {
	t.Helper()
	var out map[string]any
	if err := m.View(func(r pebble.Reader) error {
		ev, err := rooms.StateEvent(r, roomID, evType, sk)
		if err != nil || ev == nil {
			return err
		}
		return json.Unmarshal(ev.Content, &out)
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func membershipOf(t *testing.T, m *Machine, roomID, user string) string {
	t.Helper()
	if c := stateContentOf(t, m, roomID, "m.room.member", user); c != nil {
		s, _ := c["membership"].(string)
		return s
	}
	return ""
}

func registerAll(w *workload, names ...string) {
	for _, n := range names {
		w.ok(CmdRegister, "", "", &Register{UserID: uid(n), DeviceID: "D" + n})
	}
}

func setState(w *workload, actor, roomID, evType, sk, content string) *Result {
	w.t.Helper()
	return w.cmd(CmdSendEvent, actor, "", &SendEvent{RoomID: roomID, Type: evType, StateKey: &sk, Content: json.RawMessage(content)})
}

func TestKnocking(t *testing.T) {
	m := openMachine(t, t.TempDir())
	defer m.Close()
	w := newWorkload(t, m)
	alice, bob, carol, dave := uid("alice"), uid("bob"), uid("carol"), uid("dave")
	registerAll(w, "alice", "bob", "carol", "dave")

	room := w.ok(CmdCreateRoom, alice, "", &CreateRoom{Preset: "private_chat"}).RoomID
	w.rej(KindForbidden, CmdMembership, bob, "", &Membership{RoomID: room, Target: bob, Membership: "knock"})
	if res := setState(w, alice, room, "m.room.join_rules", "", `{"join_rule":"knock"}`); res.Err != nil {
		t.Fatal(res.Err)
	}
	// Knock, then accepted by an invite.
	w.ok(CmdMembership, bob, "", &Membership{RoomID: room, Target: bob, Membership: "knock", Reason: "let me in"})
	if got := membershipOf(t, m, room, bob); got != "knock" {
		t.Fatalf("bob's membership %q, want knock", got)
	}
	w.rej(KindForbidden, CmdMembership, bob, "", &Membership{RoomID: room, Target: bob, Membership: "join"})
	w.member(alice, room, bob, "invite")
	w.member(bob, room, bob, "join")
	// Knock, then refused by a kick.
	w.ok(CmdMembership, carol, "", &Membership{RoomID: room, Target: carol, Membership: "knock"})
	w.rej(KindForbidden, CmdMembership, bob, "", &Membership{RoomID: room, Target: carol, Membership: "kick"}) // bob is no moderator
	w.member(alice, room, carol, "kick")
	if got := membershipOf(t, m, room, carol); got != "leave" {
		t.Fatalf("carol's membership %q after the refusal, want leave", got)
	}
	// A knock for someone else, and on an unknown room.
	w.rej(KindForbidden, CmdMembership, carol, "", &Membership{RoomID: room, Target: dave, Membership: "knock"})
	w.rej(KindNotFound, CmdMembership, carol, "", &Membership{RoomID: "!nope:localhost", Target: carol, Membership: "knock"})
	// A banned user can neither knock, nor join, nor be invited until unbanned.
	w.member(alice, room, dave, "ban")
	w.rej(KindForbidden, CmdMembership, dave, "", &Membership{RoomID: room, Target: dave, Membership: "knock"})
	w.rej(KindForbidden, CmdMembership, dave, "", &Membership{RoomID: room, Target: dave, Membership: "join"})
	w.rej(KindForbidden, CmdMembership, alice, "", &Membership{RoomID: room, Target: dave, Membership: "invite"})
	w.member(alice, room, dave, "unban")
	w.member(dave, room, dave, "knock")

	// Room versions before 7 know no knocking.
	old := w.ok(CmdCreateRoom, alice, "", &CreateRoom{RoomVersion: "6", RoomID: "!v6:localhost", Preset: "private_chat"}).RoomID
	if res := setState(w, alice, old, "m.room.join_rules", "", `{"join_rule":"knock"}`); res.Err != nil {
		t.Fatal(res.Err)
	}
	w.rej(KindForbidden, CmdMembership, bob, "", &Membership{RoomID: old, Target: bob, Membership: "knock"})
	replayOnFresh(t, w)
}

func TestRestrictedJoins(t *testing.T) {
	m := openMachine(t, t.TempDir())
	defer m.Close()
	w := newWorkload(t, m)
	// aaron sorts before alice; aardvark before both but cannot invite.
	alice, aaron, aardvark, bob, carol := uid("alice"), uid("aaron"), uid("aardvark"), uid("bob"), uid("carol")
	registerAll(w, "alice", "aaron", "aardvark", "bob", "carol")

	space := w.ok(CmdCreateRoom, alice, "", &CreateRoom{Preset: "public_chat"}).RoomID
	w.member(bob, space, bob, "join")
	w.member(aardvark, space, aardvark, "join")
	allow := `{"join_rule":%q,"allow":[{"type":"m.room_membership","room_id":"` + space + `"},{"type":"m.room_membership","room_id":"!elsewhere:example.org"}]}`

	t.Run("v12, the creator authorises", func(t *testing.T) {
		room := w.ok(CmdCreateRoom, alice, "", &CreateRoom{Preset: "private_chat",
			InitialState: []StateEvent{{Type: "m.room.join_rules", Content: json.RawMessage(fmt.Sprintf(allow, "restricted"))}}}).RoomID
		w.member(bob, room, bob, "join")
		c := stateContentOf(t, m, room, "m.room.member", bob)
		if c["membership"] != "join" || c["join_authorised_via_users_server"] != alice {
			t.Fatalf("bob's join %v, want one authorised via %s", c, alice)
		}
		// The signature the auth rules checked was on a transient copy.
		m.View(func(r pebble.Reader) error {
			ref, err := rooms.CurrentStateRef(r, room, "m.room.member", bob)
			if err != nil {
				return err
			}
			rec, err := rlog.Get(r, ref.Seq)
			if err != nil {
				return err
			}
			var f facts.RoomEvent
			if err := facts.Decode(rec.Body, &f); err != nil {
				return err
			}
			if strings.Contains(string(f.PDU), "signatures") {
				t.Errorf("stored join PDU carries signatures: %s", f.PDU)
			}
			return nil
		})
		w.rej(KindForbidden, CmdMembership, carol, "", &Membership{RoomID: room, Target: carol, Membership: "join"})
		// An invited user needs no authoriser.
		w.member(alice, room, carol, "invite")
		w.member(carol, room, carol, "join")
		if c := stateContentOf(t, m, room, "m.room.member", carol); c["join_authorised_via_users_server"] != nil {
			t.Fatalf("invited carol's join %v names an authoriser", c)
		}
	})

	t.Run("v10, the first joined user who may invite authorises", func(t *testing.T) {
		room := w.ok(CmdCreateRoom, alice, "", &CreateRoom{RoomVersion: "10", RoomID: "!r10:localhost", Preset: "private_chat",
			PowerLevelContentOverride: json.RawMessage(`{"invite":50,"users":{"` + alice + `":100,"` + aaron + `":50}}`),
			Invite:                    []string{aaron, aardvark},
			InitialState:              []StateEvent{{Type: "m.room.join_rules", Content: json.RawMessage(fmt.Sprintf(allow, "knock_restricted"))}}}).RoomID
		w.member(aaron, room, aaron, "join")
		w.member(aardvark, room, aardvark, "join")
		w.member(bob, room, bob, "join")
		if c := stateContentOf(t, m, room, "m.room.member", bob); c["join_authorised_via_users_server"] != aaron {
			t.Fatalf("bob's join %v, want one authorised via %s (lowest ID with invite power)", c, aaron)
		}
		// Not in the allowed room: no join, but knock_restricted lets carol knock.
		w.rej(KindForbidden, CmdMembership, carol, "", &Membership{RoomID: room, Target: carol, Membership: "join"})
		w.member(carol, room, carol, "knock")
		// Once in the allowed room, the knocker may join directly.
		w.member(carol, space, carol, "join")
		w.member(carol, room, carol, "join")
	})

	t.Run("no one who may invite is joined", func(t *testing.T) {
		room := w.ok(CmdCreateRoom, alice, "", &CreateRoom{RoomVersion: "9", RoomID: "!r9:localhost", Preset: "private_chat",
			InitialState: []StateEvent{{Type: "m.room.join_rules", Content: json.RawMessage(fmt.Sprintf(allow, "restricted"))}}}).RoomID
		w.member(alice, room, alice, "leave")
		w.rej(KindForbidden, CmdMembership, bob, "", &Membership{RoomID: room, Target: bob, Membership: "join"})
	})

	t.Run("v7 does not know restricted", func(t *testing.T) {
		room := w.ok(CmdCreateRoom, alice, "", &CreateRoom{RoomVersion: "7", RoomID: "!r7:localhost", Preset: "private_chat",
			InitialState: []StateEvent{{Type: "m.room.join_rules", Content: json.RawMessage(fmt.Sprintf(allow, "restricted"))}}}).RoomID
		w.rej(KindForbidden, CmdMembership, bob, "", &Membership{RoomID: room, Target: bob, Membership: "join"})
	})

	t.Run("a banned member of the allowed room stays out", func(t *testing.T) {
		room := w.ok(CmdCreateRoom, alice, "", &CreateRoom{Preset: "private_chat",
			InitialState: []StateEvent{{Type: "m.room.join_rules", Content: json.RawMessage(fmt.Sprintf(allow, "restricted"))}}}).RoomID
		w.member(alice, room, bob, "ban")
		w.rej(KindForbidden, CmdMembership, bob, "", &Membership{RoomID: room, Target: bob, Membership: "join"})
		w.member(alice, room, bob, "unban")
		w.member(bob, room, bob, "join")
	})
	replayOnFresh(t, w)
}

func TestUpgradeRoom(t *testing.T) {
	m := openMachine(t, t.TempDir())
	defer m.Close()
	w := newWorkload(t, m)
	alice, bob, carol := uid("alice"), uid("bob"), uid("carol")
	registerAll(w, "alice", "bob", "carol")

	old := w.ok(CmdCreateRoom, alice, "", &CreateRoom{RoomVersion: "10", RoomID: "!old:localhost", Preset: "public_chat",
		Name: strp("Lobby"), Topic: strp("chat"), CreationContent: json.RawMessage(`{"type":"org.example.kind"}`),
		PowerLevelContentOverride: json.RawMessage(`{"users":{"` + alice + `":100,"` + bob + `":50}}`),
		InitialState: []StateEvent{
			{Type: "m.room.encryption", Content: json.RawMessage(`{"algorithm":"m.megolm.v1.aes-sha2"}`)},
			{Type: "m.room.avatar", Content: json.RawMessage(`{"url":"mxc://localhost/a"}`)},
			{Type: "org.example.custom", Content: json.RawMessage(`{"x":1}`)},
		}}).RoomID
	w.member(bob, old, bob, "join")
	w.member(carol, old, carol, "join")
	w.send(carol, "", old, "c1", "before")
	w.ok(CmdCreateAlias, alice, "", &CreateAlias{Alias: "#lobby:localhost", RoomID: old})
	w.ok(CmdCreateAlias, bob, "", &CreateAlias{Alias: "#bobs-lobby:localhost", RoomID: old})
	if res := setState(w, alice, old, "m.room.canonical_alias", "", `{"alias":"#lobby:localhost","alt_aliases":["#bobs-lobby:localhost","#far:example.org"]}`); res.Err != nil {
		t.Fatal(res.Err)
	}
	w.ok(CmdSetRoomVisibility, alice, "", &SetRoomVisibility{RoomID: old, Visibility: "public"})

	// bob (50) may not send the tombstone (100): nothing happens.
	head, before := headOf(t, m), dumpStore(t, m)
	w.rej(KindForbidden, CmdUpgradeRoom, bob, "", &UpgradeRoom{RoomID: old, NewVersion: "12"})
	if got := headOf(t, m); got != head {
		t.Fatalf("refused upgrade moved the head %d -> %d", head.Seq, got.Seq)
	}
	onlyAppliedChanged(t, before, dumpStore(t, m))
	w.rej(KindUnsupportedRoomVersion, CmdUpgradeRoom, alice, "", &UpgradeRoom{RoomID: old, NewVersion: "99", NewRoomID: "!x:localhost"})
	w.rej(KindForbidden, CmdUpgradeRoom, alice, "", &UpgradeRoom{RoomID: "!missing:localhost", NewVersion: "12"})

	var lastOld string
	m.View(func(r pebble.Reader) error {
		room, err := rooms.GetRoom(r, old)
		if err == nil {
			lastOld = room.LastEventID
		}
		return err
	})
	res := w.ok(CmdUpgradeRoom, alice, "", &UpgradeRoom{RoomID: old, NewVersion: "12", AdditionalCreators: []string{bob}})
	repl := res.RoomID
	create := stateContentOf(t, m, repl, "m.room.create", "")
	pred, _ := create["predecessor"].(map[string]any)
	if create["room_version"] != "12" || create["type"] != "org.example.kind" || pred["room_id"] != old || pred["event_id"] != lastOld {
		t.Errorf("new room's create content %v", create)
	}
	if ac, _ := create["additional_creators"].([]any); len(ac) != 1 || ac[0] != bob {
		t.Errorf("additional_creators %v, want [%s]", create["additional_creators"], bob)
	}
	for _, c := range []struct{ typ, key, want string }{
		{"m.room.name", "name", "Lobby"}, {"m.room.topic", "topic", "chat"}, {"m.room.join_rules", "join_rule", "public"},
		{"m.room.history_visibility", "history_visibility", "shared"}, {"m.room.guest_access", "guest_access", "forbidden"},
		{"m.room.encryption", "algorithm", "m.megolm.v1.aes-sha2"}, {"m.room.avatar", "url", "mxc://localhost/a"},
	} {
		if got := stateContentOf(t, m, repl, c.typ, ""); got[c.key] != c.want {
			t.Errorf("new room %s = %v, want %s %q", c.typ, got, c.key, c.want)
		}
	}
	if got := stateContentOf(t, m, repl, "org.example.custom", ""); got != nil {
		t.Errorf("a custom state event was copied: %v", got)
	}
	pl := stateContentOf(t, m, repl, "m.room.power_levels", "")
	if users, _ := pl["users"].(map[string]any); len(users) != 0 {
		t.Errorf("v12 power levels list users %v; the creators (alice, bob) must not be listed", users)
	}
	if got := membershipOf(t, m, repl, alice); got != "join" {
		t.Errorf("upgrader's membership in the new room %q", got)
	}
	if got := membershipOf(t, m, repl, carol); got != "" {
		t.Errorf("carol's membership was copied: %q", got)
	}
	tomb := stateContentOf(t, m, old, "m.room.tombstone", "")
	if tomb["replacement_room"] != repl || tomb["body"] == "" {
		t.Errorf("tombstone %v", tomb)
	}
	oldPL := stateContentOf(t, m, old, "m.room.power_levels", "")
	if oldPL["events_default"] != float64(50) || oldPL["invite"] != float64(50) {
		t.Errorf("old room power levels not restricted: %v", oldPL)
	}
	m.View(func(r pebble.Reader) error {
		for alias, creator := range map[string]string{"#lobby:localhost": alice, "#bobs-lobby:localhost": bob} {
			if a, err := directory.GetAlias(r, alias); err != nil || a == nil || a.RoomID != repl || a.Creator != creator {
				t.Errorf("alias %s after the upgrade: %+v (%v), want it in %s created by %s", alias, a, err, repl, creator)
			}
		}
		if left, _ := directory.RoomAliases(r, old); len(left) != 0 {
			t.Errorf("old room keeps aliases %v", left)
		}
		if pub, _ := directory.IsPublished(r, old); pub {
			t.Error("old room still published")
		}
		if pub, _ := directory.IsPublished(r, repl); !pub {
			t.Error("new room not published")
		}
		return nil
	})
	if c := stateContentOf(t, m, repl, "m.room.canonical_alias", ""); fmt.Sprint(c) != "map[alias:#lobby:localhost alt_aliases:[#bobs-lobby:localhost]]" {
		t.Errorf("new room canonical alias %v", c)
	}
	if c := stateContentOf(t, m, old, "m.room.canonical_alias", ""); fmt.Sprint(c) != "map[alt_aliases:[#far:example.org]]" {
		t.Errorf("old room canonical alias %v", c)
	}
	w.rej(KindForbidden, CmdSendEvent, carol, "", &SendEvent{RoomID: old, Type: "m.room.message", Content: json.RawMessage(`{"body":"after"}`)})

	// Back to v10: the v12 creator gets an explicit level again.
	res = w.ok(CmdUpgradeRoom, alice, "", &UpgradeRoom{RoomID: repl, NewVersion: "10", NewRoomID: "!v10:localhost"})
	if res.RoomID != "!v10:localhost" {
		t.Fatalf("replacement %s", res.RoomID)
	}
	pl = stateContentOf(t, m, res.RoomID, "m.room.power_levels", "")
	if users, _ := pl["users"].(map[string]any); users[alice] != float64(100) {
		t.Errorf("v10 power levels %v, want alice raised to the room's highest level (100)", pl)
	}
	if c := stateContentOf(t, m, res.RoomID, "m.room.create", ""); c["creator"] != alice {
		t.Errorf("v10 create content %v lacks the creator", c)
	}
	// The room ID is taken now.
	w.rej(KindBadState, CmdUpgradeRoom, alice, "", &UpgradeRoom{RoomID: old, NewVersion: "10", NewRoomID: "!v10:localhost"})
	replayOnFresh(t, w)
}

func TestReports(t *testing.T) {
	m := openMachine(t, t.TempDir())
	defer m.Close()
	w := newWorkload(t, m)
	alice, bob, carol := uid("alice"), uid("bob"), uid("carol")
	registerAll(w, "alice", "bob", "carol")
	room := w.ok(CmdCreateRoom, alice, "", &CreateRoom{Preset: "public_chat"}).RoomID
	other := w.ok(CmdCreateRoom, alice, "", &CreateRoom{Preset: "public_chat"}).RoomID
	w.member(bob, room, bob, "join")
	ev := w.send(alice, "", room, "t1", "offensive").EventID
	elsewhere := w.send(alice, "", other, "t2", "elsewhere").EventID
	score := -100

	w.ok(CmdReport, bob, "", &Report{RoomID: room, EventID: ev, Reason: "rude", Score: &score})
	w.rej(KindNotFound, CmdReport, carol, "", &Report{RoomID: room, EventID: ev, Reason: "not in the room"})
	w.rej(KindNotFound, CmdReport, bob, "", &Report{RoomID: room, EventID: "$unknown", Reason: "no such event"})
	w.rej(KindNotFound, CmdReport, bob, "", &Report{RoomID: room, EventID: elsewhere, Reason: "another room's event"})
	w.ok(CmdReport, carol, "", &Report{RoomID: room, Reason: "a room carol is not in"})
	w.rej(KindNotFound, CmdReport, carol, "", &Report{RoomID: "!missing:localhost", Reason: "x"})
	w.ok(CmdReport, carol, "", &Report{UserID: alice, Reason: "spam"})
	w.rej(KindNotFound, CmdReport, carol, "", &Report{UserID: uid("nobody"), Reason: "x"})
	w.rej(KindBadJSON, CmdReport, carol, "", &Report{})

	var list []reports.Report
	var more bool
	m.View(func(r pebble.Reader) error {
		var err error
		list, more, err = reports.List(r, 0, 2)
		return err
	})
	if len(list) != 2 || !more {
		t.Fatalf("first page %+v more=%v", list, more)
	}
	if got := list[0]; got.Kind != facts.ReportEvent || got.Reporter != bob || got.EventID != ev || got.RoomID != room || got.Reason != "rude" || got.Score == nil || *got.Score != -100 || got.Time == 0 {
		t.Errorf("event report %+v", got)
	}
	if got := list[1]; got.Kind != facts.ReportRoom || got.Reporter != carol || got.RoomID != room {
		t.Errorf("room report %+v", got)
	}
	m.View(func(r pebble.Reader) error {
		var err error
		list, more, err = reports.List(r, list[1].ID, 10)
		return err
	})
	if len(list) != 1 || more || list[0].Kind != facts.ReportUser || list[0].UserID != alice {
		t.Fatalf("second page %+v more=%v", list, more)
	}
	replayOnFresh(t, w)
}
