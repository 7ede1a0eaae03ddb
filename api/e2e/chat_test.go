// Package e2e drives a real Chronicle server (apitest) with a real Matrix
// client library (mautrix-go), the way a client application would.
package e2e

import (
	"fmt"
	"net/http/httptrace"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

func TestTwoUsersChatEndToEnd(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")

	bobFirst, err := syncOnce(t.Context(), bob, "", 0, "")
	if err != nil {
		t.Fatalf("bob's initial sync: %v", err)
	}

	// Alice creates a private room with a name and topic and invites Bob.
	roomID := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Tea party", Topic: "Scones and jam"})
	if _, err := alice.InviteUser(t.Context(), roomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatalf("alice invites bob: %v", err)
	}

	// Bob's sync shows the invite with stripped state.
	invited := syncUntil(t, bob, bobFirst.NextBatch, func(r *mautrix.RespSync) bool { return r.Rooms.Invite[roomID] != nil })
	var sawName, sawInvite bool
	for _, ev := range invited.Rooms.Invite[roomID].State.Events {
		switch {
		case ev.Type == event.StateRoomName:
			sawName = ev.Content.Raw["name"] == "Tea party"
		case ev.Type == event.StateMember && ev.GetStateKey() == bob.UserID.String():
			sawInvite = ev.Content.Raw["membership"] == "invite" && ev.Sender == alice.UserID
		}
	}
	if !sawName || !sawInvite {
		t.Fatalf("invite_state lacks the room name or bob's invite (name %v, invite %v): %v", sawName, sawInvite, stateKeys(invited.Rooms.Invite[roomID].State.Events))
	}

	// Bob joins; his next sync has the room under join.
	joined, err := bob.JoinRoomByID(t.Context(), roomID)
	if err != nil {
		t.Fatalf("bob joins: %v", err)
	}
	if joined.RoomID != roomID {
		t.Fatalf("join answered room %s, want %s", joined.RoomID, roomID)
	}
	afterJoin := syncUntil(t, bob, invited.NextBatch, func(r *mautrix.RespSync) bool { return r.Rooms.Join[roomID] != nil })

	// Bob long-polls before Alice sends anything; the poll wakes up and,
	// over as many syncs as it takes, Bob sees the three messages in order.
	type polled struct {
		bodies    []string
		firstWake time.Duration
		nextBatch string
		err       error
	}
	wrote := make(chan struct{})
	var once sync.Once
	results := make(chan polled, 1)
	go func() {
		ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(wrote) }) },
		})
		var out polled
		since := afterJoin.NextBatch
		deadline := time.Now().Add(15 * time.Second)
		for i := 0; len(out.bodies) < 3 && time.Now().Before(deadline); i++ {
			start := time.Now()
			resp, err := syncOnce(ctx, bob, since, 10*time.Second, "")
			if err != nil {
				out.err = err
				break
			}
			if i == 0 {
				out.firstWake = time.Since(start)
			}
			if jr := resp.Rooms.Join[roomID]; jr != nil {
				out.bodies = append(out.bodies, messageBodies(jr.Timeline.Events)...)
			}
			since = resp.NextBatch
		}
		out.nextBatch = since
		results <- out
	}()
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("bob's long-poll sync was never sent")
	}

	bodies := []string{"Hello Bob", "How are you?", "Scones are ready"}
	var eventIDs []id.EventID
	for i, body := range bodies {
		evID := sendText(t, alice, roomID, fmt.Sprintf("txn-%d", i), body)
		if !v12EventID.MatchString(evID.String()) {
			t.Errorf("event ID %q is not a room version 12 event ID", evID)
		}
		eventIDs = append(eventIDs, evID)
	}

	var got polled
	select {
	case got = <-results:
	case <-time.After(20 * time.Second):
		t.Fatal("bob's syncs never returned")
	}
	if got.err != nil {
		t.Fatalf("bob's long-poll sync: %v", got.err)
	}
	if !slices.Equal(got.bodies, bodies) {
		t.Fatalf("bob saw %q, want %q", got.bodies, bodies)
	}
	if got.firstWake >= 9*time.Second {
		t.Errorf("bob's parked sync took %v: it timed out instead of waking for the new event", got.firstWake)
	}

	t.Run("retried send with the same txn ID is one event", func(t *testing.T) {
		retry := sendText(t, alice, roomID, "txn-2", bodies[2])
		if retry != eventIDs[2] {
			t.Fatalf("retry answered %s, want the original %s", retry, eventIDs[2])
		}
		page, err := alice.Messages(t.Context(), roomID, "", "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			t.Fatalf("messages: %v", err)
		}
		got := messageBodies(page.Chunk)
		slices.Reverse(got)
		if !slices.Equal(got, bodies) {
			t.Fatalf("room history is %q, want exactly %q", got, bodies)
		}
	})

	t.Run("sync resumes across a restart", func(t *testing.T) {
		srv.Restart()
		alice := reconnect(t, srv, alice)
		bob := reconnect(t, srv, bob)
		if who, err := bob.Whoami(t.Context()); err != nil || who.UserID != bob.UserID {
			t.Fatalf("bob's token after restart: whoami = %+v, %v", who, err)
		}
		// Transactions are durable: a retry after the restart still
		// answers the original event.
		if retry := sendText(t, alice, roomID, "txn-1", bodies[1]); retry != eventIDs[1] {
			t.Fatalf("retry after restart answered %s, want the original %s", retry, eventIDs[1])
		}
		sendText(t, alice, roomID, "txn-after-restart", "Still there?")
		var seen []string
		syncUntil(t, bob, got.nextBatch, func(r *mautrix.RespSync) bool {
			if jr := r.Rooms.Join[roomID]; jr != nil {
				seen = append(seen, messageBodies(jr.Timeline.Events)...)
			}
			return len(seen) > 0
		})
		if !slices.Equal(seen, []string{"Still there?"}) {
			t.Fatalf("after the restart bob's sync delivered %q, want only the new message", seen)
		}
	})

	t.Run("logout refuses the old token", func(t *testing.T) {
		alice := reconnect(t, srv, alice)
		if _, err := alice.Logout(t.Context()); err != nil {
			t.Fatalf("logout: %v", err)
		}
		_, err := alice.Whoami(t.Context())
		wantMatrixError(t, err, mautrix.MUnknownToken, 401)
		_, err = syncOnce(t.Context(), alice, "", 0, "")
		wantMatrixError(t, err, mautrix.MUnknownToken, 401)
	})

	t.Run("logout all refuses every token of the user", func(t *testing.T) {
		phone, laptop := login(t, srv, "alice"), login(t, srv, "alice")
		if phone.DeviceID == laptop.DeviceID {
			t.Fatalf("two logins share device %s", phone.DeviceID)
		}
		for _, cli := range []*mautrix.Client{phone, laptop} {
			if _, err := cli.Whoami(t.Context()); err != nil {
				t.Fatalf("whoami before logout/all: %v", err)
			}
		}
		if _, err := phone.LogoutAll(t.Context()); err != nil {
			t.Fatalf("logout/all: %v", err)
		}
		for _, cli := range []*mautrix.Client{phone, laptop} {
			_, err := cli.Whoami(t.Context())
			wantMatrixError(t, err, mautrix.MUnknownToken, 401)
		}
		// Other users' sessions are untouched.
		bob := reconnect(t, srv, bob)
		if _, err := bob.Whoami(t.Context()); err != nil {
			t.Fatalf("bob's token after alice's logout/all: %v", err)
		}
	})
}
