package machine

import (
	"encoding/json"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/accountdata"
	"chronicle/projections/presence"
	"chronicle/projections/receipts"
	"chronicle/projections/todevice"
	"chronicle/projections/typing"
)

func userDataFixture(t *testing.T) (*Machine, *workload, string) {
	m := openMachine(t, t.TempDir())
	t.Cleanup(func() { m.Close() })
	w := newWorkload(t, m)
	for _, u := range []string{"alice", "bob"} {
		w.ok(CmdRegister, "", "", &Register{UserID: uid(u), DeviceID: "D" + u})
	}
	room := w.ok(CmdCreateRoom, uid("alice"), "Dalice", &CreateRoom{Preset: "public_chat"}).RoomID
	w.member(uid("bob"), room, uid("bob"), "join")
	return m, w, room
}

func view(t *testing.T, m *Machine, fn func(r pebble.Reader)) {
	t.Helper()
	if err := m.View(func(r pebble.Reader) error { fn(r); return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestTypingExpiresByRecord(t *testing.T) {
	m, w, room := userDataFixture(t)
	w.ok(CmdTyping, uid("bob"), "Dbob", &Typing{RoomID: room, Typing: true, Timeout: 30000})
	w.rej(KindForbidden, CmdTyping, uid("carol"), "Dcarol", &Typing{RoomID: room, Typing: true, Timeout: 1})
	view(t, m, func(r pebble.Reader) {
		if users, _ := typing.Users(r, room); len(users) != 1 || users[0] != uid("bob") {
			t.Fatalf("typing users %v", users)
		}
	})
	// The expirer's command at a time before the timeout stops nothing;
	// one after it stops bob.
	head := w.head()
	w.ok(CmdTypingExpire, "", "", &TypingExpire{})
	if w.head() != head {
		t.Fatal("an early expiry wrote a record")
	}
	cmd, _ := NewCommand(CmdTypingExpire, wlBaseTime+10_000_000, "", "", &TypingExpire{})
	w.raw(cmd)
	view(t, m, func(r pebble.Reader) {
		if users, _ := typing.Users(r, room); len(users) != 0 {
			t.Fatalf("typing users after expiry %v", users)
		}
		if due, next, _ := typing.ExpiredBy(r, 1<<62); len(due) != 0 || next != 0 {
			t.Fatalf("expiry queue not empty: %v %d", due, next)
		}
	})
}

func TestToDeviceIdempotentAndAcknowledged(t *testing.T) {
	m, w, _ := userDataFixture(t)
	w.ok(CmdLogin, uid("bob"), "Dbob2", &Login{DeviceID: "Dbob2"})
	msg := &SendToDevice{Type: "m.test", TxnID: "t1", Messages: map[string]map[string]json.RawMessage{
		uid("bob"): {"*": json.RawMessage(`{"n":1}`)},
	}}
	w.ok(CmdSendToDevice, uid("alice"), "Dalice", msg)
	head := w.head()
	w.ok(CmdSendToDevice, uid("alice"), "Dalice", msg) // retry
	if w.head() != head {
		t.Fatal("a retried to-device txn wrote records")
	}
	view(t, m, func(r pebble.Reader) {
		for _, d := range []string{"Dbob", "Dbob2"} {
			got, _ := todevice.Pending(r, uid("bob"), d, 0, head.Seq, 100)
			if len(got) != 1 || got[0].Sender != uid("alice") {
				t.Fatalf("device %s inbox %+v", d, got)
			}
		}
	})
	w.ok(CmdToDeviceAck, uid("bob"), "Dbob", &ToDeviceAck{UpTo: head.Seq})
	view(t, m, func(r pebble.Reader) {
		if got, _ := todevice.Pending(r, uid("bob"), "Dbob", 0, 1<<62, 100); len(got) != 0 {
			t.Fatalf("acknowledged messages still pending: %+v", got)
		}
		if got, _ := todevice.Pending(r, uid("bob"), "Dbob2", 0, 1<<62, 100); len(got) != 1 {
			t.Fatalf("the other device lost its message: %+v", got)
		}
	})
}

func TestPresenceWrittenOnlyOnChange(t *testing.T) {
	m, w, _ := userDataFixture(t)
	w.ok(CmdPresence, uid("bob"), "Dbob", &Presence{Presence: "online"})
	head := w.head()
	w.ok(CmdPresence, uid("bob"), "Dbob", &Presence{Presence: "online"})
	if w.head() != head {
		t.Fatal("unchanged presence wrote a record")
	}
	w.rej(KindInvalidParam, CmdPresence, uid("bob"), "Dbob", &Presence{Presence: "dancing"})
	w.ok(CmdPresence, uid("bob"), "Dbob", &Presence{Presence: "unavailable", StatusMsg: "lunch"})
	view(t, m, func(r pebble.Reader) {
		st, _ := presence.Get(r, uid("bob"))
		if st == nil || st.Presence != "unavailable" || st.StatusMsg != "lunch" {
			t.Fatalf("presence %+v", st)
		}
		if users, _ := presence.ChangedUsers(r, head.Seq, 1<<62); len(users) != 1 {
			t.Fatalf("changed users since %d: %v", head.Seq, users)
		}
	})
}

func TestTagsAndReadMarkers(t *testing.T) {
	m, w, room := userDataFixture(t)
	ev := w.send(uid("alice"), "Dalice", room, "m1", "hello").EventID
	w.ok(CmdTag, uid("bob"), "Dbob", &Tag{RoomID: room, Tag: "m.favourite", Content: json.RawMessage(`{"order":0.5}`)})
	w.ok(CmdTag, uid("bob"), "Dbob", &Tag{RoomID: room, Tag: "u.work", Content: json.RawMessage(`{}`)})
	w.ok(CmdTag, uid("bob"), "Dbob", &Tag{RoomID: room, Tag: "u.work", Delete: true})
	w.ok(CmdReadMarkers, uid("bob"), "Dbob", &ReadMarkers{RoomID: room, FullyRead: ev, Read: ev, ReadPrivate: ev})
	w.rej(KindNotFound, CmdReceipt, uid("bob"), "Dbob", &Receipt{RoomID: room, Type: "m.read", EventID: "$nope"})
	view(t, m, func(r pebble.Reader) {
		tags, _ := accountdata.Get(r, uid("bob"), room, "m.tag")
		if string(tags) != `{"tags":{"m.favourite":{"order":0.5}}}` {
			t.Fatalf("tags %s", tags)
		}
		fr, _ := accountdata.Get(r, uid("bob"), room, "m.fully_read")
		if string(fr) != `{"event_id":"`+ev+`"}` {
			t.Fatalf("fully read %s", fr)
		}
		rc, _ := receipts.Changed(r, room, 0, 1<<62)
		if len(rc) != 2 {
			t.Fatalf("receipts %+v", rc)
		}
	})
}
