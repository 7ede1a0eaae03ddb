package syncstream_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections/syncstream"
	"chronicle/raft/machine"
	"chronicle/raft/machine/machinetest"
)

const (
	alice = "@alice:localhost"
	bob   = "@bob:localhost"
)

// driver applies commands to a real machine (machinetest).
type driver struct{ *machinetest.Driver }

func newDriver(t *testing.T) *driver {
	t.Helper()
	d := &driver{machinetest.New(t)}
	d.Register(alice, bob)
	return d
}

func (d *driver) say(actor, roomID, body string) *machine.Result {
	d.T.Helper()
	return d.Do(machine.CmdSendEvent, actor, &machine.SendEvent{RoomID: roomID, Type: "m.room.message",
		Content: json.RawMessage(fmt.Sprintf(`{"msgtype":"m.text","body":%q}`, body)), TxnID: fmt.Sprint("txn", d.Idx)})
}

// head is the log position after the last applied command.
func (d *driver) head() uint64 {
	d.T.Helper()
	var seq uint64
	d.view(func(r pebble.Reader) {
		h, err := rlog.ReadHead(r)
		if err != nil {
			d.T.Fatal(err)
		}
		seq = h.Seq
	})
	return seq
}

func (d *driver) view(fn func(r pebble.Reader)) {
	d.T.Helper()
	if err := d.M.View(func(r pebble.Reader) error { fn(r); return nil }); err != nil {
		d.T.Fatal(err)
	}
}

func (d *driver) changed(after, upTo uint64) []string {
	d.T.Helper()
	var out []string
	d.view(func(r pebble.Reader) {
		var err error
		if out, err = syncstream.ChangedRooms(r, after, upTo); err != nil {
			d.T.Fatal(err)
		}
	})
	return out
}

func TestChangedRoomsNamesEachChangedRoomOnce(t *testing.T) {
	d := newDriver(t)
	var roomIDs []string
	for i := range 5 {
		name := fmt.Sprint("room ", i)
		roomIDs = append(roomIDs, d.Do(machine.CmdCreateRoom, alice, &machine.CreateRoom{Preset: "public_chat", Name: &name}).RoomID)
	}
	afterCreate := d.head()
	if got := d.changed(0, afterCreate); !slices.Equal(got, roomIDs) {
		t.Fatalf("changed since 0 = %v, want every room in creation order %v", got, roomIDs)
	}
	if got := d.changed(afterCreate, afterCreate); len(got) != 0 {
		t.Fatalf("empty range names %v", got)
	}

	// Three messages to one room, one to another: each room once, in
	// order of first change.
	d.say(alice, roomIDs[3], "a")
	d.say(alice, roomIDs[1], "b")
	d.say(alice, roomIDs[3], "c")
	if got, want := d.changed(afterCreate, d.head()), []string{roomIDs[3], roomIDs[1]}; !slices.Equal(got, want) {
		t.Fatalf("changed after sends = %v, want %v", got, want)
	}

	// Records of other kinds name no room, but are in the stream for
	// parked long-polls; records no sync shows are not.
	quiet := d.head()
	d.Do(machine.CmdAccountData, alice, &machine.AccountData{Type: "org.example", Content: json.RawMessage(`{"a":1}`)})
	d.Do(machine.CmdPresence, alice, &machine.Presence{Presence: "online"})
	d.Do(machine.CmdFilter, alice, &machine.CreateFilter{Filter: json.RawMessage(`{}`)})
	d.Do(machine.CmdSendToDevice, alice, &machine.SendToDevice{Type: "m.test", TxnID: "1",
		Messages: map[string]map[string]json.RawMessage{bob: {"*": json.RawMessage(`{"x":1}`)}}})
	d.Do(machine.CmdLogin, bob, &machine.Login{DeviceID: "E"})
	d.Do(machine.CmdPushRuleEnabled, bob, &machine.PushRuleEnabled{Kind: "override", RuleID: ".m.rule.master", Enabled: true})
	if got := d.changed(quiet, d.head()); len(got) != 0 {
		t.Fatalf("non-room records named rooms %v", got)
	}
	var kinds []string
	d.view(func(r pebble.Reader) {
		changes, complete, err := syncstream.Changes(r, quiet, d.head(), 0)
		if err != nil || !complete {
			t.Fatalf("changes: %v, complete %v", err, complete)
		}
		for _, c := range changes {
			if c.Seq <= quiet || c.Seq > d.head() {
				t.Errorf("change %+v outside (%d, %d]", c, quiet, d.head())
			}
			kinds = append(kinds, fmt.Sprintf("%c %s %s %s", c.Kind, c.Room, c.User, c.Device))
		}
	})
	want := []string{"a  " + alice + " ", "p  " + alice + " ", "t  " + bob + " D", "a  " + bob + " "}
	if !slices.Equal(kinds, want) {
		t.Errorf("changes = %q, want %q", kinds, want)
	}
}

func TestChangedRoomsCoversTypingReceiptsAndMembership(t *testing.T) {
	d := newDriver(t)
	name := "one"
	r1 := d.Do(machine.CmdCreateRoom, alice, &machine.CreateRoom{Preset: "public_chat", Name: &name}).RoomID
	name = "two"
	r2 := d.Do(machine.CmdCreateRoom, alice, &machine.CreateRoom{Preset: "public_chat", Name: &name}).RoomID
	msg := d.say(alice, r1, "hello")

	for _, step := range []struct {
		name   string
		do     func()
		want   string
		member string // the member of a membership event
	}{
		{"typing", func() { d.Do(machine.CmdTyping, alice, &machine.Typing{RoomID: r2, Typing: true, Timeout: 30000}) }, r2, ""},
		{"typing stops", func() { d.Do(machine.CmdTyping, alice, &machine.Typing{RoomID: r2, Typing: false}) }, r2, ""},
		{"receipt", func() {
			d.Do(machine.CmdReceipt, alice, &machine.Receipt{RoomID: r1, Type: "m.read", EventID: msg.EventID})
		}, r1, ""},
		{"join", func() {
			d.Do(machine.CmdMembership, bob, &machine.Membership{RoomID: r2, Target: bob, Membership: "join"})
		}, r2, bob},
		{"leave", func() {
			d.Do(machine.CmdMembership, bob, &machine.Membership{RoomID: r2, Target: bob, Membership: "leave"})
		}, r2, bob},
		{"invite", func() {
			d.Do(machine.CmdMembership, alice, &machine.Membership{RoomID: r1, Target: bob, Membership: "invite"})
		}, r1, bob},
		{"a message naming m.room.member", func() { d.say(alice, r1, `"m.room.member"`) }, r1, ""},
	} {
		before := d.head()
		step.do()
		after := d.head()
		if got := d.changed(before, after); !slices.Equal(got, []string{step.want}) {
			t.Errorf("%s: changed = %v, want [%s]", step.name, got, step.want)
		}
		d.view(func(r pebble.Reader) {
			changes, _, err := syncstream.Changes(r, before, after, 0)
			want := syncstream.Change{Seq: after, Kind: syncstream.KindRoom, Room: step.want}
			if step.member != "" {
				want.Kind, want.User = syncstream.KindMember, step.member
			}
			if err != nil || len(changes) != 1 || changes[0] != want {
				t.Errorf("%s: changes = %+v, %v; want [%+v]", step.name, changes, err, want)
			}
		})
	}
	d.view(func(r pebble.Reader) {
		// Registrations are never in a sync.
		if changes, _, err := syncstream.Changes(r, 0, 1, 0); err != nil || len(changes) != 0 {
			t.Errorf("changes at the registration = %+v, %v; want none", changes, err)
		}
	})
}

func TestChangedRoomsBoundedStopsEarly(t *testing.T) {
	d := newDriver(t)
	name := "one"
	r1 := d.Do(machine.CmdCreateRoom, alice, &machine.CreateRoom{Preset: "public_chat", Name: &name}).RoomID
	name = "two"
	r2 := d.Do(machine.CmdCreateRoom, alice, &machine.CreateRoom{Preset: "public_chat", Name: &name}).RoomID
	start := d.head()
	for i := range 10 {
		d.say(alice, r1, fmt.Sprint(i))
	}
	d.say(alice, r2, "last")
	head := d.head()
	d.view(func(r pebble.Reader) {
		got, complete, err := syncstream.ChangedRoomsBounded(r, start, head, 5)
		if err != nil || complete || !slices.Equal(got, []string{r1}) {
			t.Errorf("bounded to 5 = %v, complete %v, %v; want [r1], incomplete", got, complete, err)
		}
		got, complete, err = syncstream.ChangedRoomsBounded(r, start, head, 11)
		if err != nil || !complete || !slices.Equal(got, []string{r1, r2}) {
			t.Errorf("bounded to 11 = %v, complete %v, %v; want [r1 r2], complete", got, complete, err)
		}
		// upTo bounds the scan: the last send is past it.
		got, complete, err = syncstream.ChangedRoomsBounded(r, start, head-1, 0)
		if err != nil || !complete || !slices.Equal(got, []string{r1}) {
			t.Errorf("up to head-1 = %v, complete %v, %v; want [r1]", got, complete, err)
		}
	})
}

// TestUnknownRecordTypesMayConcernAnyone folds a record type this package
// has never heard of: it must be in the stream as KindOther, so a parked
// long-poll rebuilds rather than sleeping through something new.
func TestUnknownRecordTypesMayConcernAnyone(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := db.NewIndexedBatch()
	p := syncstream.Projection{}
	for seq, typ := range map[uint64]string{7: "future.thing", 8: "account.registered"} {
		if err := p.Apply(b, &rlog.Record{Seq: seq, Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	changes, complete, err := syncstream.Changes(db, 0, 10, 0)
	if err != nil || !complete || len(changes) != 1 || changes[0] != (syncstream.Change{Seq: 7, Kind: syncstream.KindOther}) {
		t.Fatalf("changes = %+v, complete %v, %v; want one KindOther at 7", changes, complete, err)
	}
}
