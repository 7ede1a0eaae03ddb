package machine

import (
	"encoding/json"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/rooms"
)

// A retried transaction answers with the first event and writes nothing,
// also after a restart (the txn index lives in the store, not in memory).
func TestTxnRetryAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	m := openMachine(t, dir)
	w := newWorkload(t, m)
	alice, room := aliceWithRoom(w, "r")
	first := w.send(alice, "A", room, "t1", "hello")
	m.Close()

	m = openMachine(t, dir)
	defer m.Close()
	w.m = m
	head := headOf(t, m)
	again := w.send(alice, "A", room, "t1", "hello, with different content this time")
	if again.EventID != first.EventID || again.RoomID != room || headOf(t, m) != head {
		t.Fatalf("retry after restart: %+v (head %d -> %d), first %+v", again, head.Seq, headOf(t, m).Seq, first)
	}
	// A message without a txn ID is never deduplicated.
	a := w.ok(CmdSendEvent, alice, "A", &SendEvent{RoomID: room, Type: "m.room.message", Content: json.RawMessage(`{"body":"x"}`)})
	b := w.ok(CmdSendEvent, alice, "A", &SendEvent{RoomID: room, Type: "m.room.message", Content: json.RawMessage(`{"body":"x"}`)})
	if a.EventID == b.EventID {
		t.Fatalf("two sends without txn ID gave one event")
	}
}

// The same txn ID sent to a second room: the result must not pair the
// second room with an event of the first.
func TestTxnReusedInAnotherRoom(t *testing.T) {
	m := openMachine(t, t.TempDir())
	defer m.Close()
	w := newWorkload(t, m)
	alice, r1 := aliceWithRoom(w, "one")
	r2 := w.ok(CmdCreateRoom, alice, "A", &CreateRoom{Name: strp("two")}).RoomID
	first := w.send(alice, "A", r1, "same", "to room one")
	second := w.send(alice, "A", r2, "same", "to room two")
	var where string
	if err := m.View(func(r pebble.Reader) error {
		ref, err := rooms.LocateEvent(r, second.EventID)
		if ref != nil {
			where = ref.RoomID
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if where != second.RoomID {
		t.Fatalf("send_event with a txn ID already used in %s returned Result{EventID: %s (an event of %s), RoomID: %s} "+
			"and sent nothing to %s", r1, second.EventID, where, second.RoomID, r2)
	}
	if second.EventID == first.EventID {
		t.Fatalf("one event for two rooms")
	}
}

// aliceWithRoom registers alice with device A and has her create a room.
func aliceWithRoom(w *workload, name string) (alice, roomID string) {
	w.t.Helper()
	alice = uid("alice")
	w.ok(CmdRegister, "", "", &Register{UserID: alice, DeviceID: "A"})
	return alice, w.ok(CmdCreateRoom, alice, "A", &CreateRoom{Name: strp(name)}).RoomID
}
