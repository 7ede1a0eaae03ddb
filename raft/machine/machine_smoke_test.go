package machine

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/rooms"
)

func mustApply(t *testing.T, m *Machine, idx uint64, typ, actor, device string, payload any) *Result {
	t.Helper()
	cmd, err := NewCommand(typ, 1700000000000+int64(idx), actor, device, payload)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Apply(idx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSmokeCreateRoomAndSend(t *testing.T) {
	m, err := Open(t.TempDir(), Config{ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mustApply(t, m, 1, CmdRegister, "", "", &Register{UserID: "@alice:localhost", DeviceID: "A"})
	mustApply(t, m, 2, CmdRegister, "", "", &Register{UserID: "@bob:localhost", DeviceID: "B"})
	name := "Room"
	res := mustApply(t, m, 3, CmdCreateRoom, "@alice:localhost", "A", &CreateRoom{Preset: "private_chat", Name: &name, Invite: []string{"@bob:localhost"}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	t.Logf("room %s seq %d", res.RoomID, res.Seq)
	roomID := res.RoomID
	res = mustApply(t, m, 4, CmdSendEvent, "@bob:localhost", "B", &SendEvent{RoomID: roomID, Type: "m.room.message", Content: []byte(`{"body":"hi"}`), TxnID: "t1"})
	if res.Err == nil {
		t.Fatal("bob sent before joining")
	}
	t.Log(res.Err)
	res = mustApply(t, m, 5, CmdMembership, "@bob:localhost", "B", &Membership{RoomID: roomID, Target: "@bob:localhost", Membership: "join"})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	res = mustApply(t, m, 6, CmdSendEvent, "@bob:localhost", "B", &SendEvent{RoomID: roomID, Type: "m.room.message", Content: []byte(`{"body":"hi"}`), TxnID: "t1"})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	first := res.EventID
	res = mustApply(t, m, 7, CmdSendEvent, "@bob:localhost", "B", &SendEvent{RoomID: roomID, Type: "m.room.message", Content: []byte(`{"body":"hi"}`), TxnID: "t1"})
	if res.EventID != first {
		t.Fatal("not idempotent")
	}
	if got := mustApply(t, m, 7, CmdSendEvent, "@bob:localhost", "B", &SendEvent{}); got != nil {
		t.Fatal("replayed index applied")
	}
	m.View(func(r pebble.Reader) error {
		st, err := rooms.StateAt(r, roomID, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range st {
			t.Logf("%d %s %q %s", e.Seq, e.Type, *e.StateKey, e.Content)
		}
		return nil
	})
}
