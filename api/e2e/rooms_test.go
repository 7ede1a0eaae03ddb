package e2e

import (
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

func TestCreateRoomPresets(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")

	t.Run("capabilities default to room version 12", func(t *testing.T) {
		caps, err := alice.Capabilities(t.Context())
		if err != nil {
			t.Fatalf("capabilities: %v", err)
		}
		if caps.RoomVersions == nil || caps.RoomVersions.Default != "12" || !caps.RoomVersions.IsStable("12") {
			t.Fatalf("m.room_versions = %+v, want default 12 and 12 stable", caps.RoomVersions)
		}
	})

	// The spec's preset table (createRoom, "preset").
	for _, tc := range []struct {
		preset, joinRule, historyVisibility, guestAccess string
		isDirect                                         bool
	}{
		{"private_chat", "invite", "shared", "can_join", false},
		{"trusted_private_chat", "invite", "shared", "can_join", true},
		{"public_chat", "public", "shared", "forbidden", false},
	} {
		t.Run(tc.preset, func(t *testing.T) {
			flavour := stateType("org.chronicle.test.flavour")
			roomID := newRoom(t, alice, &mautrix.ReqCreateRoom{
				Preset:   tc.preset,
				Name:     tc.preset + " room",
				Topic:    "about " + tc.preset,
				Invite:   []id.UserID{bob.UserID},
				IsDirect: tc.isDirect,
				InitialState: []*event.Event{{
					Type: flavour, StateKey: new(""), Content: event.Content{Raw: map[string]any{"flavour": "mint"}},
				}},
			})
			if !v12RoomID.MatchString(roomID.String()) {
				t.Errorf("room ID %q is not a room version 12 room ID", roomID)
			}
			state, err := alice.State(t.Context(), roomID)
			if err != nil {
				t.Fatalf("state: %v", err)
			}
			content := func(typ event.Type, sk string) map[string]any {
				t.Helper()
				ev := state[typ][sk]
				if ev == nil {
					t.Fatalf("no %s/%q in room state %v", typ.Type, sk, state)
				}
				if !v12EventID.MatchString(ev.ID.String()) {
					t.Errorf("%s event ID %q is not a room version 12 event ID", typ.Type, ev.ID)
				}
				return ev.Content.Raw
			}
			for _, c := range []struct {
				typ        event.Type
				key, value string
			}{
				{event.StateCreate, "room_version", "12"},
				{event.StateJoinRules, "join_rule", tc.joinRule},
				{event.StateHistoryVisibility, "history_visibility", tc.historyVisibility},
				{event.StateGuestAccess, "guest_access", tc.guestAccess},
				{event.StateRoomName, "name", tc.preset + " room"},
				{event.StateTopic, "topic", "about " + tc.preset},
				{flavour, "flavour", "mint"},
			} {
				if got := content(c.typ, "")[c.key]; got != c.value {
					t.Errorf("%s %s = %v, want %q", c.typ.Type, c.key, got, c.value)
				}
			}
			if creator := state[event.StateCreate][""].Sender; creator != alice.UserID {
				t.Errorf("m.room.create sender = %s, want %s", creator, alice.UserID)
			}
			if got := content(event.StateMember, alice.UserID.String())["membership"]; got != "join" {
				t.Errorf("alice's membership = %v, want join", got)
			}
			invite := content(event.StateMember, bob.UserID.String())
			if invite["membership"] != "invite" {
				t.Errorf("bob's membership = %v, want invite", invite["membership"])
			}
			if isDirect, _ := invite["is_direct"].(bool); isDirect != tc.isDirect {
				t.Errorf("bob's invite is_direct = %v, want %v", invite["is_direct"], tc.isDirect)
			}
			// trusted_private_chat gives invitees the creator's power; in
			// room version 12 that is done by making them creators too.
			additional, _ := content(event.StateCreate, "")["additional_creators"].([]any)
			if isCreator := slices.Contains(additional, any(bob.UserID.String())); isCreator != (tc.preset == "trusted_private_chat") {
				t.Errorf("additional_creators = %v (bob included: %v)", additional, isCreator)
			}
		})
	}

	t.Run("an older room version keeps server-named room IDs", func(t *testing.T) {
		resp, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: id.RoomV11})
		if err != nil {
			t.Fatalf("create a room version 11 room: %v", err)
		}
		roomID := resp.RoomID
		if !strings.HasPrefix(roomID.String(), "!") || !strings.HasSuffix(roomID.String(), ":"+apitest.ServerName) {
			t.Fatalf("room version 11 room ID %q, want !opaque:%s", roomID, apitest.ServerName)
		}
		var create map[string]any
		if err := alice.StateEvent(t.Context(), roomID, event.StateCreate, "", &create); err != nil {
			t.Fatalf("create event: %v", err)
		}
		if create["room_version"] != "11" || create["creator"] != nil {
			t.Fatalf("m.room.create content %v, want room_version 11 and no creator", create)
		}
	})
}

func TestMembership(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")

	t.Run("a private room needs an invite", func(t *testing.T) {
		private := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		_, err := bob.JoinRoomByID(t.Context(), private)
		wantMatrixError(t, err, mautrix.MForbidden, 403)
		_, err = bob.JoinRoom(t.Context(), private.String(), nil)
		wantMatrixError(t, err, mautrix.MForbidden, 403)
	})

	lobby := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Lobby"})
	garden := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Garden"})

	t.Run("anyone can join a public room", func(t *testing.T) {
		viaJoin, err := bob.JoinRoom(t.Context(), lobby.String(), nil)
		if err != nil || viaJoin.RoomID != lobby {
			t.Fatalf("POST /join/{roomId}: %+v, %v", viaJoin, err)
		}
		viaRooms, err := bob.JoinRoomByID(t.Context(), garden)
		if err != nil || viaRooms.RoomID != garden {
			t.Fatalf("POST /rooms/{roomId}/join: %+v, %v", viaRooms, err)
		}
		assertJoinedRooms(t, bob, lobby, garden)
		sendText(t, bob, lobby, "hi", "Hi all")
	})

	t.Run("after leaving, sends are forbidden and sync reports the leave", func(t *testing.T) {
		before, err := syncOnce(t.Context(), bob, "", 0, "")
		if err != nil {
			t.Fatalf("sync: %v", err)
		}
		if _, err := bob.LeaveRoom(t.Context(), lobby); err != nil {
			t.Fatalf("leave: %v", err)
		}
		_, err = bob.SendMessageEvent(t.Context(), lobby, event.EventMessage, textContent("still here?"))
		wantMatrixError(t, err, mautrix.MForbidden, 403)

		after, err := syncOnce(t.Context(), bob, before.NextBatch, 0, "")
		if err != nil {
			t.Fatalf("incremental sync: %v", err)
		}
		left := after.Rooms.Leave[lobby]
		if left == nil {
			t.Fatalf("incremental sync after leaving has no rooms.leave[%s]: %+v", lobby, after.Rooms)
		}
		if _, stillJoined := after.Rooms.Join[lobby]; stillJoined {
			t.Errorf("%s is under both join and leave", lobby)
		}
		var sawLeave bool
		for _, ev := range left.Timeline.Events {
			if ev.Type == event.StateMember && ev.GetStateKey() == bob.UserID.String() && ev.Content.Raw["membership"] == "leave" {
				sawLeave = true
			}
		}
		if !sawLeave {
			t.Errorf("rooms.leave timeline lacks bob's leave event: %v", stateKeys(left.Timeline.Events))
		}
		assertJoinedRooms(t, bob, garden)
	})

	t.Run("rejecting an invite reveals no history", func(t *testing.T) {
		room := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{carol.UserID}})
		invited := syncUntil(t, carol, "", func(r *mautrix.RespSync) bool { return r.Rooms.Invite[room] != nil })
		sendText(t, alice, room, "private", "said while carol was only invited")
		if _, err := carol.LeaveRoom(t.Context(), room); err != nil {
			t.Fatalf("carol rejects the invite: %v", err)
		}
		after, err := syncOnce(t.Context(), carol, invited.NextBatch, 0, "")
		if err != nil {
			t.Fatalf("incremental sync: %v", err)
		}
		left := after.Rooms.Leave[room]
		if left == nil {
			t.Fatalf("incremental sync after rejecting has no rooms.leave[%s]", room)
		}
		// history_visibility "shared" shows events to members from when
		// they join; carol never joined, so the only thing she may see is
		// her own membership.
		if leaked := messageBodies(left.Timeline.Events); len(leaked) > 0 {
			t.Fatalf("/sync rooms.leave of a rejected invite shows messages carol never could read: %q", leaked)
		}
		for _, ev := range left.Timeline.Events {
			if ev.Type != event.StateMember || ev.GetStateKey() != carol.UserID.String() {
				t.Errorf("rejected invite's leave timeline shows %s/%q", ev.Type.Type, ev.GetStateKey())
			}
		}
		_, err = carol.Messages(t.Context(), room, "", "", mautrix.DirectionBackward, nil, 10)
		wantMatrixError(t, err, mautrix.MForbidden, 403)
	})

	t.Run("non-members cannot read a room", func(t *testing.T) {
		_, err := carol.Messages(t.Context(), garden, "", "", mautrix.DirectionBackward, nil, 10)
		wantMatrixError(t, err, mautrix.MForbidden, 403)
		_, err = carol.State(t.Context(), garden)
		wantMatrixError(t, err, mautrix.MForbidden, 403)
		var name map[string]any
		err = carol.StateEvent(t.Context(), garden, event.StateRoomName, "", &name)
		wantMatrixError(t, err, mautrix.MForbidden, 403)
	})

	t.Run("power level 0 cannot change room settings", func(t *testing.T) {
		room := joinedPair(t, alice, bob, "private_chat")
		var pl map[string]any
		if err := alice.StateEvent(t.Context(), room, event.StatePowerLevels, "", &pl); err != nil {
			t.Fatalf("power levels: %v", err)
		}
		users, _ := pl["users"].(map[string]any)
		if users == nil {
			users = map[string]any{}
		}
		if lvl, ok := users[bob.UserID.String()]; ok && lvl != float64(0) {
			t.Fatalf("bob starts with power %v, want 0", lvl)
		}
		users[bob.UserID.String()] = 100
		pl["users"] = users

		for _, change := range []struct {
			typ     event.Type
			content any
		}{
			{event.StatePowerLevels, pl},
			{event.StateRoomName, map[string]any{"name": "Bob's room now"}},
		} {
			_, err := bob.SendStateEvent(t.Context(), room, change.typ, "", change.content)
			wantMatrixError(t, err, mautrix.MForbidden, 403)
		}
		// Ordinary messages need power 0 only.
		sendText(t, bob, room, "plain", "I can still talk")
		// The creator can do both.
		for _, change := range []struct {
			typ     event.Type
			content any
		}{
			{event.StateRoomName, map[string]any{"name": "Alice's room"}},
			{event.StatePowerLevels, pl},
		} {
			if _, err := alice.SendStateEvent(t.Context(), room, change.typ, "", change.content); err != nil {
				t.Fatalf("alice sets %s: %v", change.typ.Type, err)
			}
		}
		var name map[string]any
		if err := bob.StateEvent(t.Context(), room, event.StateRoomName, "", &name); err != nil || name["name"] != "Alice's room" {
			t.Fatalf("room name = %v, %v", name, err)
		}
	})
}

// assertJoinedRooms checks /joined_rooms lists exactly want.
func assertJoinedRooms(t *testing.T, cli *mautrix.Client, want ...id.RoomID) {
	t.Helper()
	resp, err := cli.JoinedRooms(t.Context())
	if err != nil {
		t.Fatalf("joined_rooms: %v", err)
	}
	got := slices.Clone(resp.JoinedRooms)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s joined_rooms = %v, want %v", cli.UserID, got, want)
	}
}
