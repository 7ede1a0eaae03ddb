package machine

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/accounts"
)

func TestReplayedIndexesApplyNothingTwice(t *testing.T) {
	dir := t.TempDir()
	m := openMachine(t, dir)
	w := newWorkload(t, m)
	buildFullWorkload(w)
	steps := w.steps
	n := steps[len(steps)-1].Index
	head, digests, dump := headOf(t, m), digestsOf(t, m), dumpStore(t, m)

	// Re-applying on the live machine is already a no-op.
	for _, s := range steps[len(steps)-20:] {
		if res, err := m.Apply(s.Index, s.Cmd); err != nil || res != nil {
			t.Fatalf("live re-apply of index %d: result %+v, err %v; want nothing", s.Index, res, err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m = openMachine(t, dir)
	defer m.Close()
	if got := m.AppliedIndex(); got != n {
		t.Fatalf("applied index after reopen %d, want %d", got, n)
	}
	if got := m.Log().Pending(); got != head {
		t.Fatalf("log reopened at %d, want %d", got.Seq, head.Seq)
	}
	for _, s := range steps {
		enc, _ := s.Cmd.Encode()
		cmd, err := DecodeCommand(enc)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Apply(s.Index, cmd)
		if err != nil || res != nil {
			t.Fatalf("replayed index %d (%s): result %+v, err %v; want nothing", s.Index, s.Cmd.Type, res, err)
		}
	}
	if got := headOf(t, m); got != head {
		t.Fatalf("replay moved the head from %d to %d", head.Seq, got.Seq)
	}
	if got := digestsOf(t, m); !reflect.DeepEqual(got, digests) {
		t.Fatalf("replay changed digests")
	}
	if got := dumpStore(t, m); !reflect.DeepEqual(got, dump) {
		t.Fatalf("replay changed the store")
	}

	// The next index applies normally, on top of the old head: a
	// registration is three records (account, default displayname,
	// session).
	w = newWorkload(t, m)
	res := w.ok(CmdRegister, "", "", &Register{UserID: uid("newcomer"), DeviceID: "N"})
	if res.Seq != head.Seq+3 || m.AppliedIndex() != n+1 {
		t.Fatalf("index %d: seq %d (want %d), applied %d", n+1, res.Seq, head.Seq+3, m.AppliedIndex())
	}
	// Raft indexes may skip (configuration entries); lower ones stay skipped.
	c, _ := NewCommand(CmdLogin, wlBaseTime, uid("newcomer"), "", &Login{DeviceID: "N2"})
	if res, err := m.Apply(n+5, c); err != nil || res == nil || res.Err != nil {
		t.Fatalf("index %d after a gap: %+v, %v", n+5, res, err)
	}
	if res, err := m.Apply(n+3, c); err != nil || res != nil {
		t.Fatalf("index %d below the applied index %d: %+v, %v", n+3, n+5, res, err)
	}
	if got := verifyChain(t, m); got.Seq != head.Seq+4 {
		t.Fatalf("head %d, want %d", got.Seq, head.Seq+4)
	}
}

// storeDiff lists the keys whose presence or value differs.
func storeDiff(a, b []kv) [][]byte {
	var out [][]byte
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && bytes.Compare(a[i].K, b[j].K) < 0):
			out = append(out, a[i].K)
			i++
		case i == len(a) || bytes.Compare(a[i].K, b[j].K) > 0:
			out = append(out, b[j].K)
			j++
		default:
			if !bytes.Equal(a[i].V, b[j].V) {
				out = append(out, a[i].K)
			}
			i++
			j++
		}
	}
	return out
}

// onlyAppliedChanged fails unless the store changed in nothing but the
// applied index.
func onlyAppliedChanged(t *testing.T, before, after []kv) {
	t.Helper()
	for _, k := range storeDiff(before, after) {
		if !bytes.Equal(k, appliedKey) {
			t.Errorf("key %x changed", k)
		}
	}
}

func TestRejectedCommandLeavesNoRecord(t *testing.T) {
	dir := t.TempDir()
	m := openMachine(t, dir)
	w := newWorkload(t, m)
	w.ok(CmdRegister, "", "", &Register{UserID: uid("alice"), DeviceID: "A", TokenHash: tokenHash("alice", "A")})
	head, before := headOf(t, m), dumpStore(t, m)

	res := w.rej(KindUserInUse, CmdRegister, "", "", &Register{UserID: uid("alice"), DeviceID: "B", TokenHash: tokenHash("alice", "B")})
	if res.Seq != head.Seq {
		t.Fatalf("rejection reports seq %d, head is %d", res.Seq, head.Seq)
	}
	if got := headOf(t, m); got != head {
		t.Fatalf("rejection moved the head %d -> %d", head.Seq, got.Seq)
	}
	if m.Log().Pending() != head {
		t.Fatalf("rejection left a pending append")
	}
	if m.AppliedIndex() != 2 {
		t.Fatalf("applied index %d after a rejection at 2", m.AppliedIndex())
	}
	onlyAppliedChanged(t, before, dumpStore(t, m))
	if err := m.View(func(r pebble.Reader) error {
		d, err := accounts.GetDevice(r, uid("alice"), "B")
		if d != nil {
			t.Errorf("rejected registration started a session")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m = openMachine(t, dir)
	defer m.Close()
	if m.AppliedIndex() != 2 {
		t.Fatalf("applied index %d after reopen, want 2", m.AppliedIndex())
	}
	// Index 2 was decided (as a rejection): a different command replayed
	// at that index must not apply.
	c, _ := NewCommand(CmdRegister, wlBaseTime, "", "", &Register{UserID: uid("bob"), DeviceID: "B"})
	if res, err := m.Apply(2, c); err != nil || res != nil {
		t.Fatalf("re-apply of rejected index 2: %+v, %v", res, err)
	}
	if err := m.View(func(r pebble.Reader) error {
		u, err := accounts.GetUser(r, uid("bob"))
		if u != nil {
			t.Errorf("skipped index registered bob")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The next records (account, displayname, session) follow the last
	// accepted one without a gap.
	res, err := m.Apply(3, c)
	if err != nil || res.Err != nil || res.Seq != head.Seq+3 {
		t.Fatalf("index 3: %+v, %v (want seq %d)", res, err, head.Seq+3)
	}
	verifyChain(t, m)
}

func TestCreateRoomIsAllOrNothing(t *testing.T) {
	m := openMachine(t, t.TempDir())
	defer m.Close()
	w := newWorkload(t, m)
	alice, bob := uid("alice"), uid("bob")
	w.ok(CmdRegister, "", "", &Register{UserID: alice, DeviceID: "A"})
	w.ok(CmdRegister, "", "", &Register{UserID: bob, DeviceID: "B"})

	cases := []struct {
		name string
		room *CreateRoom
		kind Kind
	}{
		{name: "initial_state member event for someone else", kind: KindForbidden, room: &CreateRoom{Preset: "public_chat", Name: strp("n"),
			InitialState: []StateEvent{
				{Type: "m.room.avatar", Content: json.RawMessage(`{"url":"mxc://x/y"}`)},
				{Type: "m.room.member", StateKey: bob, Content: json.RawMessage(`{"membership":"join"}`)},
			}}},
		{name: "initial_state content not an object", kind: KindBadJSON, room: &CreateRoom{
			InitialState: []StateEvent{
				{Type: "m.room.avatar", Content: json.RawMessage(`{"url":"mxc://x/y"}`)},
				{Type: "org.example", Content: json.RawMessage(`"string"`)},
			}}},
		{name: "power level override lists the v12 creator", kind: KindForbidden, room: &CreateRoom{Invite: []string{bob},
			PowerLevelContentOverride: json.RawMessage(`{"state_default":200,"users":{"` + alice + `":100}}`)}},
		{name: "v11 name the creator's power level cannot set", kind: KindForbidden, room: &CreateRoom{RoomVersion: "11", RoomID: "!pl:localhost",
			PowerLevelContentOverride: json.RawMessage(`{"events":{"m.room.name":200}}`), Name: strp("too high"),
			InitialState: []StateEvent{{Type: "m.room.avatar", Content: json.RawMessage(`{"url":"mxc://x/y"}`)}}}},
		{name: "name too large for a PDU, after initial_state", kind: KindTooLarge, room: &CreateRoom{
			InitialState: []StateEvent{{Type: "m.room.avatar", Content: json.RawMessage(`{"url":"mxc://x/y"}`)}},
			Name:         strp(string(bytes.Repeat([]byte("n"), 70000)))}},
		{name: "trusted_private_chat inviting an invalid user ID", kind: KindInvalidParam, room: &CreateRoom{
			Preset: "trusted_private_chat", Invite: []string{bob, "notanid"}}},
		{name: "private_chat inviting an invalid user ID", kind: KindInvalidParam, room: &CreateRoom{
			Preset: "private_chat", Name: strp("n"), Invite: []string{bob, "notanid"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			head, before := headOf(t, m), dumpStore(t, m)
			res := w.cmd(CmdCreateRoom, alice, "A", tc.room)
			if res.Err == nil {
				t.Fatalf("accepted: room %s", res.RoomID)
			}
			if res.Err.Kind != tc.kind {
				t.Errorf("rejection kind %d (%s), want %d", res.Err.Kind, res.Err.Msg, tc.kind)
			}
			if res.RoomID != "" || res.EventID != "" || res.Seq != head.Seq {
				t.Errorf("rejection result %+v names a room, an event or a new position", res)
			}
			if got := headOf(t, m); got != head {
				t.Errorf("head moved %d -> %d", head.Seq, got.Seq)
			}
			onlyAppliedChanged(t, before, dumpStore(t, m))
		})
	}
	// The same room without the offending part is created, so the cases
	// above were refused part-way, after earlier events had been emitted.
	head := headOf(t, m)
	res := w.ok(CmdCreateRoom, alice, "A", &CreateRoom{Preset: "public_chat", Name: strp("n"),
		InitialState: []StateEvent{{Type: "m.room.avatar", Content: json.RawMessage(`{"url":"mxc://x/y"}`)}}})
	if res.Seq < head.Seq+7 {
		t.Fatalf("room creation wrote %d records", res.Seq-head.Seq)
	}
	verifyChain(t, m)
}

// TestCreateRoomOlderVersions creates a room of every supported version.
func TestCreateRoomOlderVersions(t *testing.T) {
	m := openMachine(t, t.TempDir())
	defer m.Close()
	w := newWorkload(t, m)
	w.ok(CmdRegister, "", "", &Register{UserID: uid("alice"), DeviceID: "A"})
	var broken []string
	created := map[string]string{}
	for _, v := range SupportedRoomVersions {
		res := w.cmd(CmdCreateRoom, uid("alice"), "A", &CreateRoom{RoomVersion: v, RoomID: "!v" + v + ":localhost", Name: strp("v" + v)})
		if res.Err != nil {
			broken = append(broken, v+": "+res.Err.Msg)
			continue
		}
		created[v] = res.RoomID
	}
	for v, roomID := range created {
		if v != "12" && roomID != "!v"+v+":localhost" {
			t.Errorf("version %s room got ID %s, want the one chosen by the API node", v, roomID)
		}
		w.send(uid("alice"), "A", roomID, "t"+v, "hello")
	}
	if len(broken) > 0 {
		t.Fatalf("createRoom is refused for advertised room versions: %q", broken)
	}
	verifyChain(t, m)
}
