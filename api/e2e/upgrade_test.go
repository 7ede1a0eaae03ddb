package e2e

import (
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// upgradeRoom calls POST /rooms/{roomId}/upgrade (mautrix-go has no
// method for it).
func upgradeRoom(t *testing.T, cli *mautrix.Client, roomID id.RoomID, body map[string]any) (id.RoomID, error) {
	t.Helper()
	var resp struct {
		ReplacementRoom id.RoomID `json:"replacement_room"`
	}
	_, err := cli.MakeRequest(t.Context(), http.MethodPost, cli.BuildClientURL("v3", "rooms", roomID, "upgrade"), body, &resp)
	return resp.ReplacementRoom, err
}

func TestRoomUpgrade(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	oldRoom := newRoom(t, alice, &mautrix.ReqCreateRoom{
		Preset: "public_chat", Name: "Old name", Topic: "Old topic", RoomVersion: "11",
		CreationContent: map[string]any{"type": "org.chronicle.test.kind"},
		InitialState: []*event.Event{{
			Type: event.StateHistoryVisibility, StateKey: new(""),
			Content: event.Content{Raw: map[string]any{"history_visibility": "joined"}},
		}},
	})
	if _, err := bob.JoinRoomByID(t.Context(), oldRoom); err != nil {
		t.Fatalf("bob joins: %v", err)
	}
	sendText(t, alice, oldRoom, "t1", "last words")
	alias := id.RoomAlias("#upgraded:" + apitest.ServerName)
	if _, err := alice.CreateAlias(t.Context(), alias, oldRoom); err != nil {
		t.Fatalf("create alias: %v", err)
	}

	t.Run("an unprivileged user may not upgrade", func(t *testing.T) {
		_, err := upgradeRoom(t, bob, oldRoom, map[string]any{"new_version": "12"})
		wantMatrixError(t, err, mautrix.MForbidden, 403)
	})
	t.Run("an unknown version is refused", func(t *testing.T) {
		_, err := upgradeRoom(t, alice, oldRoom, map[string]any{"new_version": "999"})
		wantMatrixError(t, err, mautrix.MUnsupportedRoomVersion, 400)
	})
	t.Run("new_version is required", func(t *testing.T) {
		_, err := upgradeRoom(t, alice, oldRoom, map[string]any{})
		wantMatrixError(t, err, mautrix.RespError{ErrCode: "M_MISSING_PARAM"}, 400)
	})

	first, err := syncOnce(t.Context(), bob, "", 0, "")
	if err != nil {
		t.Fatalf("initial sync: %v", err)
	}
	newRoomID, err := upgradeRoom(t, alice, oldRoom, map[string]any{"new_version": "12"})
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if !v12RoomID.MatchString(newRoomID.String()) {
		t.Fatalf("replacement room %q is not a v12 room ID", newRoomID)
	}

	t.Run("the new room names its predecessor and carries the state over", func(t *testing.T) {
		state, err := alice.State(t.Context(), newRoomID)
		if err != nil {
			t.Fatalf("state of the new room: %v", err)
		}
		create := state[event.StateCreate][""]
		if create == nil {
			t.Fatal("new room has no create event")
		}
		cc := create.Content.Raw
		pred, _ := cc["predecessor"].(map[string]any)
		if cc["room_version"] != "12" || cc["type"] != "org.chronicle.test.kind" || pred["room_id"] != oldRoom.String() {
			t.Fatalf("create content %v: want room_version 12, the old type and predecessor %s", cc, oldRoom)
		}
		for _, c := range []struct {
			typ        event.Type
			key, value string
		}{
			{event.StateRoomName, "name", "Old name"},
			{event.StateTopic, "topic", "Old topic"},
			{event.StateJoinRules, "join_rule", "public"},
			{event.StateHistoryVisibility, "history_visibility", "joined"},
			{event.StateGuestAccess, "guest_access", "forbidden"},
		} {
			ev := state[c.typ][""]
			if ev == nil || ev.Content.Raw[c.key] != c.value {
				t.Errorf("new room %s = %v, want %s %q", c.typ.Type, ev, c.key, c.value)
			}
		}
		if state[event.StatePowerLevels][""] == nil {
			t.Error("new room has no power levels")
		}
		if m := state[event.StateMember]; len(m) != 1 || m[alice.UserID.String()] == nil {
			t.Errorf("new room members %v, want only the upgrader", stateKeys(mapValues(m)))
		}
		// Anyone may follow: the copied join rule is public.
		if _, err := bob.JoinRoomByID(t.Context(), newRoomID); err != nil {
			t.Fatalf("bob follows the upgrade: %v", err)
		}
	})

	t.Run("local aliases move to the new room", func(t *testing.T) {
		resolved, err := bob.ResolveAlias(t.Context(), alias)
		if err != nil {
			t.Fatalf("resolve alias: %v", err)
		}
		if resolved.RoomID != newRoomID {
			t.Fatalf("%s resolves to %s, want the new room %s", alias, resolved.RoomID, newRoomID)
		}
	})

	t.Run("the old room is tombstoned and restricted", func(t *testing.T) {
		var tomb map[string]any
		if err := bob.StateEvent(t.Context(), oldRoom, event.StateTombstone, "", &tomb); err != nil {
			t.Fatalf("tombstone: %v", err)
		}
		if tomb["replacement_room"] != newRoomID.String() || tomb["body"] == "" {
			t.Fatalf("tombstone %v", tomb)
		}
		var pl event.PowerLevelsEventContent
		if err := bob.StateEvent(t.Context(), oldRoom, event.StatePowerLevels, "", &pl); err != nil {
			t.Fatalf("power levels: %v", err)
		}
		if pl.EventsDefault < 50 || pl.Invite() < 50 {
			t.Fatalf("old room power levels events_default %d invite %d, want at least 50", pl.EventsDefault, pl.Invite())
		}
		_, err := bob.SendMessageEvent(t.Context(), oldRoom, event.EventMessage, textContent("still here?"))
		wantMatrixError(t, err, mautrix.MForbidden, 403)
		syncUntil(t, bob, first.NextBatch, func(r *mautrix.RespSync) bool {
			jr := r.Rooms.Join[oldRoom]
			if jr == nil {
				return false
			}
			for _, ev := range jr.Timeline.Events {
				if ev.Type == event.StateTombstone {
					return true
				}
			}
			return false
		})
	})

	t.Run("the new room can be upgraded again, to an older version", func(t *testing.T) {
		again, err := upgradeRoom(t, alice, newRoomID, map[string]any{"new_version": "10"})
		if err != nil {
			t.Fatalf("upgrade v12 -> v10: %v", err)
		}
		var create map[string]any
		if err := alice.StateEvent(t.Context(), again, event.StateCreate, "", &create); err != nil {
			t.Fatalf("create: %v", err)
		}
		pred, _ := create["predecessor"].(map[string]any)
		if create["room_version"] != "10" || create["creator"] != alice.UserID.String() || pred["room_id"] != newRoomID.String() {
			t.Fatalf("v10 create content %v", create)
		}
	})
}

func mapValues(m map[string]*event.Event) []*event.Event {
	out := make([]*event.Event, 0, len(m))
	for _, ev := range m {
		out = append(out, ev)
	}
	return out
}
