package machine

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/directory"
	"chronicle/projections/rooms"
)

// dirFixture is a machine with alice (creator of a private and a public
// room) and bob (joined to the public room only), and carol (in no room).
type dirFixture struct {
	*workload
	private, public string
}

func newDirFixture(t *testing.T) *dirFixture {
	t.Helper()
	m := openMachine(t, t.TempDir())
	t.Cleanup(func() { m.Close() })
	w := newWorkload(t, m)
	for _, u := range []string{"alice", "bob", "carol"} {
		w.ok(CmdRegister, "", "", &Register{UserID: uid(u), DeviceID: "D" + u})
	}
	f := &dirFixture{workload: w}
	f.private = w.ok(CmdCreateRoom, uid("alice"), "Dalice", &CreateRoom{Preset: "private_chat"}).RoomID
	f.public = w.ok(CmdCreateRoom, uid("alice"), "Dalice", &CreateRoom{Preset: "public_chat"}).RoomID
	w.member(uid("bob"), f.public, uid("bob"), "join")
	return f
}

// read runs fn on the machine's current state.
func (f *dirFixture) read(fn func(r pebble.Reader) error) {
	f.t.Helper()
	if err := f.m.View(fn); err != nil {
		f.t.Fatal(err)
	}
}

func (f *dirFixture) alias(alias string) *directory.Alias {
	f.t.Helper()
	var a *directory.Alias
	f.read(func(r pebble.Reader) error {
		var err error
		a, err = directory.GetAlias(r, alias)
		return err
	})
	return a
}

func (f *dirFixture) aliasesOf(roomID string) []string {
	f.t.Helper()
	var out []string
	f.read(func(r pebble.Reader) error {
		var err error
		out, err = directory.RoomAliases(r, roomID)
		return err
	})
	return out
}

func (f *dirFixture) published(roomID string) bool {
	f.t.Helper()
	var ok bool
	f.read(func(r pebble.Reader) error {
		var err error
		ok, err = directory.IsPublished(r, roomID)
		return err
	})
	return ok
}

// rejNoRecord is rej plus the check that the log did not move.
func (f *dirFixture) rejNoRecord(kind Kind, typ, actor string, payload any) {
	f.t.Helper()
	before := f.head()
	f.rej(kind, typ, actor, "", payload)
	if after := f.head(); after != before {
		f.t.Fatalf("rejected %s appended records: head %d -> %d", typ, before.Seq, after.Seq)
	}
}

func TestAliasCreateAndDelete(t *testing.T) {
	f := newDirFixture(t)
	alice, bob, carol := uid("alice"), uid("bob"), uid("carol")

	f.ok(CmdCreateAlias, bob, "", &CreateAlias{Alias: "#pub:localhost", RoomID: f.public})
	if a := f.alias("#pub:localhost"); a == nil || a.RoomID != f.public || a.Creator != bob {
		t.Fatalf("alias = %+v", a)
	}
	f.ok(CmdCreateAlias, alice, "", &CreateAlias{Alias: "#another:localhost", RoomID: f.public})
	if got := f.aliasesOf(f.public); !reflect.DeepEqual(got, []string{"#another:localhost", "#pub:localhost"}) {
		t.Fatalf("aliases of the room = %v", got)
	}

	// Syntax, server, conflicts, membership.
	for _, bad := range []string{"pub:localhost", "#pub", "#:localhost", "#a\x00b:localhost", "#pub:bad server", "#\xff:localhost"} {
		f.rejNoRecord(KindInvalidParam, CmdCreateAlias, alice, &CreateAlias{Alias: bad, RoomID: f.public})
	}
	f.rejNoRecord(KindInvalidParam, CmdCreateAlias, alice, &CreateAlias{Alias: "#pub:elsewhere.example", RoomID: f.public})
	f.rejNoRecord(KindConflict, CmdCreateAlias, alice, &CreateAlias{Alias: "#pub:localhost", RoomID: f.private})
	f.rejNoRecord(KindForbidden, CmdCreateAlias, carol, &CreateAlias{Alias: "#carols:localhost", RoomID: f.public})
	f.rejNoRecord(KindForbidden, CmdCreateAlias, bob, &CreateAlias{Alias: "#bobs:localhost", RoomID: f.private})
	f.rejNoRecord(KindForbidden, CmdCreateAlias, bob, &CreateAlias{Alias: "#bobs:localhost", RoomID: "!nope:localhost"})
	f.rejNoRecord(KindNotFound, CmdCreateAlias, carol, &CreateAlias{Alias: "#bobs:localhost", RoomID: "!nope:localhost", Admin: true})
	// An administrator needs no membership.
	f.ok(CmdCreateAlias, carol, "", &CreateAlias{Alias: "#admins:localhost", RoomID: f.private, Admin: true})

	// Deleting: unknown, not allowed, creator, room moderator, admin.
	f.rejNoRecord(KindNotFound, CmdDeleteAlias, alice, &DeleteAlias{Alias: "#nope:localhost"})
	f.rejNoRecord(KindInvalidParam, CmdDeleteAlias, alice, &DeleteAlias{Alias: "#nope:elsewhere.example"})
	f.rejNoRecord(KindForbidden, CmdDeleteAlias, bob, &DeleteAlias{Alias: "#another:localhost"}) // alice's, bob lacks power
	f.rejNoRecord(KindForbidden, CmdDeleteAlias, carol, &DeleteAlias{Alias: "#pub:localhost"})
	f.ok(CmdDeleteAlias, alice, "", &DeleteAlias{Alias: "#pub:localhost"}) // bob's, alice has power
	f.ok(CmdDeleteAlias, alice, "", &DeleteAlias{Alias: "#another:localhost"})
	f.ok(CmdDeleteAlias, bob, "", &DeleteAlias{Alias: "#admins:localhost", Admin: true})
	if a := f.alias("#pub:localhost"); a != nil {
		t.Fatalf("deleted alias still maps to %+v", a)
	}
	if got := f.aliasesOf(f.public); len(got) != 0 {
		t.Fatalf("aliases after deletion = %v", got)
	}
	// The creator may delete their own alias whatever their power.
	f.ok(CmdCreateAlias, bob, "", &CreateAlias{Alias: "#bobs:localhost", RoomID: f.public})
	f.ok(CmdDeleteAlias, bob, "", &DeleteAlias{Alias: "#bobs:localhost"})
	// A deleted alias can be created again, for another room.
	f.ok(CmdCreateAlias, alice, "", &CreateAlias{Alias: "#pub:localhost", RoomID: f.private})
	if a := f.alias("#pub:localhost"); a == nil || a.RoomID != f.private {
		t.Fatalf("recreated alias = %+v", a)
	}
}

func TestCreateRoomWithAliasAndVisibility(t *testing.T) {
	f := newDirFixture(t)
	alice, bob := uid("alice"), uid("bob")
	name := "Lobby"
	res := f.ok(CmdCreateRoom, alice, "", &CreateRoom{Preset: "public_chat", Visibility: "public", Name: &name, Alias: "#lobby:localhost"})
	roomID := res.RoomID
	if a := f.alias("#lobby:localhost"); a == nil || a.RoomID != roomID || a.Creator != alice {
		t.Fatalf("alias = %+v", a)
	}
	if !f.published(roomID) {
		t.Fatal("room created with visibility public is not published")
	}
	// The canonical alias event comes right after the power levels (step 4).
	var types []string
	f.read(func(r pebble.Reader) error {
		evs, _, err := rooms.Events(r, roomID, 0, ^uint64(0)>>1, 100, false)
		for _, ev := range evs {
			types = append(types, ev.Type)
		}
		var c struct {
			Alias string `json:"alias"`
		}
		if ok, err := rooms.StateContent(r, roomID, "m.room.canonical_alias", "", &c); err != nil || !ok || c.Alias != "#lobby:localhost" {
			t.Errorf("canonical alias content %+v (found %v, err %v)", c, ok, err)
		}
		return err
	})
	want := []string{"m.room.create", "m.room.member", "m.room.power_levels", "m.room.canonical_alias", "m.room.join_rules"}
	if len(types) < len(want) || !slices.Equal(types[:len(want)], want) {
		t.Fatalf("event order %v, want it to start %v", types, want)
	}

	// A taken alias refuses the whole room, leaving nothing behind.
	f.rejNoRecord(KindRoomInUse, CmdCreateRoom, bob, &CreateRoom{Alias: "#lobby:localhost"})
	f.rejNoRecord(KindInvalidParam, CmdCreateRoom, bob, &CreateRoom{Alias: "#lobby:elsewhere.example"})
	f.rejNoRecord(KindInvalidParam, CmdCreateRoom, bob, &CreateRoom{Alias: "#:localhost"})

	// Private by default.
	if f.published(f.public) || f.published(f.private) {
		t.Fatal("rooms created without visibility public are published")
	}

	// Visibility changes need the power to send m.room.canonical_alias.
	f.rejNoRecord(KindForbidden, CmdSetRoomVisibility, bob, &SetRoomVisibility{RoomID: f.public, Visibility: "public"})
	f.rejNoRecord(KindForbidden, CmdSetRoomVisibility, uid("carol"), &SetRoomVisibility{RoomID: f.private, Visibility: "public"})
	f.rejNoRecord(KindNotFound, CmdSetRoomVisibility, alice, &SetRoomVisibility{RoomID: "!nope:localhost", Visibility: "public"})
	f.rejNoRecord(KindInvalidParam, CmdSetRoomVisibility, alice, &SetRoomVisibility{RoomID: f.public, Visibility: "secret"})
	f.ok(CmdSetRoomVisibility, alice, "", &SetRoomVisibility{RoomID: f.public, Visibility: "public"})
	if !f.published(f.public) {
		t.Fatal("room not published")
	}
	// No change, no record.
	before := f.head()
	f.ok(CmdSetRoomVisibility, alice, "", &SetRoomVisibility{RoomID: f.public, Visibility: "public"})
	if f.head() != before {
		t.Fatal("a visibility that did not change appended a record")
	}
	f.ok(CmdSetRoomVisibility, bob, "", &SetRoomVisibility{RoomID: f.public, Visibility: "private", Admin: true})
	if f.published(f.public) {
		t.Fatal("room still published")
	}
}

func TestCanonicalAliasValidation(t *testing.T) {
	f := newDirFixture(t)
	alice, bob := uid("alice"), uid("bob")
	f.ok(CmdCreateAlias, alice, "", &CreateAlias{Alias: "#pub:localhost", RoomID: f.public})
	f.ok(CmdCreateAlias, alice, "", &CreateAlias{Alias: "#alt:localhost", RoomID: f.public})
	f.ok(CmdCreateAlias, alice, "", &CreateAlias{Alias: "#priv:localhost", RoomID: f.private})
	empty := ""
	send := func(content string) *SendEvent {
		return &SendEvent{RoomID: f.public, Type: "m.room.canonical_alias", StateKey: &empty, Content: json.RawMessage(content)}
	}

	f.rejNoRecord(KindInvalidParam, CmdSendEvent, alice, send(`{"alias":"not an alias"}`))
	f.rejNoRecord(KindInvalidParam, CmdSendEvent, alice, send(`{"alias":5}`))
	f.rejNoRecord(KindInvalidParam, CmdSendEvent, alice, send(`{"alt_aliases":"#pub:localhost"}`))
	f.rejNoRecord(KindInvalidParam, CmdSendEvent, alice, send(`{"alt_aliases":["#pub:localhost", 7]}`))
	f.rejNoRecord(KindBadAlias, CmdSendEvent, alice, send(`{"alias":"#unknown:localhost"}`))
	f.rejNoRecord(KindBadAlias, CmdSendEvent, alice, send(`{"alias":"#priv:localhost"}`))
	f.rejNoRecord(KindBadAlias, CmdSendEvent, alice, send(`{"alias":"#pub:localhost","alt_aliases":["#priv:localhost"]}`))
	// The auth rules come first: bob may not send it at all.
	f.rejNoRecord(KindForbidden, CmdSendEvent, bob, send(`{"alias":"#unknown:localhost"}`))

	f.ok(CmdSendEvent, alice, "", send(`{"alias":"#pub:localhost","alt_aliases":["#alt:localhost","#far:elsewhere.example"]}`))
	f.ok(CmdSendEvent, alice, "", send(`{}`))
	f.ok(CmdSendEvent, alice, "", send(`{"alias":null,"alt_aliases":null}`))
	f.ok(CmdSendEvent, alice, "", send(`{"alias":"#pub:localhost","alt_aliases":["#alt:localhost"]}`))

	// After #alt is deleted, the event may still carry it, as long as the
	// edit adds nothing invalid.
	f.ok(CmdDeleteAlias, alice, "", &DeleteAlias{Alias: "#alt:localhost"})
	f.ok(CmdSendEvent, alice, "", send(`{"alias":"#pub:localhost","alt_aliases":["#alt:localhost","#far:elsewhere.example"]}`))
	f.rejNoRecord(KindBadAlias, CmdSendEvent, alice, send(`{"alias":"#alt:localhost"}`))

	// initial_state is checked too.
	f.rejNoRecord(KindBadAlias, CmdCreateRoom, alice, &CreateRoom{InitialState: []StateEvent{{
		Type: "m.room.canonical_alias", Content: json.RawMessage(`{"alias":"#pub:localhost"}`),
	}}})
	f.ok(CmdCreateRoom, alice, "", &CreateRoom{Alias: "#fresh:localhost", InitialState: []StateEvent{{
		Type: "m.room.canonical_alias", Content: json.RawMessage(`{"alias":"#fresh:localhost","alt_aliases":["#x:elsewhere.example"]}`),
	}}})
}

func TestJoinedCountFollowsMembership(t *testing.T) {
	f := newDirFixture(t)
	alice, bob, carol := uid("alice"), uid("bob"), uid("carol")
	check := func(roomID string) {
		t.Helper()
		f.read(func(r pebble.Reader) error {
			n, err := directory.JoinedCount(r, roomID)
			if err != nil {
				return err
			}
			members, err := rooms.JoinedMembers(r, roomID)
			if err != nil {
				return err
			}
			if n != uint64(len(members)) {
				t.Errorf("joined count %d, joined members %v", n, members)
			}
			return nil
		})
	}
	check(f.public)
	check(f.private)
	f.member(carol, f.public, carol, "join")
	check(f.public)
	f.member(carol, f.public, carol, "join") // no-op rejoin
	check(f.public)
	f.member(bob, f.public, bob, "leave")
	check(f.public)
	f.member(alice, f.public, carol, "kick")
	check(f.public)
	f.member(alice, f.public, bob, "ban")
	check(f.public)
	f.member(alice, f.private, bob, "invite")
	check(f.private)
	f.member(bob, f.private, bob, "join")
	check(f.private)
	// A profile change while joined is join -> join.
	f.ok(CmdMembership, bob, "", &Membership{RoomID: f.private, Target: bob, Membership: "join", DisplayName: "Bob"})
	check(f.private)
	// A message mentioning m.room.member is not a member event.
	f.send(alice, "", f.private, "", `the m.room.member event type`)
	check(f.private)
	f.read(func(r pebble.Reader) error {
		n, err := directory.JoinedCount(r, f.private)
		if n != 2 {
			t.Errorf("private room joined count %d, want 2", n)
		}
		return err
	})
}

// TestDirectoryRebuildMatchesLiveFold rebuilds every projection from the
// log and checks that the directory (aliases, visibility, counts) comes
// out byte-identical to what was folded live, and that a second machine
// fed the same commands agrees.
func TestDirectoryRebuildMatchesLiveFold(t *testing.T) {
	f := newDirFixture(t)
	alice, bob := uid("alice"), uid("bob")
	f.ok(CmdCreateRoom, alice, "", &CreateRoom{Visibility: "public", Alias: "#one:localhost"})
	f.ok(CmdCreateAlias, bob, "", &CreateAlias{Alias: "#two:localhost", RoomID: f.public})
	f.ok(CmdSetRoomVisibility, alice, "", &SetRoomVisibility{RoomID: f.public, Visibility: "public"})
	f.member(bob, f.public, bob, "leave")
	f.ok(CmdDeleteAlias, bob, "", &DeleteAlias{Alias: "#two:localhost"})

	other := openMachine(t, t.TempDir())
	defer other.Close()
	replayStream(t, other, f.steps)
	compareStores(t, f.m, other)

	live := digestsOf(t, f.m)["directory"]
	if err := f.m.engine.Rebuild(f.m.db, f.m.cfg.Logger); err != nil {
		t.Fatal(err)
	}
	if rebuilt := digestsOf(t, f.m)["directory"]; rebuilt != live {
		t.Fatalf("directory digest %x after rebuild, %x live", rebuilt, live)
	}
}
