package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// Identifiers in room versions 1 and 2: the server picks both, and both
// carry its name ("!opaque:server", "$opaque:server").
var (
	v1RoomID  = regexp.MustCompile(`^![A-Za-z0-9]+:` + regexp.QuoteMeta(apitest.ServerName) + `$`)
	v1EventID = regexp.MustCompile(`^\$[A-Za-z0-9_-]+:` + regexp.QuoteMeta(apitest.ServerName) + `$`)
)

func TestCapabilitiesListEveryRoomVersion(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	caps, err := alice.Capabilities(t.Context())
	if err != nil {
		t.Fatalf("capabilities: %v", err)
	}
	rv := caps.RoomVersions
	if rv == nil || rv.Default != "12" {
		t.Fatalf("m.room_versions = %+v, want default 12", rv)
	}
	for v := 1; v <= 12; v++ {
		if !rv.IsStable(strconv.Itoa(v)) {
			t.Errorf("room version %d is not listed as stable: %+v", v, rv.Available)
		}
	}
	if len(rv.Available) != 12 {
		t.Errorf("available room versions %v, want exactly 1-12", rv.Available)
	}
}

// Rooms of versions 1 and 2 work like any other through the client API:
// create, invite, join, send, state, /messages, /context, sync, redact,
// kick; and their event IDs are "$opaque:server".
func TestRoomVersions1And2(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")

	for _, version := range []string{"1", "2"} {
		t.Run("room version "+version, func(t *testing.T) {
			wantID := func(what string, eventID id.EventID) {
				t.Helper()
				if !v1EventID.MatchString(eventID.String()) {
					t.Errorf("%s: event ID %q is not of the form $opaque:%s", what, eventID, apitest.ServerName)
				}
			}
			room := newRoom(t, alice, &mautrix.ReqCreateRoom{
				RoomVersion: id.RoomVersion(version), Preset: "private_chat",
				Name: "v" + version + " room", Invite: []id.UserID{bob.UserID},
			})
			if !v1RoomID.MatchString(room.String()) {
				t.Fatalf("room ID %q is not of the form !opaque:%s", room, apitest.ServerName)
			}

			// The initial state, with the create event naming its creator.
			state, err := alice.State(t.Context(), room)
			if err != nil {
				t.Fatalf("state: %v", err)
			}
			create := state[event.StateCreate][""]
			if create == nil {
				t.Fatalf("no create event in %v", state)
			}
			if create.Content.Raw["room_version"] != version || create.Content.Raw["creator"] != alice.UserID.String() {
				t.Errorf("create content %v", create.Content.Raw)
			}
			seen := map[id.EventID]bool{}
			for typ, byKey := range state {
				for sk, ev := range byKey {
					wantID(fmt.Sprintf("state %s/%q", typ.Type, sk), ev.ID)
					if seen[ev.ID] {
						t.Errorf("event ID %s used twice", ev.ID)
					}
					seen[ev.ID] = true
				}
			}
			if n := state[event.StateRoomName][""]; n == nil || n.Content.Raw["name"] != "v"+version+" room" {
				t.Errorf("room name event %+v", n)
			}

			// bob joins on his invite and talks; retrying a send with the
			// same transaction ID gives the same event.
			if _, err := bob.JoinRoomByID(t.Context(), room); err != nil {
				t.Fatalf("bob joins: %v", err)
			}
			fromBob := sendText(t, bob, room, "v"+version+"-b1", "hello from bob")
			wantID("bob's message", fromBob)
			if again := sendText(t, bob, room, "v"+version+"-b1", "hello from bob"); again != fromBob {
				t.Errorf("retried send gave %s, first %s", again, fromBob)
			}
			fromAlice := sendText(t, alice, room, "v"+version+"-a1", "hi bob")
			wantID("alice's message", fromAlice)
			if fromAlice == fromBob {
				t.Fatalf("two messages share the ID %s", fromAlice)
			}

			// State: alice (100) may set the topic, bob (0) may not.
			topic, err := alice.SendStateEvent(t.Context(), room, event.StateTopic, "", map[string]any{"topic": "old versions"})
			if err != nil {
				t.Fatalf("alice sets the topic: %v", err)
			}
			wantID("topic", topic.EventID)
			var tc map[string]any
			if err := bob.StateEvent(t.Context(), room, event.StateTopic, "", &tc); err != nil || tc["topic"] != "old versions" {
				t.Errorf("topic read back: %v %v", tc, err)
			}
			_, err = bob.SendStateEvent(t.Context(), room, event.StateRoomName, "", map[string]any{"name": "bob's"})
			wantMatrixError(t, err, mautrix.MForbidden, 403)

			// Single events, /context and /messages by these IDs.
			ev, err := bob.GetEvent(t.Context(), room, fromAlice)
			if err != nil || ev.ID != fromAlice || bodyOf(ev) != "hi bob" || ev.RoomID != room {
				t.Fatalf("GET event %s: %+v %v", fromAlice, ev, err)
			}
			cx, err := bob.Context(t.Context(), room, fromBob, nil, 10)
			if err != nil || cx.Event == nil || cx.Event.ID != fromBob {
				t.Fatalf("context of %s: %+v %v", fromBob, cx, err)
			}
			if len(cx.EventsAfter) == 0 || cx.EventsAfter[0].ID != fromAlice {
				t.Errorf("context after %s: %v", fromBob, cx.EventsAfter)
			}
			msgs, err := bob.Messages(t.Context(), room, "", "", mautrix.DirectionBackward, nil, 50)
			if err != nil {
				t.Fatalf("messages: %v", err)
			}
			for _, ev := range msgs.Chunk {
				wantID("/messages "+ev.Type.Type, ev.ID)
			}
			if got := messageBodies(msgs.Chunk); len(got) != 2 || got[0] != "hi bob" || got[1] != "hello from bob" {
				t.Errorf("message bodies (newest first) %q", got)
			}

			// Sync shows the same events.
			resp := syncUntil(t, bob, "", func(r *mautrix.RespSync) bool {
				jr := r.Rooms.Join[room]
				return jr != nil && findEvent(jr.Timeline.Events, topic.EventID) != nil
			})
			for _, ev := range resp.Rooms.Join[room].Timeline.Events {
				wantID("sync "+ev.Type.Type, ev.ID)
			}

			// Redaction: bob's message loses its content for everyone; the
			// redaction names its target at the top level (v1-10).
			red, err := alice.RedactEvent(t.Context(), room, fromBob, mautrix.ReqRedact{Reason: "spam", TxnID: "v" + version + "-r1"})
			if err != nil {
				t.Fatalf("alice redacts bob's message: %v", err)
			}
			wantID("redaction", red.EventID)
			redacted, err := bob.GetEvent(t.Context(), room, fromBob)
			if err != nil {
				t.Fatalf("GET redacted event: %v", err)
			}
			wantRedacted(t, "GET event", redacted, red.EventID, "spam")
			msgs, err = alice.Messages(t.Context(), room, "", "", mautrix.DirectionBackward, nil, 50)
			if err != nil {
				t.Fatal(err)
			}
			wantRedacted(t, "/messages", findEvent(msgs.Chunk, fromBob), red.EventID, "spam")
			if r := findEvent(msgs.Chunk, red.EventID); r == nil || r.Redacts != fromBob {
				t.Errorf("redaction event in /messages: %+v", r)
			}
			// bob may not redact alice's event (redact level 50).
			_, err = bob.RedactEvent(t.Context(), room, fromAlice, mautrix.ReqRedact{TxnID: "v" + version + "-r2"})
			wantMatrixError(t, err, mautrix.MForbidden, 403)

			// Invite after creation, join, kick.
			if _, err := alice.InviteUser(t.Context(), room, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
				t.Fatalf("alice invites carol: %v", err)
			}
			if _, err := carol.JoinRoomByID(t.Context(), room); err != nil {
				t.Fatalf("carol joins: %v", err)
			}
			sendText(t, carol, room, "v"+version+"-c1", "hi all")
			if _, err := alice.KickUser(t.Context(), room, &mautrix.ReqKickUser{UserID: carol.UserID, Reason: "bye"}); err != nil {
				t.Fatalf("alice kicks carol: %v", err)
			}
			_, err = carol.SendMessageEvent(t.Context(), room, event.EventMessage, textContent("still here?"), mautrix.ReqSendEvent{TransactionID: "v" + version + "-c2"})
			wantMatrixError(t, err, mautrix.MForbidden, 403)
		})
	}
}
