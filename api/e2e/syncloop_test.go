package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"chronicle/api/apitest"
)

// TestMautrixSyncLoopReceivesMessages runs mautrix-go's own sync loop (it
// uploads a filter, then long-polls with the filter ID) and checks that a
// bot built on it sees messages sent by another user.
func TestMautrixSyncLoopReceivesMessages(t *testing.T) {
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bot := newUser(t, srv, "bot")
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bot.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}

	got := make(chan string, 10)
	syncer := bot.Syncer.(*mautrix.DefaultSyncer)
	syncer.OnEventType(event.EventMessage, func(ctx context.Context, evt *event.Event) {
		got <- evt.Content.AsMessage().Body
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- bot.SyncWithContext(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	want := []string{"one", "two", "three"}
	for _, body := range want {
		if _, err := alice.SendText(t.Context(), room.RoomID, body); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(10 * time.Second)
	for i := 0; i < len(want); i++ {
		select {
		case body := <-got:
			if body != want[i] {
				t.Fatalf("message %d = %q, want %q", i, body, want[i])
			}
		case <-deadline:
			t.Fatalf("bot saw %d of %d messages", i, len(want))
		}
	}

	// The uploaded filter can be read back by its owner only.
	filterID, err := bot.Store.LoadFilterID(t.Context(), bot.UserID)
	if err != nil || filterID == "" {
		t.Fatalf("mautrix stored no filter ID (%q, %v)", filterID, err)
	}
	var stored map[string]any
	if _, err := bot.MakeRequest(t.Context(), "GET", bot.BuildClientURL("v3", "user", bot.UserID, "filter", filterID), nil, &stored); err != nil {
		t.Fatalf("get own filter: %v", err)
	}
	if _, ok := stored["room"]; !ok {
		t.Fatalf("stored filter lost its room section: %v", stored)
	}
	_, err = alice.MakeRequest(t.Context(), "GET", alice.BuildClientURL("v3", "user", bot.UserID, "filter", filterID), nil, nil)
	if !errorsIsForbidden(err) {
		t.Fatalf("reading another user's filter: err = %v, want M_FORBIDDEN", err)
	}
}

func errorsIsForbidden(err error) bool { return errors.Is(err, mautrix.MForbidden) }
