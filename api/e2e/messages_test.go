package e2e

import (
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// paginate follows /messages in one direction from `from` until the server
// stops giving an end token, failing on a duplicate event or a page larger
// than limit.
func paginate(t *testing.T, cli *mautrix.Client, roomID id.RoomID, from string, dir mautrix.Direction, limit int) []*event.Event {
	t.Helper()
	var all []*event.Event
	seen := map[id.EventID]bool{}
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatalf("pagination %c did not end after %d pages", dir, page)
		}
		resp, err := cli.Messages(t.Context(), roomID, from, "", dir, nil, limit)
		if err != nil {
			t.Fatalf("messages dir=%c from=%q: %v", dir, from, err)
		}
		if len(resp.Chunk) > limit {
			t.Fatalf("page of %d events exceeds limit %d", len(resp.Chunk), limit)
		}
		for _, ev := range resp.Chunk {
			if seen[ev.ID] {
				t.Fatalf("event %s (%q) returned twice", ev.ID, bodyOf(ev))
			}
			seen[ev.ID] = true
			all = append(all, ev)
		}
		if resp.End == "" {
			return all
		}
		from = resp.End
	}
}

func TestMessagesPagination(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	roomID := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat"})

	var bodies []string
	var eventIDs []id.EventID
	for i := 1; i <= 25; i++ {
		body := fmt.Sprintf("message %02d", i)
		bodies = append(bodies, body)
		eventIDs = append(eventIDs, sendText(t, alice, roomID, fmt.Sprintf("page-%d", i), body))
	}
	reversed := slices.Clone(bodies)
	slices.Reverse(reversed)

	var backward []*event.Event
	t.Run("backwards in pages of 10", func(t *testing.T) {
		backward = paginate(t, alice, roomID, "", mautrix.DirectionBackward, 10)
		if got := messageBodies(backward); !slices.Equal(got, reversed) {
			t.Fatalf("backward pagination gave %q, want %q", got, reversed)
		}
		if oldest := backward[len(backward)-1]; oldest.Type != event.StateCreate {
			t.Fatalf("backward pagination ended at %s, not at the room's m.room.create", oldest.Type.Type)
		}
	})

	t.Run("forwards from the start of the room", func(t *testing.T) {
		forward := paginate(t, alice, roomID, "", mautrix.DirectionForward, 10)
		if got := messageBodies(forward); !slices.Equal(got, bodies) {
			t.Fatalf("forward pagination gave %q, want %q", got, bodies)
		}
		if backward != nil {
			ids := func(evs []*event.Event) (out []id.EventID) {
				for _, ev := range evs {
					out = append(out, ev.ID)
				}
				return out
			}
			want := ids(backward)
			slices.Reverse(want)
			if got := ids(forward); !slices.Equal(got, want) {
				t.Fatalf("forward pagination is not backward pagination reversed:\n got %v\nwant %v", got, want)
			}
		}
	})

	t.Run("a limited sync timeline continues through prev_batch", func(t *testing.T) {
		resp, err := syncOnce(t.Context(), alice, "", 0, timelineFilter(5))
		if err != nil {
			t.Fatalf("sync: %v", err)
		}
		jr := resp.Rooms.Join[roomID]
		if jr == nil {
			t.Fatalf("sync has no joined room %s", roomID)
		}
		if got := messageBodies(jr.Timeline.Events); !slices.Equal(got, bodies[20:]) || len(jr.Timeline.Events) != 5 {
			t.Fatalf("timeline with limit 5 = %q (%d events), want %q", got, len(jr.Timeline.Events), bodies[20:])
		}
		if !jr.Timeline.Limited || jr.Timeline.PrevBatch == "" {
			t.Fatalf("timeline limited=%v prev_batch=%q, want limited with a prev_batch", jr.Timeline.Limited, jr.Timeline.PrevBatch)
		}
		before, err := alice.Messages(t.Context(), roomID, jr.Timeline.PrevBatch, "", mautrix.DirectionBackward, nil, 10)
		if err != nil {
			t.Fatalf("messages from prev_batch: %v", err)
		}
		if len(before.Chunk) == 0 || before.Chunk[0].ID != eventIDs[19] {
			t.Fatalf("messages from prev_batch starts at %v, want the event just before the timeline (%s, %q)", messageBodies(before.Chunk), eventIDs[19], bodies[19])
		}
		want := slices.Clone(reversed[5:15])
		if got := messageBodies(before.Chunk); !slices.Equal(got, want) {
			t.Fatalf("messages from prev_batch = %q, want %q", got, want)
		}
	})

	t.Run("an incremental gap is filled between prev_batch and since", func(t *testing.T) {
		since, err := syncOnce(t.Context(), alice, "", 0, timelineFilter(1))
		if err != nil {
			t.Fatalf("sync: %v", err)
		}
		var later []string
		for i := 1; i <= 7; i++ {
			body := fmt.Sprintf("later %d", i)
			later = append(later, body)
			sendText(t, alice, roomID, fmt.Sprintf("later-%d", i), body)
		}
		resp, err := syncOnce(t.Context(), alice, since.NextBatch, 0, timelineFilter(5))
		if err != nil {
			t.Fatalf("incremental sync: %v", err)
		}
		jr := resp.Rooms.Join[roomID]
		if jr == nil || !jr.Timeline.Limited || !slices.Equal(messageBodies(jr.Timeline.Events), later[2:]) {
			t.Fatalf("incremental sync timeline = %+v, want limited with %q", jr, later[2:])
		}
		gap, err := alice.Messages(t.Context(), roomID, jr.Timeline.PrevBatch, since.NextBatch, mautrix.DirectionBackward, nil, 10)
		if err != nil {
			t.Fatalf("messages prev_batch..since: %v", err)
		}
		if got := messageBodies(gap.Chunk); !slices.Equal(got, []string{"later 2", "later 1"}) || len(gap.Chunk) != 2 {
			t.Fatalf("gap between since and prev_batch = %q, want [later 2, later 1]", got)
		}
	})
}
