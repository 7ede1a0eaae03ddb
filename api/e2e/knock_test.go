package e2e

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// joinRulesState is an initial_state entry setting the room's join rule.
func joinRulesState(rule event.JoinRule, allow ...id.RoomID) *event.Event {
	content := &event.JoinRulesEventContent{JoinRule: rule}
	for _, r := range allow {
		content.Allow = append(content.Allow, event.JoinRuleAllow{Type: event.JoinRuleAllowRoomMembership, RoomID: r})
	}
	return &event.Event{Type: event.StateJoinRules, StateKey: new(""), Content: event.Content{Parsed: content}}
}

// membershipIn reads user's current membership event content in roomID
// through reader.
func membershipIn(t *testing.T, reader *mautrix.Client, roomID id.RoomID, user id.UserID) map[string]any {
	t.Helper()
	var content map[string]any
	if err := reader.StateEvent(t.Context(), roomID, event.StateMember, user.String(), &content); err != nil {
		t.Fatalf("%s reads %s's membership in %s: %v", reader.UserID, user, roomID, err)
	}
	return content
}

func TestKnock(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")
	dave := newUser(t, srv, "dave")
	roomID := newRoom(t, alice, &mautrix.ReqCreateRoom{
		Preset: "private_chat", Name: "Knock knock",
		InitialState: []*event.Event{joinRulesState(event.JoinRuleKnock)},
	})

	t.Run("knock, shown in sync, then accepted by an invite", func(t *testing.T) {
		first, err := syncOnce(t.Context(), bob, "", 0, "")
		if err != nil {
			t.Fatalf("initial sync: %v", err)
		}
		resp, err := bob.KnockRoom(t.Context(), roomID.String(), &mautrix.ReqKnockRoom{Reason: "let me in"})
		if err != nil {
			t.Fatalf("knock: %v", err)
		}
		if resp.RoomID != roomID {
			t.Fatalf("knock answered room %s, want %s", resp.RoomID, roomID)
		}
		got := syncUntil(t, bob, first.NextBatch, func(r *mautrix.RespSync) bool { return r.Rooms.Knock[roomID] != nil })
		var sawRule, sawName, sawKnock bool
		for _, ev := range got.Rooms.Knock[roomID].State.Events {
			switch ev.Type {
			case event.StateJoinRules:
				sawRule = ev.Content.Raw["join_rule"] == "knock"
			case event.StateRoomName:
				sawName = ev.Content.Raw["name"] == "Knock knock"
			case event.StateMember:
				sawKnock = ev.GetStateKey() == bob.UserID.String() && ev.Content.Raw["membership"] == "knock" && ev.Content.Raw["reason"] == "let me in"
			}
		}
		if !sawRule || !sawName || !sawKnock {
			t.Fatalf("knock_state %+v lacks the join rule, the name or bob's knock", got.Rooms.Knock[roomID].State.Events)
		}
		if got.Rooms.Invite[roomID] != nil || got.Rooms.Join[roomID] != nil {
			t.Fatalf("knocked room also listed as invited or joined")
		}
		// The moderator sees the knock and accepts it.
		if m := membershipIn(t, alice, roomID, bob.UserID); m["membership"] != "knock" {
			t.Fatalf("alice sees bob's membership %v, want knock", m)
		}
		_, err = bob.JoinRoomByID(t.Context(), roomID)
		wantMatrixError(t, err, mautrix.MForbidden, 403)
		if _, err := alice.InviteUser(t.Context(), roomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
			t.Fatalf("accept the knock: %v", err)
		}
		syncUntil(t, bob, got.NextBatch, func(r *mautrix.RespSync) bool { return r.Rooms.Invite[roomID] != nil })
		if _, err := bob.JoinRoomByID(t.Context(), roomID); err != nil {
			t.Fatalf("join after the accepted knock: %v", err)
		}
	})

	t.Run("knock refused by a kick", func(t *testing.T) {
		first, err := syncOnce(t.Context(), carol, "", 0, "")
		if err != nil {
			t.Fatalf("initial sync: %v", err)
		}
		if _, err := carol.KnockRoom(t.Context(), roomID.String(), &mautrix.ReqKnockRoom{}); err != nil {
			t.Fatalf("knock: %v", err)
		}
		_, err = bob.KickUser(t.Context(), roomID, &mautrix.ReqKickUser{UserID: carol.UserID})
		wantMatrixError(t, err, mautrix.MForbidden, 403) // bob is no moderator
		if _, err := alice.KickUser(t.Context(), roomID, &mautrix.ReqKickUser{UserID: carol.UserID, Reason: "not today"}); err != nil {
			t.Fatalf("refuse the knock: %v", err)
		}
		got := syncUntil(t, carol, first.NextBatch, func(r *mautrix.RespSync) bool { return r.Rooms.Leave[roomID] != nil })
		if got.Rooms.Knock[roomID] != nil {
			t.Fatalf("refused knock still listed under rooms.knock")
		}
	})

	t.Run("an invite-only room refuses knocks", func(t *testing.T) {
		private := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		_, err := dave.KnockRoom(t.Context(), private.String(), &mautrix.ReqKnockRoom{})
		wantMatrixError(t, err, mautrix.MForbidden, 403)
	})

	t.Run("unknown rooms and aliases are not found", func(t *testing.T) {
		_, err := dave.KnockRoom(t.Context(), "!nowhere:"+apitest.ServerName, &mautrix.ReqKnockRoom{})
		wantMatrixError(t, err, mautrix.MNotFound, 404)
		_, err = dave.KnockRoom(t.Context(), "#nowhere:"+apitest.ServerName, &mautrix.ReqKnockRoom{})
		wantMatrixError(t, err, mautrix.MNotFound, 404)
	})

	t.Run("a banned user cannot rejoin, knock or be invited until unbanned", func(t *testing.T) {
		public := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if _, err := dave.JoinRoomByID(t.Context(), public); err != nil {
			t.Fatalf("join: %v", err)
		}
		if _, err := alice.BanUser(t.Context(), public, &mautrix.ReqBanUser{UserID: dave.UserID, Reason: "spam"}); err != nil {
			t.Fatalf("ban: %v", err)
		}
		_, err := dave.JoinRoomByID(t.Context(), public)
		wantMatrixError(t, err, mautrix.MForbidden, 403)
		_, err = dave.KnockRoom(t.Context(), public.String(), &mautrix.ReqKnockRoom{})
		wantMatrixError(t, err, mautrix.MForbidden, 403)
		// In a knock room too, with an invite as the only way back.
		_, err = alice.BanUser(t.Context(), roomID, &mautrix.ReqBanUser{UserID: dave.UserID})
		if err != nil {
			t.Fatalf("ban from the knock room: %v", err)
		}
		_, err = dave.KnockRoom(t.Context(), roomID.String(), &mautrix.ReqKnockRoom{})
		wantMatrixError(t, err, mautrix.MForbidden, 403)
		_, err = alice.InviteUser(t.Context(), roomID, &mautrix.ReqInviteUser{UserID: dave.UserID})
		wantMatrixError(t, err, mautrix.MForbidden, 403)

		if _, err := alice.UnbanUser(t.Context(), roomID, &mautrix.ReqUnbanUser{UserID: dave.UserID}); err != nil {
			t.Fatalf("unban: %v", err)
		}
		if _, err := dave.KnockRoom(t.Context(), roomID.String(), &mautrix.ReqKnockRoom{}); err != nil {
			t.Fatalf("knock after the unban: %v", err)
		}
		if _, err := alice.UnbanUser(t.Context(), public, &mautrix.ReqUnbanUser{UserID: dave.UserID}); err != nil {
			t.Fatalf("unban: %v", err)
		}
		if _, err := dave.JoinRoomByID(t.Context(), public); err != nil {
			t.Fatalf("rejoin after the unban: %v", err)
		}
	})
}

func TestRestrictedJoin(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")
	space := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Members"})
	if _, err := bob.JoinRoomByID(t.Context(), space); err != nil {
		t.Fatalf("bob joins the allowed room: %v", err)
	}

	for _, rule := range []event.JoinRule{event.JoinRuleRestricted, event.JoinRuleKnockRestricted} {
		t.Run(string(rule), func(t *testing.T) {
			roomID := newRoom(t, alice, &mautrix.ReqCreateRoom{
				Preset: "private_chat", InitialState: []*event.Event{joinRulesState(rule, space)},
			})
			if _, err := bob.JoinRoomByID(t.Context(), roomID); err != nil {
				t.Fatalf("member of the allowed room joins: %v", err)
			}
			m := membershipIn(t, alice, roomID, bob.UserID)
			if m["membership"] != "join" || m["join_authorised_via_users_server"] != alice.UserID.String() {
				t.Fatalf("bob's join %v, want one authorised via %s", m, alice.UserID)
			}
			_, err := carol.JoinRoomByID(t.Context(), roomID)
			wantMatrixError(t, err, mautrix.MForbidden, 403)
			if rule == event.JoinRuleKnockRestricted {
				if _, err := carol.KnockRoom(t.Context(), roomID.String(), &mautrix.ReqKnockRoom{}); err != nil {
					t.Fatalf("knock on a knock_restricted room: %v", err)
				}
			}
		})
	}

	t.Run("leaving the allowed room closes the door", func(t *testing.T) {
		roomID := newRoom(t, alice, &mautrix.ReqCreateRoom{
			Preset: "private_chat", InitialState: []*event.Event{joinRulesState(event.JoinRuleRestricted, space)},
		})
		if _, err := bob.LeaveRoom(t.Context(), space); err != nil {
			t.Fatalf("leave: %v", err)
		}
		_, err := bob.JoinRoomByID(t.Context(), roomID)
		wantMatrixError(t, err, mautrix.MForbidden, 403)
	})
}
