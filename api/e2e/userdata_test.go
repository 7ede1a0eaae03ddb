package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// TestToDeviceDeliveredExactlyOnce: a message for all of bob's devices
// reaches each device in exactly one sync, also when the sender retries
// the transaction.
func TestToDeviceDeliveredExactlyOnce(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	first, err := syncOnce(t.Context(), bob, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	msg := &mautrix.ReqSendToDevice{Messages: map[id.UserID]map[id.DeviceID]*event.Content{
		bob.UserID: {"*": {Raw: map[string]any{"secret": "hello"}}},
	}}
	evType := event.Type{Type: "org.example.ping", Class: event.ToDeviceEventType}
	for range 2 { // the retry must not queue it twice
		if _, err := alice.MakeRequest(t.Context(), "PUT", alice.BuildClientURL("v3", "sendToDevice", evType.Type, "txn1"), msg, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := syncUntil(t, bob, first.NextBatch, func(r *mautrix.RespSync) bool { return len(r.ToDevice.Events) > 0 })
	if n := len(got.ToDevice.Events); n != 1 {
		t.Fatalf("got %d to-device events, want 1", n)
	}
	if ev := got.ToDevice.Events[0]; ev.Sender != alice.UserID || ev.Type.Type != "org.example.ping" {
		t.Fatalf("to-device event %+v", ev)
	}
	// The next sync (acknowledging the first) does not repeat it, nor does
	// one after it.
	for range 2 {
		next, err := syncOnce(t.Context(), bob, got.NextBatch, 200*time.Millisecond, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(next.ToDevice.Events) != 0 {
			t.Fatalf("to-device message delivered again: %+v", next.ToDevice.Events)
		}
		got = next
	}
}

// TestTypingExpiresWithoutOtherActivity: typing with a short timeout shows
// in the other user's sync and disappears by itself.
func TestTypingExpiresWithoutOtherActivity(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	room := joinedPair(t, alice, bob, "public_chat")
	start, err := syncOnce(t.Context(), alice, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.UserTyping(t.Context(), room, true, 400*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	typingUsers := func(r *mautrix.RespSync) ([]id.UserID, bool) {
		jr := r.Rooms.Join[room]
		if jr == nil {
			return nil, false
		}
		for _, ev := range jr.Ephemeral.Events {
			if ev.Type == event.EphemeralEventTyping {
				_ = ev.Content.ParseRaw(ev.Type)
				return ev.Content.AsTyping().UserIDs, true
			}
		}
		return nil, false
	}
	on := syncUntil(t, alice, start.NextBatch, func(r *mautrix.RespSync) bool {
		u, ok := typingUsers(r)
		return ok && len(u) == 1 && u[0] == bob.UserID
	})
	began := time.Now()
	off := syncUntil(t, alice, on.NextBatch, func(r *mautrix.RespSync) bool {
		u, ok := typingUsers(r)
		return ok && len(u) == 0
	})
	if took := time.Since(began); took > 3*time.Second {
		t.Fatalf("typing took %s to expire", took)
	}
	_ = off
}

// TestReceiptsAndPrivateReceipts: m.read reaches other members; an
// m.read.private receipt reaches only its owner.
func TestReceiptsAndPrivateReceipts(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	room := joinedPair(t, alice, bob, "public_chat")
	ev := sendText(t, alice, room, "t1", "read me")
	start, err := syncOnce(t.Context(), alice, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.SendReceipt(t.Context(), room, ev, event.ReceiptTypeReadPrivate, nil); err != nil {
		t.Fatal(err)
	}
	if err := bob.SendReceipt(t.Context(), room, ev, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	receiptTypes := func(r *mautrix.RespSync) map[string]bool {
		out := map[string]bool{}
		if jr := r.Rooms.Join[room]; jr != nil {
			for _, e := range jr.Ephemeral.Events {
				if e.Type != event.EphemeralEventReceipt {
					continue
				}
				var c map[string]map[string]map[string]any
				_ = json.Unmarshal(e.Content.VeryRaw, &c)
				for _, byType := range c {
					for typ := range byType {
						out[typ] = true
					}
				}
			}
		}
		return out
	}
	seen := syncUntil(t, alice, start.NextBatch, func(r *mautrix.RespSync) bool { return receiptTypes(r)["m.read"] })
	if receiptTypes(seen)["m.read.private"] {
		t.Fatal("alice saw bob's private receipt")
	}
	own, err := syncOnce(t.Context(), bob, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if !receiptTypes(own)["m.read.private"] {
		t.Fatal("bob does not see his own private receipt")
	}
}

// TestAccountDataAndTagsInSync: global and room account data, tags and
// the fully-read marker round-trip through their endpoints and /sync.
func TestAccountDataAndTagsInSync(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	room := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	ev := sendText(t, alice, room, "t1", "hi")
	start, err := syncOnce(t.Context(), alice, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SetAccountData(t.Context(), "org.example.settings", map[string]any{"theme": "dark"}); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetRoomAccountData(t.Context(), room, "org.example.draft", map[string]any{"text": "..."}); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddTag(t.Context(), room, event.RoomTagFavourite, 0.25); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetReadMarkers(t.Context(), room, &mautrix.ReqSetReadMarkers{FullyRead: ev}); err != nil {
		t.Fatal(err)
	}
	var settings map[string]any
	if err := alice.GetAccountData(t.Context(), "org.example.settings", &settings); err != nil || settings["theme"] != "dark" {
		t.Fatalf("get account data: %v %v", settings, err)
	}
	tags, err := alice.GetTags(t.Context(), room)
	if err != nil || len(tags.Tags) != 1 {
		t.Fatalf("tags %+v %v", tags, err)
	}
	types := map[string]bool{}
	syncUntil(t, alice, start.NextBatch, func(r *mautrix.RespSync) bool {
		for _, e := range r.AccountData.Events {
			types[e.Type.Type] = true
		}
		if jr := r.Rooms.Join[room]; jr != nil {
			for _, e := range jr.AccountData.Events {
				types[e.Type.Type] = true
			}
		}
		return types["org.example.settings"] && types["org.example.draft"] && types["m.tag"] && types["m.fully_read"]
	})
	// m.fully_read is server-controlled through the account data API.
	err = alice.SetRoomAccountData(t.Context(), room, "m.fully_read", map[string]any{"event_id": ev})
	wantMatrixError(t, err, mautrix.MBadJSON, 405)
	// Another user's account data is off limits.
	bob := newUser(t, srv, "bob")
	_, err = bob.MakeRequest(t.Context(), "GET", bob.BuildClientURL("v3", "user", alice.UserID, "account_data", "org.example.settings"), nil, nil)
	wantMatrixError(t, err, mautrix.MForbidden, 403)
}

// TestPresenceSharedWithRoommatesOnly: presence set by a user reaches users
// sharing a room, not strangers.
func TestPresenceSharedWithRoommatesOnly(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")
	joinedPair(t, alice, bob, "public_chat")
	start, err := syncOnce(t.Context(), bob, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SetPresence(t.Context(), mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "lunch"}); err != nil {
		t.Fatal(err)
	}
	syncUntil(t, bob, start.NextBatch, func(r *mautrix.RespSync) bool {
		for _, e := range r.Presence.Events {
			if e.Sender == alice.UserID {
				_ = e.Content.ParseRaw(e.Type)
				return e.Content.AsPresence().Presence == event.PresenceUnavailable
			}
		}
		return false
	})
	p, err := bob.GetPresence(t.Context(), alice.UserID)
	if err != nil || p.Presence != event.PresenceUnavailable || p.StatusMsg != "lunch" {
		t.Fatalf("bob reads alice's presence %+v %v", p, err)
	}
	_, err = carol.GetPresence(t.Context(), alice.UserID)
	wantMatrixError(t, err, mautrix.MForbidden, 403)
}
