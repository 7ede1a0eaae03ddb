package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/syncstream"
	"chronicle/raft/machine"
)

// feedMachine is a real state machine (real Pebble) with one user and a
// room, and a way to add one stream entry at a time.
type feedMachine struct {
	t    *testing.T
	m    *machine.Machine
	idx  uint64
	room string
}

func newFeedMachine(t *testing.T) *feedMachine {
	t.Helper()
	m, err := machine.Open(t.TempDir(), machine.Config{ServerName: "localhost", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	f := &feedMachine{t: t, m: m}
	f.do(machine.CmdRegister, "", &machine.Register{UserID: "@a:localhost", DeviceID: "D"})
	f.room = f.do(machine.CmdCreateRoom, "@a:localhost", &machine.CreateRoom{Preset: "public_chat"}).RoomID
	return f
}

func (f *feedMachine) do(typ, actor string, payload any) *machine.Result {
	f.t.Helper()
	f.idx++
	c, err := machine.NewCommand(typ, 1_700_000_000_000+int64(f.idx), actor, "D", payload)
	if err != nil {
		f.t.Fatal(err)
	}
	res, err := f.m.Apply(f.idx, c)
	if err != nil || res.Err != nil {
		f.t.Fatalf("%s: %v %v", typ, err, res.Err)
	}
	f.m.Publish()
	return res
}

// say adds one room entry and returns the new head.
func (f *feedMachine) say(i int) uint64 {
	return f.do(machine.CmdSendEvent, "@a:localhost", &machine.SendEvent{RoomID: f.room, Type: "m.room.message",
		Content: json.RawMessage(fmt.Sprintf(`{"body":"%d"}`, i))}).Seq
}

func (f *feedMachine) stored(after, upTo uint64) []syncstream.Change {
	f.t.Helper()
	var out []syncstream.Change
	if err := f.m.View(func(r pebble.Reader) error {
		var err error
		out, _, err = syncstream.Changes(r, after, upTo, 0)
		return err
	}); err != nil {
		f.t.Fatal(err)
	}
	return out
}

func TestChangeFeedServesWhatStorageHolds(t *testing.T) {
	defer func(n int) { feedKeep = n }(feedKeep)
	feedKeep = 5
	f := newFeedMachine(t)
	var feed changeFeed
	start := f.say(0)
	check := func(after, upTo uint64, wantOK bool) {
		t.Helper()
		got, ok, err := feed.changes(f.m, after, upTo)
		if err != nil || ok != wantOK {
			t.Fatalf("changes(%d, %d): ok %v, %v; want ok %v", after, upTo, ok, err, wantOK)
		}
		if want := f.stored(after, upTo); ok && !slices.Equal(got, want) {
			t.Fatalf("changes(%d, %d) = %+v, storage has %+v", after, upTo, got, want)
		}
	}
	check(start, start, true) // nothing yet: starts at start
	heads := []uint64{start}
	for i := range 3 {
		heads = append(heads, f.say(i+1))
	}
	check(start, heads[3], true)
	check(heads[1], heads[2], true) // a middle range, from memory
	check(start-1, heads[3], false) // before the feed began
	for i := range 4 {
		heads = append(heads, f.say(10+i))
	}
	check(heads[6], heads[7], true) // past feedKeep: the oldest went
	check(start, heads[7], false)
	check(heads[7]-5, heads[7], true)
	// A burst larger than the feed holds: it begins again after it.
	for i := range 7 {
		heads = append(heads, f.say(20+i))
	}
	check(heads[7], heads[14], false)
	check(heads[14], heads[14], true)
	heads = append(heads, f.say(30))
	check(heads[14], heads[15], true)
}

func TestWakeFilterVerdict(t *testing.T) {
	const me, dev = "@me:localhost", "PHONE"
	w := &wakeFilter{req: &syncRequest{viewer: viewer{UserID: me, DeviceID: dev}}, checked: 10,
		rooms:  map[string]bool{"!quiet": false, "!mine": true},
		people: map[string]bool{"@far:localhost": false, "@near:localhost": true}}
	for _, tc := range []struct {
		name string
		c    syncstream.Change
		want verdict
	}{
		{"a quiet room", syncstream.Change{Seq: 11, Kind: syncstream.KindRoom, Room: "!quiet"}, ruledOut},
		{"a room of mine", syncstream.Change{Seq: 11, Kind: syncstream.KindRoom, Room: "!mine"}, concerns},
		{"another's membership in a quiet room", syncstream.Change{Seq: 11, Kind: syncstream.KindMember, Room: "!quiet", User: "@x:localhost"}, ruledOut},
		{"my membership in a quiet room", syncstream.Change{Seq: 11, Kind: syncstream.KindMember, Room: "!quiet", User: me}, concerns},
		{"a room not looked up", syncstream.Change{Seq: 11, Kind: syncstream.KindRoom, Room: "!new"}, mayConcern},
		{"anything at or before checked", syncstream.Change{Seq: 10, Kind: syncstream.KindOther}, ruledOut},
		{"another's account data", syncstream.Change{Seq: 11, Kind: syncstream.KindAccountData, User: "@x:localhost"}, ruledOut},
		{"my account data", syncstream.Change{Seq: 11, Kind: syncstream.KindAccountData, User: me}, concerns},
		{"to-device for my other device", syncstream.Change{Seq: 11, Kind: syncstream.KindToDevice, User: me, Device: "LAPTOP"}, ruledOut},
		{"to-device for this device", syncstream.Change{Seq: 11, Kind: syncstream.KindToDevice, User: me, Device: dev}, concerns},
		{"a stranger's presence", syncstream.Change{Seq: 11, Kind: syncstream.KindPresence, User: "@far:localhost"}, ruledOut},
		{"a roommate's presence", syncstream.Change{Seq: 11, Kind: syncstream.KindPresence, User: "@near:localhost"}, concerns},
		{"presence of someone not looked up", syncstream.Change{Seq: 11, Kind: syncstream.KindPresence, User: "@x:localhost"}, mayConcern},
		{"my presence", syncstream.Change{Seq: 11, Kind: syncstream.KindPresence, User: me}, concerns},
		{"a stranger's device list", syncstream.Change{Seq: 11, Kind: syncstream.KindDeviceList, User: "@far:localhost"}, ruledOut},
		{"a roommate's device list", syncstream.Change{Seq: 11, Kind: syncstream.KindDeviceList, User: "@near:localhost"}, concerns},
		{"device list of someone not looked up", syncstream.Change{Seq: 11, Kind: syncstream.KindDeviceList, User: "@x:localhost"}, mayConcern},
		{"my device list", syncstream.Change{Seq: 11, Kind: syncstream.KindDeviceList, User: me}, concerns},
		{"a roommate's change meant for another", syncstream.Change{Seq: 11, Kind: syncstream.KindDeviceList, User: "@near:localhost", OnlyFor: "@x:localhost"}, ruledOut},
		{"a stranger's key signed by me", syncstream.Change{Seq: 11, Kind: syncstream.KindDeviceList, User: "@far:localhost", OnlyFor: me}, concerns},
		{"one-time keys of my other device", syncstream.Change{Seq: 11, Kind: syncstream.KindDeviceKeys, User: me, Device: "LAPTOP"}, ruledOut},
		{"one-time keys of this device", syncstream.Change{Seq: 11, Kind: syncstream.KindDeviceKeys, User: me, Device: dev}, concerns},
		{"one-time keys of a roommate", syncstream.Change{Seq: 11, Kind: syncstream.KindDeviceKeys, User: "@near:localhost", Device: dev}, ruledOut},
		{"an unknown kind", syncstream.Change{Seq: 11, Kind: syncstream.KindOther}, concerns},
	} {
		if got := w.verdict([]syncstream.Change{tc.c}); got != tc.want {
			t.Errorf("%s: verdict = %v, want %v", tc.name, got, tc.want)
		}
	}
	// A change that concerns wins over one not looked up, in any order.
	unknownFirst := []syncstream.Change{{Seq: 11, Kind: syncstream.KindRoom, Room: "!new"}, {Seq: 12, Kind: syncstream.KindRoom, Room: "!mine"}}
	if got := w.verdict(unknownFirst); got != concerns {
		t.Errorf("unknown then mine: %v, want concerns", got)
	}
}
