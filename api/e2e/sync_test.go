package e2e

import (
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"chronicle/api/apitest"
)

func TestSyncLongPollTimesOutEmpty(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	roomID := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Quiet room"})
	sendText(t, alice, roomID, "only", "The only message")

	initial, err := syncOnce(t.Context(), alice, "", 0, "")
	if err != nil {
		t.Fatalf("initial sync: %v", err)
	}
	if initial.Rooms.Join[roomID] == nil {
		t.Fatalf("initial sync lacks joined room %s", roomID)
	}

	for _, tc := range []struct {
		name    string
		since   string
		timeout time.Duration
	}{
		{"nothing new", initial.NextBatch, 300 * time.Millisecond},
		{"nothing new, no wait", initial.NextBatch, 0},
		{"since token ahead of the server", "s999999", 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			resp, err := syncOnce(t.Context(), alice, tc.since, tc.timeout, "")
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("sync since %s: %v", tc.since, err)
			}
			if elapsed < tc.timeout {
				t.Errorf("sync returned after %v, before its %v timeout", elapsed, tc.timeout)
			}
			if elapsed > tc.timeout+3*time.Second {
				t.Errorf("sync took %v for a %v timeout", elapsed, tc.timeout)
			}
			if !resp.Rooms.IsZero() {
				t.Errorf("empty sync has rooms: %+v", resp.Rooms)
			}
			if resp.NextBatch == "" || tokenSeq(t, resp.NextBatch) < tokenSeq(t, tc.since) {
				t.Errorf("next_batch %q went back from since %q", resp.NextBatch, tc.since)
			}
		})
	}
}
