package machine

import (
	"encoding/base64"
	"encoding/json"
	jsonv2 "encoding/json/v2"
	"regexp"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	rlog "chronicle/log"
	"chronicle/projections/facts"
)

var v1EventIDPattern = regexp.MustCompile(`^\$[A-Za-z0-9_-]{24}:localhost$`)

// storedRoomEvents returns the room event facts of the log in seq order.
func storedRoomEvents(t *testing.T, m *Machine) []facts.RoomEvent {
	t.Helper()
	var out []facts.RoomEvent
	if err := m.View(func(r pebble.Reader) error {
		return rlog.Scan(r, 1, 0, func(rec *rlog.Record, _ []byte) error {
			if rec.Type != facts.TypeRoomEvent {
				return nil
			}
			var f facts.RoomEvent
			if err := facts.Decode(rec.Body, &f); err != nil {
				return err
			}
			out = append(out, f)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// v1Room builds a room of the given version (1 or 2) with some history:
// alice creates it and invites bob, bob joins and talks, alice redacts.
func v1Room(w *workload, version string) (room string) {
	w.t.Helper()
	alice, bob := uid("alice"), uid("bob")
	room = w.ok(CmdCreateRoom, alice, "A", &CreateRoom{RoomVersion: version, RoomID: "!v" + version + "room:localhost",
		Preset: "private_chat", Name: strp("old room"), Invite: []string{bob}}).RoomID
	w.member(bob, room, bob, "join")
	msg := w.send(bob, "B", room, "t1", "hello")
	w.send(alice, "A", room, "t2", "hi bob")
	w.ok(CmdRedact, alice, "A", &Redact{RoomID: room, EventID: msg.EventID, TxnID: "r1"})
	w.ok(CmdSendEvent, alice, "A", &SendEvent{RoomID: room, Type: "m.room.topic", StateKey: strp(""), Content: json.RawMessage(`{"topic":"t"}`)})
	w.rej(KindForbidden, CmdSendEvent, bob, "B", &SendEvent{RoomID: room, Type: "m.room.name", StateKey: strp(""), Content: json.RawMessage(`{"name":"bob's"}`)})
	w.member(bob, room, bob, "leave")
	return room
}

// Events of v1 and v2 rooms are stored in the v1 format: a server-chosen
// event ID inside the event, covered by the content hash; prev_events and
// auth_events as [event ID, {sha256: reference hash}] pairs naming the
// right events with their right reference hashes.
func TestV1EventFormat(t *testing.T) {
	for _, version := range []string{"1", "2"} {
		t.Run("v"+version, func(t *testing.T) {
			m := openMachine(t, t.TempDir())
			defer m.Close()
			w := newWorkload(t, m)
			registerRedactionUsers(w)
			room := v1Room(w, version)

			evs := storedRoomEvents(t, m)
			if len(evs) < 10 {
				t.Fatalf("only %d room events", len(evs))
			}
			byID := map[string]*pdu.RoomV1PDU{}
			var last string
			for i, f := range evs {
				if f.RoomID != room || f.RoomVersion != version {
					t.Fatalf("event %d: room %s version %s", i, f.RoomID, f.RoomVersion)
				}
				if !v1EventIDPattern.MatchString(f.EventID) {
					t.Errorf("event ID %q is not $opaque:localhost", f.EventID)
				}
				if byID[f.EventID] != nil {
					t.Fatalf("event ID %s used twice", f.EventID)
				}
				var raw map[string]json.RawMessage
				if err := json.Unmarshal(f.PDU, &raw); err != nil {
					t.Fatal(err)
				}
				var prevShape [][]json.RawMessage
				if err := json.Unmarshal(raw["prev_events"], &prevShape); err != nil {
					t.Errorf("prev_events %s are not pairs: %v", raw["prev_events"], err)
				}
				var p pdu.RoomV1PDU
				if err := jsonv2.Unmarshal(f.PDU, &p); err != nil {
					t.Fatalf("parse v1 PDU %s: %v", f.PDU, err)
				}
				if string(p.EventID) != f.EventID {
					t.Errorf("PDU event_id %q, fact says %q", p.EventID, f.EventID)
				}
				if !p.VerifyContentHash() {
					t.Errorf("content hash of %s does not verify", f.EventID)
				}
				checkRef := func(what string, ref pdu.V1EventReference) {
					target := byID[string(ref.ID)]
					if target == nil {
						t.Errorf("%s of %s names unknown or later event %s", what, f.EventID, ref.ID)
						return
					}
					want, err := target.GetReferenceHash(id.RoomVersion(version))
					if err != nil {
						t.Fatal(err)
					}
					if got := base64.RawStdEncoding.EncodeToString(ref.Hashes.SHA256); got != base64.RawStdEncoding.EncodeToString(want[:]) {
						t.Errorf("%s of %s: hash of %s is %s, want %x", what, f.EventID, ref.ID, got, want)
					}
				}
				if i == 0 {
					if p.Type != "m.room.create" || len(p.PrevEvents) != 0 || len(p.AuthEvents) != 0 {
						t.Errorf("first event %s", f.PDU)
					}
					var c map[string]any
					_ = json.Unmarshal(p.Content, &c)
					if c["creator"] != uid("alice") || c["room_version"] != version {
						t.Errorf("create content %s", p.Content)
					}
				} else {
					if len(p.PrevEvents) != 1 || string(p.PrevEvents[0].ID) != last {
						t.Errorf("prev_events of %s: %+v, want %s", f.EventID, p.PrevEvents, last)
					}
					for _, ref := range p.PrevEvents {
						checkRef("prev_events", ref)
					}
					if len(p.AuthEvents) == 0 {
						t.Errorf("%s has no auth_events", f.EventID)
					}
					for _, ref := range p.AuthEvents {
						checkRef("auth_events", ref)
					}
				}
				if p.Type == "m.room.redaction" && (p.Redacts == nil || byID[string(*p.Redacts)] == nil) {
					t.Errorf("redaction %s names %v", f.EventID, p.Redacts)
				}
				byID[f.EventID], last = &p, f.EventID
			}
		})
	}
}

// The IDs derive from the command (its salt) and the log position, so a
// second machine fed the same commands writes the same log; commands
// without a salt still get distinct IDs.
func TestV1Determinism(t *testing.T) {
	a := openMachine(t, t.TempDir())
	defer a.Close()
	w := newWorkload(t, a)
	registerRedactionUsers(w)
	v1Room(w, "1")
	v1Room(w, "2")
	for _, s := range w.steps {
		if len(s.Cmd.Salt) != 16 {
			t.Fatalf("command %s carries a %d-byte salt", s.Cmd.Type, len(s.Cmd.Salt))
		}
	}
	// Saltless commands (built by hand) still get fresh IDs.
	for i := range 2 {
		body, _ := NewCommand(CmdSendEvent, wlBaseTime, uid("alice"), "A", &SendEvent{RoomID: "!v1room:localhost", Type: "m.room.message", Content: json.RawMessage(`{"body":"x"}`)})
		body.Salt = nil
		if res := w.raw(body); res.Err != nil || !v1EventIDPattern.MatchString(res.EventID) {
			t.Fatalf("saltless send %d: %+v", i, res)
		}
	}
	seen := map[string]bool{}
	for _, f := range storedRoomEvents(t, a) {
		if seen[f.EventID] {
			t.Fatalf("event ID %s used twice", f.EventID)
		}
		seen[f.EventID] = true
	}

	b := openMachine(t, t.TempDir())
	defer b.Close()
	replayStream(t, b, w.steps)
	compareStores(t, a, b)
	verifyChain(t, b)
}

// Rule 11 of v1/v2: a redaction by someone without the redact level is
// allowed only for an event of the redaction's own server.
func TestV1RedactionAuthRule(t *testing.T) {
	m := openMachine(t, t.TempDir())
	defer m.Close()
	w := newWorkload(t, m)
	registerRedactionUsers(w)
	room := w.ok(CmdCreateRoom, uid("alice"), "A", &CreateRoom{RoomVersion: "1", RoomID: "!r11:localhost", Preset: "public_chat"}).RoomID
	w.member(uid("bob"), room, uid("bob"), "join")
	// bob (power 0, redact level 50) redacts his own message: same server.
	msg := w.send(uid("bob"), "B", room, "m", "mine")
	w.ok(CmdRedact, uid("bob"), "B", &Redact{RoomID: room, EventID: msg.EventID, TxnID: "r"})

	x := &applyCtx{m: m, b: m.db.NewIndexedBatch()}
	defer x.b.Close()
	check := func(sender, target string) *Rejection {
		t.Helper()
		r := id.EventID(target)
		p := &pdu.PDU{Type: "m.room.redaction", Sender: id.UserID(sender), RoomID: id.RoomID(room), Redacts: &r, Content: []byte(`{}`)}
		p.InternalMeta.EventID = "$new:localhost"
		rej, err := x.authorizeV1(p, "1")
		if err != nil {
			t.Fatal(err)
		}
		return rej
	}
	if rej := check(uid("bob"), "$theirs:example.org"); rej == nil || rej.Kind != KindForbidden {
		t.Errorf("bob redacting another server's event: %v, want forbidden", rej)
	}
	if rej := check(uid("bob"), "$ours:localhost"); rej != nil {
		t.Errorf("bob redacting this server's event: %v", rej)
	}
	if rej := check(uid("alice"), "$theirs:example.org"); rej != nil {
		t.Errorf("alice (redact level) redacting another server's event: %v", rej)
	}
}

// A v1 room can be upgraded, and a room can be upgraded to v1.
func TestV1Upgrade(t *testing.T) {
	m := openMachine(t, t.TempDir())
	defer m.Close()
	w := newWorkload(t, m)
	registerRedactionUsers(w)
	alice := uid("alice")
	old := w.ok(CmdCreateRoom, alice, "A", &CreateRoom{RoomVersion: "1", RoomID: "!up1:localhost", Preset: "public_chat"}).RoomID
	newer := w.ok(CmdUpgradeRoom, alice, "A", &UpgradeRoom{RoomID: old, NewVersion: "2", NewRoomID: "!up2:localhost"}).RoomID
	latest := w.ok(CmdUpgradeRoom, alice, "A", &UpgradeRoom{RoomID: newer, NewVersion: "12"}).RoomID
	if newer != "!up2:localhost" || latest == "" {
		t.Fatalf("upgrades gave %q, %q", newer, latest)
	}
	w.send(alice, "A", latest, "m", "made it")
}
