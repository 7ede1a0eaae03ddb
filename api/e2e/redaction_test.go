package e2e

import (
	"bytes"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// rawGet performs an authenticated GET and returns the raw body, so a test
// can assert that a string appears nowhere in a response.
func rawGet(t *testing.T, cli *mautrix.Client, url string) []byte {
	t.Helper()
	body, err := cli.MakeRequest(t.Context(), http.MethodGet, url, nil, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return body
}

// redactedBecause checks that ev is redacted (empty content) by the
// redaction redaction with the given reason.
func wantRedacted(t *testing.T, where string, ev *event.Event, redaction id.EventID, reason string) {
	t.Helper()
	if ev == nil {
		t.Fatalf("%s: event missing", where)
	}
	if len(ev.Content.Raw) != 0 {
		t.Fatalf("%s: redacted event %s still has content %v", where, ev.ID, ev.Content.Raw)
	}
	rb := ev.Unsigned.RedactedBecause
	if rb == nil {
		t.Fatalf("%s: redacted event %s has no unsigned.redacted_because", where, ev.ID)
	}
	if rb.ID != redaction || rb.Type.Type != event.EventRedaction.Type || rb.Redacts != ev.ID {
		t.Fatalf("%s: redacted_because is %s %s redacts %q, want the redaction %s of %s", where, rb.Type.Type, rb.ID, rb.Redacts, redaction, ev.ID)
	}
	if got, _ := rb.Content.Raw["reason"].(string); got != reason {
		t.Fatalf("%s: redacted_because reason %q, want %q", where, got, reason)
	}
	if got, _ := rb.Content.Raw["redacts"].(string); got != string(ev.ID) {
		t.Fatalf("%s: redacted_because content.redacts %q, want %s", where, got, ev.ID)
	}
}

func findEvent(evs []*event.Event, eventID id.EventID) *event.Event {
	for _, ev := range evs {
		if ev.ID == eventID {
			return ev
		}
	}
	return nil
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")

	for _, version := range []string{"10", "11", "12"} {
		t.Run("room version "+version, func(t *testing.T) {
			room := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: id.RoomVersion(version), Invite: []id.UserID{bob.UserID}})
			if _, err := bob.JoinRoomByID(t.Context(), room); err != nil {
				t.Fatalf("bob joins: %v", err)
			}
			const secret = "the-secret-body-that-must-vanish"
			fromAlice := sendText(t, alice, room, "v"+version+"-a1", secret)
			fromBob := sendText(t, bob, room, "v"+version+"-b1", "bob's typo")
			before, err := syncOnce(t.Context(), bob, "", 0, "")
			if err != nil {
				t.Fatal(err)
			}

			// bob has power 0: not someone else's message...
			_, err = bob.RedactEvent(t.Context(), room, fromAlice, mautrix.ReqRedact{Reason: "mine now"})
			wantMatrixError(t, err, mautrix.MForbidden, 403)
			// ... but his own; a retry of the transaction is the same event.
			own, err := bob.RedactEvent(t.Context(), room, fromBob, mautrix.ReqRedact{Reason: "typo", TxnID: "red-" + version})
			if err != nil {
				t.Fatalf("bob redacts his own message: %v", err)
			}
			again, err := bob.RedactEvent(t.Context(), room, fromBob, mautrix.ReqRedact{Reason: "typo", TxnID: "red-" + version})
			if err != nil || again.EventID != own.EventID {
				t.Fatalf("retried redaction: %v %v, want %s", again, err, own.EventID)
			}
			// alice (power 100) redacts bob's... and her own leak.
			leak, err := alice.RedactEvent(t.Context(), room, fromAlice, mautrix.ReqRedact{Reason: "leak"})
			if err != nil {
				t.Fatalf("alice redacts her message: %v", err)
			}
			// Unknown events are 404; non-members are refused.
			_, err = alice.RedactEvent(t.Context(), room, "$doesnotexist")
			wantMatrixError(t, err, mautrix.MNotFound, 404)
			_, err = carol.RedactEvent(t.Context(), room, fromAlice)
			wantMatrixError(t, err, mautrix.MForbidden, 403)

			// /event
			for _, cli := range []*mautrix.Client{alice, bob} {
				ev, err := cli.GetEvent(t.Context(), room, fromAlice)
				if err != nil {
					t.Fatalf("%s gets the redacted event: %v", cli.UserID, err)
				}
				wantRedacted(t, "/event", ev, leak.EventID, "leak")
			}
			ownEv, err := bob.GetEvent(t.Context(), room, fromBob)
			if err != nil {
				t.Fatal(err)
			}
			wantRedacted(t, "/event (own)", ownEv, own.EventID, "typo")

			// /messages
			msgs, err := bob.Messages(t.Context(), room, "", "", mautrix.DirectionBackward, nil, 50)
			if err != nil {
				t.Fatal(err)
			}
			wantRedacted(t, "/messages", findEvent(msgs.Chunk, fromAlice), leak.EventID, "leak")
			red := findEvent(msgs.Chunk, leak.EventID)
			if red == nil || red.Redacts != fromAlice || red.Content.Raw["redacts"] != string(fromAlice) {
				t.Fatalf("/messages: the redaction event has redacts %q and content %v, want %s in both", red.Redacts, red.Content.Raw, fromAlice)
			}

			// /context
			ctxResp, err := bob.Context(t.Context(), room, fromBob, nil, 10)
			if err != nil {
				t.Fatal(err)
			}
			wantRedacted(t, "/context event", ctxResp.Event, own.EventID, "typo")
			wantRedacted(t, "/context events_before", findEvent(ctxResp.EventsBefore, fromAlice), leak.EventID, "leak")

			// /sync: a fresh initial sync, and an incremental one from before.
			full, err := syncOnce(t.Context(), bob, "", 0, "")
			if err != nil {
				t.Fatal(err)
			}
			wantRedacted(t, "initial /sync", findEvent(full.Rooms.Join[room].Timeline.Events, fromAlice), leak.EventID, "leak")
			inc, err := syncOnce(t.Context(), bob, before.NextBatch, 0, "")
			if err != nil {
				t.Fatal(err)
			}
			if red := findEvent(inc.Rooms.Join[room].Timeline.Events, leak.EventID); red == nil || red.Redacts != fromAlice {
				t.Fatalf("incremental /sync does not carry the redaction of %s", fromAlice)
			}

			// Nothing a client can fetch holds the secret any more.
			for _, url := range []string{
				bob.BuildClientURL("v3", "rooms", room, "event", fromAlice),
				bob.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", room, "messages"}, map[string]string{"dir": "b", "limit": "100"}),
				bob.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", room, "messages"}, map[string]string{"dir": "f", "limit": "100"}),
				bob.BuildClientURL("v3", "rooms", room, "context", fromBob),
				bob.BuildClientURL("v3", "rooms", room, "context", fromAlice),
				bob.BuildClientURL("v3", "sync"),
				bob.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "sync"}, map[string]string{"since": before.NextBatch}),
			} {
				if body := rawGet(t, bob, url); bytes.Contains(body, []byte(secret)) {
					t.Fatalf("GET %s still returns the redacted text: %s", url, body)
				}
			}
		})
	}

	t.Run("redacting a state event redacts current state", func(t *testing.T) {
		room := joinedPair(t, alice, bob, "private_chat")
		const topic = "the-secret-topic"
		resp, err := alice.SendStateEvent(t.Context(), room, event.StateTopic, "", &event.TopicEventContent{Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.RedactEvent(t.Context(), room, resp.EventID, mautrix.ReqRedact{Reason: "oops"}); err != nil {
			t.Fatal(err)
		}
		var content map[string]any
		if err := bob.StateEvent(t.Context(), room, event.StateTopic, "", &content); err != nil || len(content) != 0 {
			t.Fatalf("GET state m.room.topic after redaction: %v %v", content, err)
		}
		for _, url := range []string{
			bob.BuildClientURL("v3", "rooms", room, "state"),
			bob.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", room, "state", "m.room.topic", ""}, map[string]string{"format": "event"}),
			bob.BuildClientURL("v3", "sync"),
		} {
			if body := rawGet(t, bob, url); bytes.Contains(body, []byte(topic)) {
				t.Fatalf("GET %s still returns the redacted topic: %s", url, body)
			}
		}
	})

	t.Run("m.room.redaction through /send follows the same rule", func(t *testing.T) {
		room := joinedPair(t, alice, bob, "private_chat")
		fromAlice := sendText(t, alice, room, "send-a1", "alice")
		fromBob := sendText(t, bob, room, "send-b1", "bob")
		_, err := bob.SendMessageEvent(t.Context(), room, event.EventRedaction, map[string]any{"redacts": fromAlice})
		wantMatrixError(t, err, mautrix.MForbidden, 403)
		resp, err := bob.SendMessageEvent(t.Context(), room, event.EventRedaction, map[string]any{"redacts": fromBob, "reason": "own"})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := bob.GetEvent(t.Context(), room, fromBob)
		if err != nil {
			t.Fatal(err)
		}
		wantRedacted(t, "/event after /send redaction", ev, resp.EventID, "own")
	})
}
