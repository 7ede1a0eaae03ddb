package machine

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
)

// Shared helpers for the machine's determinism, replay and snapshot tests.

const wlBaseTime int64 = 1_700_000_000_000

func uid(name string) string { return "@" + name + ":localhost" }

func tokenHash(user, device string) [32]byte {
	return sha256.Sum256([]byte("token/" + user + "/" + device))
}

func strp(s string) *string { return &s }

func openMachine(t testing.TB, dir string) *Machine {
	t.Helper()
	m, err := Open(dir, Config{ServerName: "localhost", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open machine in %s: %v", dir, err)
	}
	return m
}

// step is one applied command of a workload and its decided result.
type step struct {
	Index uint64
	Cmd   *Command
	Res   *Result
}

// workload drives a machine with commands at consecutive Raft indexes and
// records each command and result. Later commands may depend on earlier
// results (v12 room IDs are hashes of the create event), so the stream is
// produced by driving a machine; a recorded stream is then replayed on
// others.
type workload struct {
	t     testing.TB
	m     *Machine
	idx   uint64
	steps []step
}

func newWorkload(t testing.TB, m *Machine) *workload {
	return &workload{t: t, m: m, idx: m.AppliedIndex()}
}

// raw applies an already built command at the next index.
func (w *workload) raw(c *Command) *Result {
	w.t.Helper()
	w.idx++
	res, err := w.m.Apply(w.idx, c)
	if err != nil {
		w.t.Fatalf("apply index %d (%s): %v", w.idx, c.Type, err)
	}
	if res == nil {
		w.t.Fatalf("apply index %d (%s): nil result for a new index", w.idx, c.Type)
	}
	w.steps = append(w.steps, step{Index: w.idx, Cmd: c, Res: res})
	return res
}

func (w *workload) cmd(typ, actor, device string, payload any) *Result {
	w.t.Helper()
	c, err := NewCommand(typ, wlBaseTime+int64(w.idx+1)*1000, actor, device, payload)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.raw(c)
}

// ok applies a command that must be accepted.
func (w *workload) ok(typ, actor, device string, payload any) *Result {
	w.t.Helper()
	res := w.cmd(typ, actor, device, payload)
	if res.Err != nil {
		w.t.Fatalf("index %d %s by %s: unexpected rejection (kind %d): %s", w.idx, typ, actor, res.Err.Kind, res.Err.Msg)
	}
	return res
}

// rej applies a command that must be refused with kind.
func (w *workload) rej(kind Kind, typ, actor, device string, payload any) *Result {
	w.t.Helper()
	res := w.cmd(typ, actor, device, payload)
	if res.Err == nil {
		w.t.Fatalf("index %d %s by %s: accepted, want rejection kind %d", w.idx, typ, actor, kind)
	}
	if res.Err.Kind != kind {
		w.t.Fatalf("index %d %s by %s: rejection kind %d (%s), want %d", w.idx, typ, actor, res.Err.Kind, res.Err.Msg, kind)
	}
	return res
}

func (w *workload) send(actor, device, roomID, txn, body string) *Result {
	w.t.Helper()
	return w.ok(CmdSendEvent, actor, device, &SendEvent{RoomID: roomID, Type: "m.room.message",
		Content: json.RawMessage(fmt.Sprintf(`{"msgtype":"m.text","body":%q}`, body)), TxnID: txn})
}

func (w *workload) member(actor, roomID, target, membership string) *Result {
	w.t.Helper()
	return w.ok(CmdMembership, actor, "", &Membership{RoomID: roomID, Target: target, Membership: membership})
}

func (w *workload) head() rlog.Position {
	w.t.Helper()
	return headOf(w.t, w.m)
}

// buildFullWorkload is the ~300-command stream of the determinism tests:
// registrations and logins, every createRoom preset, name/topic/
// initial_state/invites, joins, leaves, kicks, bans, messages with txn IDs
// (and retries of them), state events, and commands the machine refuses.
func buildFullWorkload(w *workload) {
	t := w.t
	t.Helper()
	alice, bob, carol, dave, erin, frank := uid("alice"), uid("bob"), uid("carol"), uid("dave"), uid("erin"), uid("frank")
	dev := map[string]string{alice: "ADEV", bob: "BDEV", carol: "CDEV", dave: "DDEV", erin: "EDEV", frank: ""}

	// Accounts.
	for _, u := range []string{alice, bob, carol, dave, erin} {
		w.ok(CmdRegister, "", "", &Register{UserID: u, PasswordHash: "$2a$10$hash-of-" + u, DeviceID: dev[u], DisplayName: "first device", TokenHash: tokenHash(u, dev[u])})
	}
	w.ok(CmdRegister, "", "", &Register{UserID: frank, InhibitLogin: true})
	w.ok(CmdRegister, "", "", &Register{UserID: uid("guest1"), Guest: true, DeviceID: "GDEV", TokenHash: tokenHash(uid("guest1"), "GDEV")})
	w.rej(KindUserInUse, CmdRegister, "", "", &Register{UserID: bob, DeviceID: "OTHER", TokenHash: tokenHash(bob, "OTHER")})
	w.ok(CmdLogin, alice, "", &Login{DeviceID: "ADEV2", DisplayName: "laptop", TokenHash: tokenHash(alice, "ADEV2")})
	w.ok(CmdLogin, bob, "", &Login{DeviceID: "BDEV2", TokenHash: tokenHash(bob, "BDEV2")})
	w.ok(CmdLogin, alice, "", &Login{DeviceID: "ADEV2", DisplayName: "laptop again", TokenHash: tokenHash(alice, "ADEV2-again")})
	w.rej(KindForbidden, CmdLogin, uid("nobody"), "", &Login{DeviceID: "X", TokenHash: tokenHash("nobody", "X")})
	w.rej(KindUnknownToken, CmdLogout, carol, "NOSUCHDEV", &Logout{})
	w.rej(KindBadJSON, "frobnicate", alice, dev[alice], map[string]any{"x": 1})
	w.rej(KindBadJSON, "", alice, dev[alice], map[string]any{})
	w.raw(&Command{Type: CmdRegister, Time: wlBaseTime, Body: []byte{0xc1, 0xc1, 0xc1}})
	w.raw(&Command{Type: CmdCreateRoom, Time: wlBaseTime, Actor: alice, Body: nil})
	for _, s := range w.steps[len(w.steps)-2:] {
		if s.Res.Err == nil || s.Res.Err.Kind != KindBadJSON {
			t.Fatalf("undecodable body at index %d: result %+v, want KindBadJSON", s.Index, s.Res)
		}
	}

	// Rooms, one per preset (and the preset implied by visibility), in
	// versions 12 (room ID from the create event) and 9-11 (ID chosen by
	// the API node).
	r1 := w.ok(CmdCreateRoom, alice, dev[alice], &CreateRoom{Preset: "public_chat", Name: strp("Lobby"), Topic: strp("Welcome"),
		InitialState: []StateEvent{
			{Type: "m.room.avatar", Content: json.RawMessage(`{"url":"mxc://localhost/avatar"}`)},
			{Type: "org.example.custom", StateKey: "k1", Content: json.RawMessage(`{"n":150,"max":9007199254740991,"s":"é\u0000x"}`)},
		},
		Invite: []string{bob}}).RoomID
	r2 := w.ok(CmdCreateRoom, alice, dev[alice], &CreateRoom{RoomVersion: "11", RoomID: "!r2:localhost", Preset: "private_chat",
		Name: strp("Private"), Invite: []string{carol, dave}, IsDirect: true}).RoomID
	r3 := w.ok(CmdCreateRoom, bob, dev[bob], &CreateRoom{Preset: "trusted_private_chat", Invite: []string{erin},
		CreationContent: json.RawMessage(`{"m.federate":false}`)}).RoomID
	r4 := w.ok(CmdCreateRoom, carol, dev[carol], &CreateRoom{RoomVersion: "10", RoomID: "!r4:localhost", Visibility: "public",
		Topic: strp("implied public_chat")}).RoomID
	r5 := w.ok(CmdCreateRoom, dave, dev[dave], &CreateRoom{RoomVersion: "9", RoomID: "!r5:localhost",
		PowerLevelContentOverride: json.RawMessage(`{"users_default":10,"events":{"m.room.topic":5}}`)}).RoomID
	r6 := w.ok(CmdCreateRoom, erin, dev[erin], &CreateRoom{RoomID: "!ignored-for-v12:localhost", Preset: "trusted_private_chat",
		Invite: []string{alice}, IsDirect: true}).RoomID
	if r2 != "!r2:localhost" || r4 != "!r4:localhost" || r5 != "!r5:localhost" || r6 == "!ignored-for-v12:localhost" {
		t.Fatalf("room IDs %q %q %q %q", r2, r4, r5, r6)
	}
	if ids := map[string]bool{r1: true, r2: true, r3: true, r4: true, r5: true, r6: true}; len(ids) != 6 || ids[""] {
		t.Fatalf("room IDs not distinct: %q %q %q %q %q %q", r1, r2, r3, r4, r5, r6)
	}
	// Refused creations.
	w.rej(KindUnsupportedRoomVersion, CmdCreateRoom, alice, dev[alice], &CreateRoom{RoomVersion: "13", RoomID: "!v13:localhost"})
	w.rej(KindInvalidParam, CmdCreateRoom, alice, dev[alice], &CreateRoom{RoomVersion: "11"})
	w.rej(KindBadJSON, CmdCreateRoom, alice, dev[alice], &CreateRoom{Preset: "bogus"})
	w.rej(KindBadJSON, CmdCreateRoom, alice, dev[alice], &CreateRoom{CreationContent: json.RawMessage(`[1,2]`)})
	w.rej(KindBadJSON, CmdCreateRoom, alice, dev[alice], &CreateRoom{PowerLevelContentOverride: json.RawMessage(`"nope"`)})
	// A second create for an existing room ID must not touch that room.
	if res := w.cmd(CmdCreateRoom, bob, dev[bob], &CreateRoom{RoomVersion: "11", RoomID: r2, Preset: "public_chat"}); res.Err == nil {
		t.Fatalf("create_room over existing room %s accepted: %+v", r2, res)
	}
	// An initial_state entry the creator may not send sinks the whole room.
	w.rej(KindForbidden, CmdCreateRoom, alice, dev[alice], &CreateRoom{Preset: "public_chat", InitialState: []StateEvent{
		{Type: "m.room.member", StateKey: bob, Content: json.RawMessage(`{"membership":"join"}`)}}})

	// Memberships.
	joined := w.member(bob, r1, bob, "join")
	again := w.ok(CmdMembership, bob, "", &Membership{RoomID: r1, Target: bob, Membership: "join", DisplayName: "Bob"})
	if again.EventID != joined.EventID || again.Seq != joined.Seq {
		t.Fatalf("re-join of a joined member wrote something: %+v then %+v", joined, again)
	}
	w.ok(CmdMembership, carol, "", &Membership{RoomID: r1, Target: carol, Membership: "join", DisplayName: "Carol", AvatarURL: "mxc://localhost/c"})
	w.member(frank, r1, frank, "join")
	w.member(carol, r2, carol, "join")
	w.member(dave, r2, dave, "join")
	w.rej(KindForbidden, CmdMembership, erin, "", &Membership{RoomID: r2, Target: erin, Membership: "join"})
	w.rej(KindNotFound, CmdMembership, bob, "", &Membership{RoomID: "!nonexistent:localhost", Target: bob, Membership: "join"})
	w.rej(KindForbidden, CmdMembership, bob, "", &Membership{RoomID: "!nonexistent:localhost", Target: bob, Membership: "leave"})
	w.member(erin, r3, erin, "join")
	w.member(dave, r4, dave, "join")
	w.member(alice, r6, alice, "join")
	w.rej(KindForbidden, CmdMembership, alice, "", &Membership{RoomID: r5, Target: alice, Membership: "join"})
	w.rej(KindForbidden, CmdMembership, alice, "", &Membership{RoomID: r4, Target: bob, Membership: "join"})

	// Sends the machine refuses.
	w.rej(KindForbidden, CmdSendEvent, bob, dev[bob], &SendEvent{RoomID: r2, Type: "m.room.message", Content: json.RawMessage(`{"body":"not in room"}`), TxnID: "x1"})
	w.rej(KindForbidden, CmdSendEvent, carol, dev[carol], &SendEvent{RoomID: "!nope:localhost", Type: "m.room.message", Content: json.RawMessage(`{"body":"no room"}`), TxnID: "x2"})
	w.rej(KindForbidden, CmdSendEvent, alice, dev[alice], &SendEvent{RoomID: r1, Type: "m.room.create", StateKey: strp(""), Content: json.RawMessage(`{}`)})

	// State events and power.
	w.ok(CmdSendEvent, alice, dev[alice], &SendEvent{RoomID: r1, Type: "m.room.name", StateKey: strp(""), Content: json.RawMessage(`{"name":"Lobby 2"}`)})
	w.rej(KindForbidden, CmdSendEvent, bob, dev[bob], &SendEvent{RoomID: r1, Type: "m.room.topic", StateKey: strp(""), Content: json.RawMessage(`{"topic":"bob's"}`)})
	w.ok(CmdSendEvent, alice, dev[alice], &SendEvent{RoomID: r1, Type: "m.room.power_levels", StateKey: strp(""), Content: json.RawMessage(
		`{"users":{"` + bob + `":50},"users_default":0,"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0,"events":{"m.room.power_levels":100}}`)})
	w.ok(CmdSendEvent, bob, dev[bob], &SendEvent{RoomID: r1, Type: "m.room.topic", StateKey: strp(""), Content: json.RawMessage(`{"topic":"bob's"}`)})
	w.ok(CmdSendEvent, dave, dev[dave], &SendEvent{RoomID: r5, Type: "m.room.topic", StateKey: strp(""), Content: json.RawMessage(`{"topic":"solo"}`)})
	w.ok(CmdSendEvent, carol, dev[carol], &SendEvent{RoomID: r4, Type: "org.example.state", StateKey: strp(carol), Content: json.RawMessage(`{"v":[1,2,3]}`)})

	// Kicks, bans, leaves.
	w.ok(CmdMembership, alice, "", &Membership{RoomID: r1, Target: carol, Membership: "kick", Reason: "spam"})
	w.rej(KindForbidden, CmdSendEvent, carol, dev[carol], &SendEvent{RoomID: r1, Type: "m.room.message", Content: json.RawMessage(`{"body":"kicked"}`)})
	w.member(carol, r1, carol, "join")
	w.ok(CmdMembership, alice, "", &Membership{RoomID: r1, Target: dave, Membership: "ban", Reason: "troll"})
	w.rej(KindForbidden, CmdMembership, dave, "", &Membership{RoomID: r1, Target: dave, Membership: "join"})
	w.member(alice, r1, dave, "leave") // unban
	w.member(dave, r1, dave, "join")
	w.rej(KindForbidden, CmdMembership, bob, "", &Membership{RoomID: r1, Target: alice, Membership: "kick"})
	w.ok(CmdMembership, bob, "", &Membership{RoomID: r1, Target: frank, Membership: "kick"})
	w.member(carol, r2, carol, "leave")
	w.rej(KindForbidden, CmdSendEvent, carol, dev[carol], &SendEvent{RoomID: r2, Type: "m.room.message", Content: json.RawMessage(`{"body":"left"}`)})
	w.member(alice, r2, erin, "invite")
	w.member(erin, r2, erin, "join")
	w.rej(KindForbidden, CmdMembership, frank, "", &Membership{RoomID: r2, Target: frank, Membership: "leave"})
	// Profiles: a displayname or avatar change is also a join in every
	// room the user is joined to; custom fields change the profile only.
	w.ok(CmdSetProfileField, dave, dev[dave], &ProfileField{Key: "displayname", Value: json.RawMessage(`"Dave D."`)})
	w.ok(CmdSetProfileField, erin, dev[erin], &ProfileField{Key: "avatar_url", Value: json.RawMessage(`"mxc://localhost/erin"`)})
	w.ok(CmdSetProfileField, alice, dev[alice], &ProfileField{Key: "m.tz", Value: json.RawMessage(`"Europe/Berlin"`)})
	w.ok(CmdSetProfileField, alice, dev[alice], &ProfileField{Key: "org.example.status", Value: json.RawMessage(`{"text":"away","n":1.50}`)})
	w.ok(CmdDeleteProfileField, alice, dev[alice], &ProfileField{Key: "m.tz"})
	w.ok(CmdSetProfileField, dave, dev[dave], &ProfileField{Key: "displayname", Value: json.RawMessage(`""`)})
	w.rej(KindInvalidParam, CmdSetProfileField, bob, dev[bob], &ProfileField{Key: "displayname", Value: json.RawMessage(`42`)})
	w.rej(KindInvalidParam, CmdSetProfileField, bob, dev[bob], &ProfileField{Key: "nickname", Value: json.RawMessage(`"b"`)})
	// Sync filters.
	for i, f := range []string{`{"room":{"timeline":{"limit":10}}}`, `{}`, `{"event_fields":["type","content.body"]}`} {
		user := []string{alice, alice, bob}[i]
		if res := w.ok(CmdFilter, user, dev[user], &CreateFilter{Filter: json.RawMessage(f)}); res.FilterID == "" {
			t.Fatalf("filter %d: no filter ID", i)
		}
	}
	buildKeysWorkload(w, alice, bob)      // keys_test.go; the logout below drops BDEV2's keys
	buildKeyBackupWorkload(w, alice, bob) // keybackup_test.go
	w.ok(CmdLogout, bob, "BDEV2", &Logout{})
	w.ok(CmdLogoutAll, uid("guest1"), "GDEV", &Logout{})

	// Messages, with retries of the same transaction.
	type sender struct{ user, room string }
	senders := []sender{{alice, r1}, {bob, r1}, {carol, r1}, {dave, r1}, {alice, r2}, {dave, r2}, {erin, r2},
		{bob, r3}, {erin, r3}, {carol, r4}, {dave, r4}, {dave, r5}, {erin, r6}, {alice, r6}}
	for i := range 200 {
		s := senders[i%len(senders)]
		txn := fmt.Sprintf("m%d", i)
		first := w.send(s.user, dev[s.user], s.room, txn, fmt.Sprintf("message %d", i))
		if first.EventID == "" || first.RoomID != s.room {
			t.Fatalf("send %d: result %+v", i, first)
		}
		if i%9 == 8 {
			before := w.head()
			retry := w.send(s.user, dev[s.user], s.room, txn, fmt.Sprintf("message %d (retried)", i))
			if retry.EventID != first.EventID || w.head() != before {
				t.Fatalf("retry of txn %s gave %s (head %d -> %d), first was %s", txn, retry.EventID, before.Seq, w.head().Seq, first.EventID)
			}
		}
		if i%50 == 25 {
			w.ok(CmdSendEvent, alice, dev[alice], &SendEvent{RoomID: r1, Type: "m.room.name", StateKey: strp(""), Content: json.RawMessage(fmt.Sprintf(`{"name":"Lobby at %d"}`, i))})
		}
		if i%60 == 30 {
			w.member(carol, r4, carol, "leave")
			w.member(carol, r4, carol, "join")
		}
	}
	// The same transaction ID from another device is another transaction.
	first := w.steps[slicesIndexTxn(w.steps, "m0")].Res.EventID
	if other := w.send(alice, "ADEV2", r1, "m0", "from the laptop"); other.EventID == first {
		t.Fatalf("txn m0 from another device deduplicated to %s", first)
	}
}

// slicesIndexTxn finds the step that first sent txn.
func slicesIndexTxn(steps []step, txn string) int {
	for i, s := range steps {
		if s.Cmd.Type != CmdSendEvent {
			continue
		}
		var p SendEvent
		if decodeMsgpack(s.Cmd.Body, &p) == nil && p.TxnID == txn {
			return i
		}
	}
	panic("no such txn " + txn)
}

// headOf reads the committed log head from the store.
func headOf(t testing.TB, m *Machine) rlog.Position {
	t.Helper()
	var h rlog.Position
	if err := m.View(func(r pebble.Reader) error {
		var err error
		h, err = rlog.ReadHead(r)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

func digestsOf(t testing.TB, m *Machine) map[string][32]byte {
	t.Helper()
	var d map[string][32]byte
	if err := m.View(func(r pebble.Reader) error {
		var err error
		d, err = m.Engine().Digests(r)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

type kv struct{ K, V []byte }

// dumpStore returns every key and value in the store, in key order.
func dumpStore(t testing.TB, m *Machine) []kv {
	t.Helper()
	var out []kv
	if err := m.View(func(r pebble.Reader) error {
		it, err := r.NewIter(nil)
		if err != nil {
			return err
		}
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			out = append(out, kv{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
		}
		return it.Error()
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// rawLog returns every record's encoding, in seq order.
func rawLog(t testing.TB, m *Machine) [][]byte {
	t.Helper()
	var out [][]byte
	if err := m.View(func(r pebble.Reader) error {
		return rlog.Scan(r, 1, 0, func(rec *rlog.Record, raw []byte) error {
			if rec.Seq != uint64(len(out))+1 {
				return fmt.Errorf("record %d out of order (expected %d)", rec.Seq, len(out)+1)
			}
			out = append(out, bytes.Clone(raw))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func verifyChain(t testing.TB, m *Machine) rlog.Position {
	t.Helper()
	var h rlog.Position
	if err := m.View(func(r pebble.Reader) error {
		var err error
		h, err = rlog.VerifyChain(r)
		return err
	}); err != nil {
		t.Fatalf("verify chain: %v", err)
	}
	return h
}

// compareStores fails unless a and b hold byte-identical stores.
func compareStores(t testing.TB, a, b *Machine) {
	t.Helper()
	if ha, hb := headOf(t, a), headOf(t, b); ha != hb {
		t.Errorf("log heads differ: %d/%s vs %d/%s", ha.Seq, ha.Hash, hb.Seq, hb.Hash)
	}
	if da, db := digestsOf(t, a), digestsOf(t, b); !reflect.DeepEqual(da, db) {
		for name := range da {
			if da[name] != db[name] {
				t.Errorf("projection %s digests differ: %x vs %x", name, da[name], db[name])
			}
		}
	}
	la, lb := rawLog(t, a), rawLog(t, b)
	if len(la) != len(lb) {
		t.Errorf("logs hold %d and %d records", len(la), len(lb))
	}
	for i := range min(len(la), len(lb)) {
		if !bytes.Equal(la[i], lb[i]) {
			t.Errorf("record %d differs:\n%x\n%x", i+1, la[i], lb[i])
			break
		}
	}
	sa, sb := dumpStore(t, a), dumpStore(t, b)
	if len(sa) != len(sb) {
		t.Errorf("stores hold %d and %d keys", len(sa), len(sb))
	}
	for i := range min(len(sa), len(sb)) {
		if !bytes.Equal(sa[i].K, sb[i].K) || !bytes.Equal(sa[i].V, sb[i].V) {
			t.Errorf("store entry %d differs:\nkey %x value %x\nkey %x value %x", i, sa[i].K, sa[i].V, sb[i].K, sb[i].V)
			break
		}
	}
	if ia, ib := a.AppliedIndex(), b.AppliedIndex(); ia != ib {
		t.Errorf("applied indexes %d vs %d", ia, ib)
	}
}
