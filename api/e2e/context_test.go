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

func memberKeys(evs []*event.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == event.StateMember {
			m, _ := ev.Content.Raw["membership"].(string)
			out = append(out, ev.GetStateKey()+"="+m)
		}
	}
	slices.Sort(out)
	return out
}

func ids(evs []*event.Event) []id.EventID {
	out := []id.EventID{}
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

// pause separates events' timestamps (milliseconds) for timestamp lookups.
func pause() { time.Sleep(5 * time.Millisecond) }

func TestEventContextAndMembers(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")
	dave := newUser(t, srv, "dave")
	ctx := t.Context()

	room := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := alice.SendStateEvent(ctx, room, event.StateHistoryVisibility, "", &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityJoined}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	pause()
	var early []id.EventID
	for i := 1; i <= 5; i++ {
		early = append(early, sendText(t, alice, room, fmt.Sprint("early", i), fmt.Sprint("early ", i)))
	}
	beforeDave, err := syncOnce(ctx, alice, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	pause()
	if _, err := dave.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	pause()
	var late []id.EventID
	for i := 1; i <= 3; i++ {
		late = append(late, sendText(t, alice, room, fmt.Sprint("late", i), fmt.Sprint("late ", i)))
	}

	t.Run("event", func(t *testing.T) {
		ev, err := alice.GetEvent(ctx, room, early[1])
		if err != nil || ev.ID != early[1] || bodyOf(ev) != "early 2" || ev.RoomID != room {
			t.Fatalf("alice gets %s: %+v %v", early[1], ev, err)
		}
		_, err = alice.GetEvent(ctx, room, "$unknown")
		wantMatrixError(t, err, mautrix.MNotFound, 404)
		// An event of this room asked for under another room is unknown there.
		other := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		_, err = alice.GetEvent(ctx, other, early[1])
		wantMatrixError(t, err, mautrix.MNotFound, 404)
	})

	t.Run("late joiner under joined visibility sees nothing from before", func(t *testing.T) {
		for _, evID := range early {
			_, err := dave.GetEvent(ctx, room, evID)
			wantMatrixError(t, err, mautrix.MNotFound, 404)
			_, err = dave.Context(ctx, room, evID, nil, 10)
			wantMatrixError(t, err, mautrix.MNotFound, 404)
		}
		resp, err := dave.Context(ctx, room, late[0], nil, 20)
		if err != nil {
			t.Fatalf("dave's context of a later event: %v", err)
		}
		if leaked := messageBodies(resp.EventsBefore); len(leaked) > 0 {
			t.Fatalf("/context events_before shows dave messages from before he joined: %q", leaked)
		}
		if len(resp.EventsBefore) == 0 || resp.EventsBefore[0].Type.Type != event.StateMember.Type || resp.EventsBefore[0].GetStateKey() != dave.UserID.String() {
			t.Fatalf("events_before should start with dave's join, got %v", ids(resp.EventsBefore))
		}
		if got := messageBodies(resp.EventsAfter); !slices.Equal(got, []string{"late 2", "late 3"}) {
			t.Fatalf("events_after %q", got)
		}
	})

	t.Run("non-members", func(t *testing.T) {
		_, err := carol.GetEvent(ctx, room, late[0])
		wantMatrixError(t, err, mautrix.MNotFound, 404)
		_, err = carol.Context(ctx, room, late[0], nil, 10)
		wantMatrixError(t, err, mautrix.MNotFound, 404)
		_, err = carol.Members(ctx, room)
		wantMatrixError(t, err, mautrix.MForbidden, 403)
		_, err = carol.JoinedMembers(ctx, room)
		wantMatrixError(t, err, mautrix.MForbidden, 403)
		_, err = carol.TimestampToEvent(ctx, room, time.Now(), mautrix.DirectionBackward)
		wantMatrixError(t, err, mautrix.MNotFound, 404)
	})

	t.Run("context splits the limit and gives tokens that continue", func(t *testing.T) {
		resp, err := alice.Context(ctx, room, early[2], nil, 4)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Event.ID != early[2] {
			t.Fatalf("event %s", resp.Event.ID)
		}
		if got, want := ids(resp.EventsBefore), []id.EventID{early[1], early[0]}; !slices.Equal(got, want) {
			t.Fatalf("events_before %v, want %v (reverse-chronological)", got, want)
		}
		if got, want := ids(resp.EventsAfter), []id.EventID{early[3], early[4]}; !slices.Equal(got, want) {
			t.Fatalf("events_after %v, want %v", got, want)
		}
		if got := memberKeys(resp.State); !slices.Equal(got, []string{alice.UserID.String() + "=join", bob.UserID.String() + "=join"}) {
			t.Fatalf("state members at the last event: %v", got)
		}
		back, err := alice.Messages(ctx, room, resp.Start, "", mautrix.DirectionBackward, nil, 1)
		if err != nil || len(back.Chunk) != 1 || back.Chunk[0].Type.Type != event.StateMember.Type || back.Chunk[0].GetStateKey() != bob.UserID.String() {
			t.Fatalf("/messages back from start %s: %v %v", resp.Start, back, err)
		}
		fwd, err := alice.Messages(ctx, room, resp.End, "", mautrix.DirectionForward, nil, 1)
		if err != nil || len(fwd.Chunk) != 1 || fwd.Chunk[0].GetStateKey() != dave.UserID.String() {
			t.Fatalf("/messages forward from end %s: %v %v", resp.End, fwd, err)
		}
		// limit=0 still returns the event (mautrix omits a zero limit, so
		// ask directly).
		var zero mautrix.RespContext
		url := alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", room, "context", early[2]}, map[string]string{"limit": "0"})
		if _, err := alice.MakeRequest(ctx, "GET", url, nil, &zero); err != nil {
			t.Fatal(err)
		}
		if zero.Event == nil || zero.Event.ID != early[2] || len(zero.EventsBefore)+len(zero.EventsAfter) != 0 {
			t.Fatalf("limit=0: %+v", zero)
		}
	})

	t.Run("context filter", func(t *testing.T) {
		only := &mautrix.FilterPart{Types: []event.Type{event.EventMessage}}
		resp, err := alice.Context(ctx, room, late[0], only, 6)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := messageBodies(resp.EventsBefore), []string{"early 5", "early 4", "early 3"}; !slices.Equal(got, want) || len(resp.EventsBefore) != 3 {
			t.Fatalf("filtered events_before %q (%d events), want %q", got, len(resp.EventsBefore), want)
		}
		if len(resp.State) != 0 {
			t.Fatalf("the types filter applies to state too; got %v", stateKeys(resp.State))
		}
		lazy := &mautrix.FilterPart{LazyLoadMembers: true}
		resp, err = alice.Context(ctx, room, late[1], lazy, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got := memberKeys(resp.State); !slices.Equal(got, []string{alice.UserID.String() + "=join"}) {
			t.Fatalf("lazy-loaded members %v, want only the senders (alice)", got)
		}
	})

	t.Run("members", func(t *testing.T) {
		resp, err := alice.Members(ctx, room)
		if err != nil {
			t.Fatal(err)
		}
		all := []string{alice.UserID.String() + "=join", bob.UserID.String() + "=join", dave.UserID.String() + "=join"}
		if got := memberKeys(resp.Chunk); !slices.Equal(got, all) {
			t.Fatalf("members %v, want %v", got, all)
		}
		at, err := alice.Members(ctx, room, mautrix.ReqMembers{At: beforeDave.NextBatch})
		if err != nil {
			t.Fatal(err)
		}
		if got := memberKeys(at.Chunk); !slices.Equal(got, all[:2]) {
			t.Fatalf("members at %s: %v, want %v", beforeDave.NextBatch, got, all[:2])
		}
		_, err = alice.Members(ctx, room, mautrix.ReqMembers{At: "garbage"})
		wantMatrixError(t, err, mautrix.MInvalidParam, 400)
	})

	t.Run("joined members, leaving and forgetting", func(t *testing.T) {
		if _, err := alice.SendStateEvent(ctx, room, event.StateMember, alice.UserID.String(), &event.MemberEventContent{
			Membership: event.MembershipJoin, Displayname: "Alice A.", AvatarURL: "mxc://localhost/alice",
		}); err != nil {
			t.Fatal(err)
		}
		joined, err := bob.JoinedMembers(ctx, room)
		if err != nil {
			t.Fatal(err)
		}
		if len(joined.Joined) != 3 || joined.Joined[alice.UserID].DisplayName != "Alice A." || joined.Joined[alice.UserID].AvatarURL != "mxc://localhost/alice" {
			t.Fatalf("joined_members: %+v", joined.Joined)
		}

		_, err = bob.ForgetRoom(ctx, room)
		wantMatrixError(t, err, mautrix.RespError{ErrCode: "M_UNKNOWN", Err: fmt.Sprintf("User %s is in room %s", bob.UserID, room)}, 400)
		sendText(t, alice, room, "before-bob-leaves", "before bob leaves")
		if _, err := bob.LeaveRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
		if _, err := carol.JoinRoomByID(ctx, room); err != nil {
			t.Fatal(err)
		}
		_, err = bob.JoinedMembers(ctx, room)
		wantMatrixError(t, err, mautrix.MForbidden, 403)
		// A former member reads the members as of when they left.
		left, err := bob.Members(ctx, room)
		if err != nil {
			t.Fatal(err)
		}
		if got := memberKeys(left.Chunk); slices.Contains(got, carol.UserID.String()+"=join") || !slices.Contains(got, bob.UserID.String()+"=leave") {
			t.Fatalf("bob's members after leaving: %v", got)
		}
		onlyLeave, err := alice.Members(ctx, room, mautrix.ReqMembers{Membership: event.MembershipLeave})
		if err != nil || !slices.Equal(memberKeys(onlyLeave.Chunk), []string{bob.UserID.String() + "=leave"}) {
			t.Fatalf("membership=leave: %v %v", memberKeys(onlyLeave.Chunk), err)
		}
		notJoin, err := alice.Members(ctx, room, mautrix.ReqMembers{NotMembership: event.MembershipJoin})
		if err != nil || !slices.Equal(memberKeys(notJoin.Chunk), []string{bob.UserID.String() + "=leave"}) {
			t.Fatalf("not_membership=join: %v %v", memberKeys(notJoin.Chunk), err)
		}

		withLeave := `{"room":{"include_leave":true}}`
		s, err := syncOnce(ctx, bob, "", 0, withLeave)
		if err != nil || s.Rooms.Leave[room] == nil {
			t.Fatalf("before forgetting, include_leave shows the room: %v", err)
		}
		if _, err := bob.GetEvent(ctx, room, early[0]); err != nil {
			t.Fatalf("before forgetting, bob reads history: %v", err)
		}
		if _, err := bob.ForgetRoom(ctx, room); err != nil {
			t.Fatalf("forget: %v", err)
		}
		if _, err := bob.ForgetRoom(ctx, room); err != nil {
			t.Fatalf("forget again: %v", err)
		}
		s, err = syncOnce(ctx, bob, "", 0, withLeave)
		if err != nil || s.Rooms.Leave[room] != nil {
			t.Fatalf("a forgotten room is still in rooms.leave (err %v)", err)
		}
		_, err = bob.GetEvent(ctx, room, early[0])
		wantMatrixError(t, err, mautrix.MNotFound, 404)
		_, err = bob.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 10)
		wantMatrixError(t, err, mautrix.MForbidden, 403)
		_, err = bob.Members(ctx, room)
		wantMatrixError(t, err, mautrix.MForbidden, 403)
		assertJoinedRooms(t, bob)

		// Joining again makes the room remembered.
		if _, err := bob.JoinRoomByID(ctx, room); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.GetEvent(ctx, room, early[0]); err != nil {
			t.Fatalf("after rejoining, bob reads what he saw as a member: %v", err)
		}
	})

	t.Run("bad input gets the spec's errors", func(t *testing.T) {
		for _, tc := range []struct {
			method, url string
			body        string
			want        string
			status      int
		}{
			{"PUT", alice.BuildClientURL("v3", "rooms", room, "redact", late[0], "bad1"), `not json`, "M_NOT_JSON", 400},
			{"PUT", alice.BuildClientURL("v3", "rooms", room, "redact", late[0], "bad2"), `[1]`, "M_BAD_JSON", 400},
			{"PUT", alice.BuildClientURL("v3", "rooms", room, "redact", late[0], "bad3"), `{"reason":5}`, "M_BAD_JSON", 400},
			{"PUT", alice.BuildClientURL("v3", "rooms", room, "redact", late[0], "bad4"), `{"redacts":"$other"}`, "M_INVALID_PARAM", 400},
			{"PUT", alice.BuildClientURL("v3", "rooms", room, "redact", "notanevent", "bad5"), `{}`, "M_INVALID_PARAM", 400},
			{"GET", alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", room, "context", late[0]}, map[string]string{"filter": "{nope"}), "", "M_NOT_JSON", 400},
			{"GET", alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", room, "context", late[0]}, map[string]string{"limit": "-1"}), "", "M_INVALID_PARAM", 400},
			{"GET", alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", room, "members"}, map[string]string{"membership": "joined"}), "", "M_INVALID_PARAM", 400},
			{"GET", alice.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", room, "timestamp_to_event"}, map[string]string{"dir": "f"}), "", "M_MISSING_PARAM", 400},
			{"GET", alice.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", room, "timestamp_to_event"}, map[string]string{"ts": "x", "dir": "f"}), "", "M_INVALID_PARAM", 400},
			{"GET", alice.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", room, "timestamp_to_event"}, map[string]string{"ts": "1", "dir": "up"}), "", "M_INVALID_PARAM", 400},
			{"POST", alice.BuildClientURL("v3", "rooms", room, "forget"), `[]`, "M_BAD_JSON", 400},
		} {
			req := mautrix.FullRequest{Method: tc.method, URL: tc.url, MaxAttempts: 1}
			if tc.body != "" {
				req.RequestBytes = []byte(tc.body)
			}
			_, err := alice.MakeFullRequest(ctx, req)
			wantMatrixError(t, err, mautrix.RespError{ErrCode: tc.want}, tc.status)
		}
	})

	t.Run("timestamp_to_event", func(t *testing.T) {
		third, err := alice.GetEvent(ctx, room, early[2])
		if err != nil {
			t.Fatal(err)
		}
		at := time.UnixMilli(third.Timestamp)
		fwd, err := alice.TimestampToEvent(ctx, room, at, mautrix.DirectionForward)
		if err != nil || fwd.Timestamp.UnixMilli() < third.Timestamp {
			t.Fatalf("forward from %d: %+v %v", third.Timestamp, fwd, err)
		}
		back, err := alice.TimestampToEvent(ctx, room, at, mautrix.DirectionBackward)
		if err != nil || back.Timestamp.UnixMilli() > third.Timestamp {
			t.Fatalf("backward from %d: %+v %v", third.Timestamp, back, err)
		}
		_, err = alice.TimestampToEvent(ctx, room, time.Now().Add(time.Hour), mautrix.DirectionForward)
		wantMatrixError(t, err, mautrix.MNotFound, 404)
		_, err = alice.TimestampToEvent(ctx, room, time.UnixMilli(0), mautrix.DirectionBackward)
		wantMatrixError(t, err, mautrix.MNotFound, 404)
		first, err := alice.TimestampToEvent(ctx, room, time.UnixMilli(0), mautrix.DirectionForward)
		if err != nil {
			t.Fatal(err)
		}
		if create, err := alice.GetEvent(ctx, room, first.EventID); err != nil || create.Type.Type != event.StateCreate.Type {
			t.Fatalf("the first event of the room is %+v (%v), want m.room.create", create, err)
		}
		// dave, joined later, finds nothing he may not see: backwards from
		// the early messages (sent under "joined") the nearest event he may
		// see is the change to "joined" itself, made while the room was
		// "shared".
		hv, err := dave.TimestampToEvent(ctx, room, at, mautrix.DirectionBackward)
		if err != nil {
			t.Fatal(err)
		}
		if ev, err := dave.GetEvent(ctx, room, hv.EventID); err != nil || ev.Type.Type != event.StateHistoryVisibility.Type {
			t.Fatalf("dave's nearest visible event backward is %+v (%v), want the history_visibility change", ev, err)
		}
		got, err := dave.TimestampToEvent(ctx, room, at, mautrix.DirectionForward)
		if err != nil {
			t.Fatal(err)
		}
		if ev, err := dave.GetEvent(ctx, room, got.EventID); err != nil || ev.Type.Type != event.StateMember.Type || ev.GetStateKey() != dave.UserID.String() {
			t.Fatalf("dave's first visible event forward is %+v (%v), want his join", ev, err)
		}
	})
}
