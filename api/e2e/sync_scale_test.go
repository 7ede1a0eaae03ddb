package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// roomsOf lists the rooms of each section of a sync response, sorted.
func roomsOf(resp *mautrix.RespSync) (join, invite, leave []id.RoomID) {
	for r := range resp.Rooms.Join {
		join = append(join, r)
	}
	for r := range resp.Rooms.Invite {
		invite = append(invite, r)
	}
	for r := range resp.Rooms.Leave {
		leave = append(leave, r)
	}
	slices.Sort(join)
	slices.Sort(invite)
	slices.Sort(leave)
	return join, invite, leave
}

// TestIncrementalSyncReturnsOnlyTheChangedRoom: a user in many rooms gets,
// after each kind of change to one of them, exactly that room (and
// nothing for a change in a room they are not in).
func TestIncrementalSyncReturnsOnlyTheChangedRoom(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")
	const n = 40
	roomIDs := make([]id.RoomID, n)
	for i := range roomIDs {
		roomIDs[i] = newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: fmt.Sprint("room ", i)})
		sendText(t, alice, roomIDs[i], fmt.Sprint("hello", i), fmt.Sprint("hello ", i))
	}
	for _, i := range []int{5, 9} {
		if _, err := bob.JoinRoomByID(t.Context(), roomIDs[i]); err != nil {
			t.Fatalf("bob joins room %d: %v", i, err)
		}
	}
	elsewhere := newRoom(t, carol, &mautrix.ReqCreateRoom{Preset: "private_chat"})

	initial, err := syncOnce(t.Context(), alice, "", 0, "")
	if err != nil {
		t.Fatalf("initial sync: %v", err)
	}
	if len(initial.Rooms.Join) != n {
		t.Fatalf("initial sync has %d joined rooms, want %d", len(initial.Rooms.Join), n)
	}
	since := initial.NextBatch
	// The initial sync set alice online; take that presence change out
	// of the way.
	if resp, err := syncOnce(t.Context(), alice, since, 0, ""); err != nil {
		t.Fatal(err)
	} else {
		since = resp.NextBatch
	}

	var invited id.RoomID
	for _, step := range []struct {
		name   string
		change func()
		join   []id.RoomID
		invite func() []id.RoomID
		leave  []id.RoomID
		check  func(t *testing.T, resp *mautrix.RespSync)
	}{
		{name: "message", change: func() { sendText(t, alice, roomIDs[17], "m17", "news in 17") }, join: roomIDs[17:18],
			check: func(t *testing.T, resp *mautrix.RespSync) {
				if got := messageBodies(resp.Rooms.Join[roomIDs[17]].Timeline.Events); !slices.Equal(got, []string{"news in 17"}) {
					t.Errorf("timeline = %q", got)
				}
			}},
		{name: "typing", change: func() {
			if _, err := bob.UserTyping(t.Context(), roomIDs[5], true, 30*time.Second); err != nil {
				t.Fatal(err)
			}
		}, join: roomIDs[5:6], check: func(t *testing.T, resp *mautrix.RespSync) {
			jr := resp.Rooms.Join[roomIDs[5]]
			if len(jr.Timeline.Events) != 0 || len(jr.Ephemeral.Events) != 1 || jr.Ephemeral.Events[0].Type != event.EphemeralEventTyping {
				t.Errorf("typing room: timeline %d events, ephemeral %+v", len(jr.Timeline.Events), jr.Ephemeral.Events)
			}
		}},
		{name: "receipt", change: func() {
			ev := initial.Rooms.Join[roomIDs[9]].Timeline.Events
			if err := bob.SendReceipt(t.Context(), roomIDs[9], ev[len(ev)-1].ID, event.ReceiptTypeRead, nil); err != nil {
				t.Fatal(err)
			}
		}, join: roomIDs[9:10]},
		{name: "room account data", change: func() {
			if err := alice.AddTag(t.Context(), roomIDs[23], event.RoomTagFavourite, 0.5); err != nil {
				t.Fatal(err)
			}
		}, join: roomIDs[23:24], check: func(t *testing.T, resp *mautrix.RespSync) {
			if got := resp.Rooms.Join[roomIDs[23]].AccountData.Events; len(got) != 1 || got[0].Type != event.AccountDataRoomTags {
				t.Errorf("account data = %+v", got)
			}
		}},
		{name: "a room alice is not in", change: func() { sendText(t, carol, elsewhere, "c1", "not for alice") }},
		{name: "invite", change: func() {
			invited = newRoom(t, carol, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{alice.UserID}})
		}, invite: func() []id.RoomID { return []id.RoomID{invited} }},
		{name: "leave", change: func() {
			if _, err := alice.LeaveRoom(t.Context(), roomIDs[31]); err != nil {
				t.Fatal(err)
			}
		}, leave: roomIDs[31:32]},
		{name: "activity in the room alice left", change: func() {
			if _, err := carol.JoinRoomByID(t.Context(), roomIDs[31]); err != nil {
				t.Fatal(err)
			}
			sendText(t, carol, roomIDs[31], "c31", "alice is gone")
		}},
		{name: "message after all that", change: func() { sendText(t, alice, roomIDs[0], "m0", "news in 0") }, join: roomIDs[0:1]},
	} {
		step.change()
		resp, err := syncOnce(t.Context(), alice, since, 0, "")
		if err != nil {
			t.Fatalf("%s: sync: %v", step.name, err)
		}
		join, invite, leave := roomsOf(resp)
		var wantInvite []id.RoomID
		if step.invite != nil {
			wantInvite = step.invite()
		}
		if !slices.Equal(join, step.join) || !slices.Equal(invite, wantInvite) || !slices.Equal(leave, step.leave) {
			t.Errorf("%s: join %v invite %v leave %v; want join %v invite %v leave %v", step.name, join, invite, leave, step.join, wantInvite, step.leave)
		}
		if step.check != nil {
			step.check(t, resp)
		}
		since = resp.NextBatch
	}

	// A token far behind (every room changed since) still gets every
	// room that changed: here, all of them.
	resp, err := syncOnce(t.Context(), alice, "s1", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if join, _, _ := roomsOf(resp); len(join) != n-1 {
		t.Errorf("sync since s1 has %d joined rooms, want %d", len(join), n-1)
	}
}

// TestLongPollIgnoresRoomsTheUserIsNotIn: a parked long-poll does not
// return for activity in rooms the user is not in (or has left), and does
// return at once for its own room and for an invite.
func TestLongPollIgnoresRoomsTheUserIsNotIn(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")
	shared := joinedPair(t, alice, bob, "private_chat")
	left := joinedPair(t, carol, bob, "public_chat")
	if _, err := bob.LeaveRoom(t.Context(), left); err != nil {
		t.Fatal(err)
	}
	other := newRoom(t, carol, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	first := sendText(t, carol, other, "o0", "first")

	since := syncUntil(t, bob, "", func(*mautrix.RespSync) bool { return true }).NextBatch
	// Settle bob's own presence.
	for {
		resp, err := syncOnce(t.Context(), bob, since, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		if tokenSeq(t, resp.NextBatch) == tokenSeq(t, since) || resp.Rooms.IsZero() && len(resp.Presence.Events) == 0 {
			since = resp.NextBatch
			break
		}
		since = resp.NextBatch
	}

	type reply struct {
		resp *mautrix.RespSync
		err  error
		took time.Duration
	}
	poll := func(timeout time.Duration) <-chan reply {
		ch := make(chan reply, 1)
		go func() {
			start := time.Now()
			resp, err := syncOnce(t.Context(), bob, since, timeout, "")
			ch <- reply{resp, err, time.Since(start)}
		}()
		time.Sleep(100 * time.Millisecond) // parked
		return ch
	}

	// Activity elsewhere: messages, typing, receipts, state, in a room
	// bob was never in and in one he left.
	const quiet = 1500 * time.Millisecond
	ch := poll(quiet)
	for i := range 5 {
		sendText(t, carol, other, fmt.Sprint("o", i+1), "not for bob")
		sendText(t, carol, left, fmt.Sprint("l", i), "bob left")
	}
	if _, err := carol.UserTyping(t.Context(), other, true, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := carol.SendReceipt(t.Context(), other, first, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.SendStateEvent(t.Context(), other, event.StateTopic, "", map[string]any{"topic": "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.took < quiet || !r.resp.Rooms.IsZero() {
		t.Fatalf("long-poll returned after %v (timeout %v) with rooms %+v", r.took, quiet, r.resp.Rooms)
	}
	if tokenSeq(t, r.resp.NextBatch) < tokenSeq(t, since) {
		t.Fatalf("next_batch %s went back from %s", r.resp.NextBatch, since)
	}
	since = r.resp.NextBatch

	// Its own room wakes it at once.
	ch = poll(30 * time.Second)
	sendText(t, carol, other, "o9", "still not for bob")
	msg := sendText(t, alice, shared, "s1", "for bob")
	r = <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	join, invite, leave := roomsOf(r.resp)
	if !slices.Equal(join, []id.RoomID{shared}) || len(invite) != 0 || len(leave) != 0 || r.took > 10*time.Second {
		t.Fatalf("after a message in the shared room: join %v invite %v leave %v after %v", join, invite, leave, r.took)
	}
	if evs := r.resp.Rooms.Join[shared].Timeline.Events; len(evs) == 0 || evs[len(evs)-1].ID != msg {
		t.Fatalf("shared room timeline lacks %s: %+v", msg, evs)
	}
	since = r.resp.NextBatch

	// An invite to a room whose earlier activity it slept through wakes it.
	ch = poll(30 * time.Second)
	sendText(t, carol, other, "o10", "before the invite")
	if _, err := carol.InviteUser(t.Context(), other, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	r = <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	if join, invite, _ := roomsOf(r.resp); len(join) != 0 || !slices.Equal(invite, []id.RoomID{other}) || r.took > 10*time.Second {
		t.Fatalf("after the invite: join %v invite %v after %v", join, invite, r.took)
	}
}
