package e2e

import (
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// TestProfileSetAndReadByOthers: a new account's displayname is its
// localpart; the user changes name and avatar, and another user (and an
// anonymous client) reads them back.
func TestProfileSetAndReadByOthers(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	ctx := t.Context()

	if name, err := bob.GetDisplayName(ctx, alice.UserID); err != nil || name.DisplayName != "alice" {
		t.Fatalf("alice's default displayname: %+v, %v (want her localpart)", name, err)
	}
	if err := alice.SetDisplayName(ctx, "Alice Liddell"); err != nil {
		t.Fatalf("set displayname: %v", err)
	}
	avatar := id.ContentURI{Homeserver: apitest.ServerName, FileID: "rabbit"}
	if err := alice.SetAvatarURL(ctx, avatar); err != nil {
		t.Fatalf("set avatar_url: %v", err)
	}
	if name, err := bob.GetDisplayName(ctx, alice.UserID); err != nil || name.DisplayName != "Alice Liddell" {
		t.Errorf("bob reads alice's displayname: %+v, %v", name, err)
	}
	if url, err := bob.GetAvatarURL(ctx, alice.UserID); err != nil || url != avatar {
		t.Errorf("bob reads alice's avatar_url: %v, %v", url, err)
	}
	profile, err := anonClient(t, srv).GetProfile(ctx, alice.UserID)
	if err != nil || profile.DisplayName != "Alice Liddell" || profile.AvatarURL != avatar {
		t.Errorf("anonymous profile lookup: %+v, %v", profile, err)
	}

	// A custom field (v1.16) and its removal.
	if err := alice.SetProfileField(ctx, "m.tz", "Europe/London"); err != nil {
		t.Fatalf("set m.tz: %v", err)
	}
	var tz map[string]string
	if err := bob.GetProfileField(ctx, alice.UserID, "m.tz", &tz); err != nil || tz["m.tz"] != "Europe/London" {
		t.Errorf("m.tz: %v, %v", tz, err)
	}
	if err := alice.DeleteProfileField(ctx, "m.tz"); err != nil {
		t.Fatalf("delete m.tz: %v", err)
	}
	err = bob.GetProfileField(ctx, alice.UserID, "m.tz", &tz)
	wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
}

// TestProfileRefusals: another user's profile cannot be changed, and an
// unknown user has none.
func TestProfileRefusals(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	ctx := t.Context()

	_, err := bob.MakeRequest(ctx, http.MethodPut, bob.BuildClientURL("v3", "profile", alice.UserID, "displayname"),
		map[string]any{"displayname": "Mallory"}, nil)
	wantMatrixError(t, err, mautrix.MForbidden, http.StatusForbidden)
	_, err = bob.MakeRequest(ctx, http.MethodDelete, bob.BuildClientURL("v3", "profile", alice.UserID, "displayname"), nil, nil)
	wantMatrixError(t, err, mautrix.MForbidden, http.StatusForbidden)
	if name, err := bob.GetDisplayName(ctx, alice.UserID); err != nil || name.DisplayName != "alice" {
		t.Errorf("alice's displayname after the refused changes: %+v, %v", name, err)
	}

	_, err = bob.GetProfile(ctx, userID("nobody"))
	wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
	err = bob.GetProfileField(ctx, userID("nobody"), "displayname", &struct{}{})
	wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
}

// TestDisplayNameChangeReachesRoommates: a rename is a new m.room.member
// join in the room the two share, which the other user's /sync delivers
// with the new name (and the old one as prev_content).
func TestDisplayNameChangeReachesRoommates(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	ctx := t.Context()
	room := joinedPair(t, alice, bob, "private_chat")

	first, err := syncOnce(ctx, bob, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	// The joins already carry the profiles.
	for _, ev := range first.Rooms.Join[room].State.Events {
		if ev.Type == event.StateMember && ev.GetStateKey() == alice.UserID.String() {
			if name, _ := ev.Content.Raw["displayname"].(string); name != "alice" {
				t.Errorf("alice's join carries displayname %q", name)
			}
		}
	}

	if err := alice.SetDisplayName(ctx, "Queen Alice"); err != nil {
		t.Fatal(err)
	}
	var rename *event.Event
	syncUntil(t, bob, first.NextBatch, func(r *mautrix.RespSync) bool {
		for _, ev := range r.Rooms.Join[room].Timeline.Events {
			if ev.Type == event.StateMember && ev.GetStateKey() == alice.UserID.String() {
				rename = ev
			}
		}
		return rename != nil
	})
	if err := rename.Content.ParseRaw(event.StateMember); err != nil {
		t.Fatal(err)
	}
	m := rename.Content.AsMember()
	if m.Membership != event.MembershipJoin || m.Displayname != "Queen Alice" || rename.Sender != alice.UserID {
		t.Errorf("the rename bob sees: %+v from %s", m, rename.Sender)
	}
	if prev, _ := rename.Unsigned.PrevContent.Raw["displayname"].(string); prev != "alice" {
		t.Errorf("prev_content displayname %q, want the old name", prev)
	}
	members, err := bob.JoinedMembers(ctx, room)
	if err != nil || members.Joined[alice.UserID].DisplayName != "Queen Alice" {
		t.Errorf("joined_members after the rename: %+v, %v", members, err)
	}
}

// TestTurnServerWithoutTURN: with no TURN server configured the answer is
// an empty object, as Synapse gives, and it needs an access token.
func TestTurnServerWithoutTURN(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	raw, err := alice.MakeRequest(t.Context(), http.MethodGet, alice.BuildClientURL("v3", "voip", "turnServer"), nil, nil)
	if err != nil || strings.TrimSpace(string(raw)) != "{}" {
		t.Errorf("turnServer: %s, %v", raw, err)
	}
	_, err = anonClient(t, srv).TurnServer(t.Context())
	wantMatrixError(t, err, mautrix.MMissingToken, http.StatusUnauthorized)
}
