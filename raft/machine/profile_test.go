package machine

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections/facts"
	"chronicle/projections/profiles"
	"chronicle/projections/rooms"
)

// memberContent reads a user's current member event content in a room.
func memberContent(t *testing.T, m *Machine, roomID, user string) map[string]any {
	t.Helper()
	var out map[string]any
	view(t, m, func(r pebble.Reader) {
		ev, err := rooms.StateEvent(r, roomID, "m.room.member", user)
		if err != nil || ev == nil {
			t.Fatalf("member event of %s in %s: %v", user, roomID, err)
		}
		if err := json.Unmarshal(ev.Content, &out); err != nil {
			t.Fatal(err)
		}
	})
	return out
}

// recordTypes lists the types of the records after position from.
func recordTypes(t *testing.T, m *Machine, from uint64) []string {
	t.Helper()
	var out []string
	view(t, m, func(r pebble.Reader) {
		if err := rlog.Scan(r, from+1, 0, func(rec *rlog.Record, _ []byte) error {
			out = append(out, rec.Type)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	return out
}

func TestRegistrationGivesTheLocalpartAsDisplayName(t *testing.T) {
	m, w, room := userDataFixture(t)
	view(t, m, func(r pebble.Reader) {
		if name, err := profiles.StringField(r, uid("bob"), "displayname"); err != nil || name != "bob" {
			t.Errorf("bob's displayname %q (%v), want his localpart", name, err)
		}
	})
	// The creator's join and a join both carry the profile, as do invites
	// (of the invitee's profile).
	if c := memberContent(t, m, room, uid("alice")); c["displayname"] != "alice" {
		t.Errorf("creator's join %v", c)
	}
	if c := memberContent(t, m, room, uid("bob")); c["displayname"] != "bob" {
		t.Errorf("bob's join %v", c)
	}
	w.ok(CmdRegister, "", "", &Register{UserID: uid("carol"), InhibitLogin: true})
	w.member(uid("alice"), room, uid("carol"), "invite")
	if c := memberContent(t, m, room, uid("carol")); c["membership"] != "invite" || c["displayname"] != "carol" {
		t.Errorf("carol's invite %v", c)
	}
	// A name given with the join wins over the profile.
	w.member(uid("carol"), room, uid("carol"), "leave")
	w.ok(CmdMembership, uid("carol"), "", &Membership{RoomID: room, Target: uid("carol"), Membership: "join", DisplayName: "C."})
	if c := memberContent(t, m, room, uid("carol")); c["displayname"] != "C." {
		t.Errorf("carol's join with a name %v", c)
	}
	// A leave carries no profile.
	w.member(uid("carol"), room, uid("carol"), "leave")
	if c := memberContent(t, m, room, uid("carol")); c["displayname"] != nil {
		t.Errorf("carol's leave %v", c)
	}
}

func TestProfileChangeUpdatesEveryJoinedRoom(t *testing.T) {
	m, w, room := userDataFixture(t)
	alice, bob := uid("alice"), uid("bob")
	other := w.ok(CmdCreateRoom, bob, "Dbob", &CreateRoom{Preset: "public_chat"}).RoomID
	left := w.ok(CmdCreateRoom, bob, "Dbob", &CreateRoom{Preset: "public_chat"}).RoomID
	w.member(bob, left, bob, "leave")

	head := w.head()
	w.ok(CmdSetProfileField, bob, "Dbob", &ProfileField{Key: "displayname", Value: json.RawMessage(`"Bob Builder"`)})
	types := recordTypes(t, m, head.Seq)
	if strings.Join(types, " ") != "profile.field_set room.event room.event" {
		t.Fatalf("records of a displayname change: %v (want the field, then one join per joined room)", types)
	}
	for _, r := range []string{room, other} {
		if c := memberContent(t, m, r, bob); c["membership"] != "join" || c["displayname"] != "Bob Builder" {
			t.Errorf("bob's member event in %s: %v", r, c)
		}
	}
	if c := memberContent(t, m, left, bob); c["membership"] != "leave" {
		t.Errorf("a room bob left got %v", c)
	}
	if c := memberContent(t, m, room, alice); c["displayname"] != "alice" {
		t.Errorf("alice's member event changed: %v", c)
	}
	// The rooms are visited in room ID order, the same on every node.
	var order []string
	view(t, m, func(r pebble.Reader) {
		_ = rlog.Scan(r, head.Seq+2, 0, func(rec *rlog.Record, _ []byte) error {
			var f facts.RoomEvent
			if err := facts.Decode(rec.Body, &f); err != nil {
				t.Fatal(err)
			}
			order = append(order, f.RoomID)
			return nil
		})
	})
	if len(order) != 2 || order[0] > order[1] {
		t.Errorf("rooms updated in order %v", order)
	}

	// The same value again writes nothing: the field is unchanged and
	// every member event already says it.
	head = w.head()
	w.ok(CmdSetProfileField, bob, "Dbob", &ProfileField{Key: "displayname", Value: json.RawMessage(`"Bob Builder"`)})
	if w.head() != head {
		t.Errorf("an unchanged displayname wrote %v", recordTypes(t, m, head.Seq))
	}

	// An avatar joins the name; clearing the name (an empty string, as
	// Synapse takes it) keeps the avatar.
	w.ok(CmdSetProfileField, bob, "Dbob", &ProfileField{Key: "avatar_url", Value: json.RawMessage(`"mxc://localhost/bob"`)})
	w.ok(CmdSetProfileField, bob, "Dbob", &ProfileField{Key: "displayname", Value: json.RawMessage(`""`)})
	c := memberContent(t, m, other, bob)
	if _, named := c["displayname"]; named || c["avatar_url"] != "mxc://localhost/bob" {
		t.Errorf("after clearing the name: %v", c)
	}
	view(t, m, func(r pebble.Reader) {
		fields, err := profiles.Profile(r, bob)
		if err != nil || len(fields) != 1 || fields[0].Key != "avatar_url" {
			t.Errorf("bob's profile %v (%v)", fields, err)
		}
	})

	// A custom field changes the profile only.
	head = w.head()
	w.ok(CmdSetProfileField, bob, "Dbob", &ProfileField{Key: "m.tz", Value: json.RawMessage(`"Europe/Paris"`)})
	w.ok(CmdSetProfileField, bob, "Dbob", &ProfileField{Key: "org.example.pets", Value: json.RawMessage(`{"cats": 2}`)})
	w.ok(CmdDeleteProfileField, bob, "Dbob", &ProfileField{Key: "m.tz"})
	w.ok(CmdDeleteProfileField, bob, "Dbob", &ProfileField{Key: "m.tz"}) // already gone: nothing to write
	if types := recordTypes(t, m, head.Seq); strings.Join(types, " ") != "profile.field_set profile.field_set profile.field_deleted" {
		t.Errorf("records of custom fields: %v", types)
	}
	view(t, m, func(r pebble.Reader) {
		if v, _ := profiles.GetField(r, bob, "org.example.pets"); string(v) != `{"cats":2}` {
			t.Errorf("custom field stored as %s, want compact JSON", v)
		}
	})
}

func TestProfileChangeSkipsRoomsThatRefuseIt(t *testing.T) {
	m, w, room := userDataFixture(t)
	bob := uid("bob")
	// An invite-only room bob is in: his join -> join is still allowed.
	private := w.ok(CmdCreateRoom, uid("alice"), "Dalice", &CreateRoom{Preset: "private_chat", Invite: []string{bob}}).RoomID
	w.member(bob, private, bob, "join")
	// A room whose join rule became one no join passes.
	w.ok(CmdSendEvent, uid("alice"), "Dalice", &SendEvent{RoomID: room, Type: "m.room.join_rules", StateKey: strp(""), Content: json.RawMessage(`{"join_rule":"private"}`)})
	w.ok(CmdSetProfileField, bob, "Dbob", &ProfileField{Key: "displayname", Value: json.RawMessage(`"B"`)})
	if c := memberContent(t, m, private, bob); c["displayname"] != "B" {
		t.Errorf("invite-only room: %v", c)
	}
	if c := memberContent(t, m, room, bob); c["displayname"] != "bob" {
		t.Errorf("room refusing joins: %v", c)
	}
}

func TestProfileRejections(t *testing.T) {
	_, w, _ := userDataFixture(t)
	bob := uid("bob")
	set := func(key, value string) *ProfileField { return &ProfileField{Key: key, Value: json.RawMessage(value)} }
	w.rej(KindInvalidParam, CmdSetProfileField, bob, "Dbob", set("nickname", `"x"`)) // not namespaced
	w.rej(KindInvalidParam, CmdSetProfileField, bob, "Dbob", set("Org.Example", `"x"`))
	w.rej(KindKeyTooLarge, CmdSetProfileField, bob, "Dbob", set("org.example."+strings.Repeat("k", 250), `"x"`))
	w.rej(KindInvalidParam, CmdSetProfileField, bob, "Dbob", set("displayname", `5`))
	w.rej(KindInvalidParam, CmdSetProfileField, bob, "Dbob", set("displayname", `null`))
	w.rej(KindInvalidParam, CmdSetProfileField, bob, "Dbob", set("displayname", `"`+strings.Repeat("é", 257)+`"`))
	w.rej(KindInvalidParam, CmdSetProfileField, bob, "Dbob", set("avatar_url", `"https://example.org/a.png"`))
	w.rej(KindInvalidParam, CmdSetProfileField, bob, "Dbob", set("m.tz", `{"zone":"UTC"}`))
	w.rej(KindBadJSON, CmdSetProfileField, bob, "Dbob", set("org.example.x", `{"unterminated":`))
	w.rej(KindNotFound, CmdSetProfileField, uid("nobody"), "", set("displayname", `"ghost"`))
	// 256 characters is allowed; the whole profile must stay under 64 KiB.
	w.ok(CmdSetProfileField, bob, "Dbob", set("displayname", `"`+strings.Repeat("é", 256)+`"`))
	big := `"` + strings.Repeat("x", 40_000) + `"`
	w.ok(CmdSetProfileField, bob, "Dbob", set("org.example.one", big))
	w.rej(KindProfileTooLarge, CmdSetProfileField, bob, "Dbob", set("org.example.two", big))
	// Replacing the big field with a small one is always possible.
	w.ok(CmdSetProfileField, bob, "Dbob", set("org.example.one", `1`))
	w.ok(CmdSetProfileField, bob, "Dbob", set("org.example.two", big))
}

func TestProfileSizeIsTheJSONObjectLength(t *testing.T) {
	fields := []profiles.Field{{Key: "displayname", Value: json.RawMessage(`"Bob"`)}, {Key: "m.tz", Value: json.RawMessage(`"UTC"`)}}
	for _, c := range []struct {
		key   string
		value json.RawMessage
		want  string
	}{
		{"org.example.n", json.RawMessage(`1`), `{"displayname":"Bob","m.tz":"UTC","org.example.n":1}`},
		{"m.tz", nil, `{"displayname":"Bob"}`},
		{"m.tz", json.RawMessage(`"Europe/Paris"`), `{"displayname":"Bob","m.tz":"Europe/Paris"}`},
	} {
		if got := profileSize(fields, c.key, c.value); got != len(c.want) {
			t.Errorf("size with %s=%s: %d, want %d", c.key, c.value, got, len(c.want))
		}
	}
	if got := profileSize(nil, "m.tz", nil); got != len(`{}`) {
		t.Errorf("empty profile size %d", got)
	}
}
