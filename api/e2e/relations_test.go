package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// Helpers in this file are prefixed "rel" so they do not clash with other
// files of package e2e.

// relSend sends a message-like event with raw content and returns its ID.
func relSend(t *testing.T, cli *mautrix.Client, roomID id.RoomID, evType event.Type, content map[string]any) id.EventID {
	t.Helper()
	resp, err := cli.SendMessageEvent(t.Context(), roomID, evType, content)
	if err != nil {
		t.Fatalf("%s sends %s %v: %v", cli.UserID, evType.Type, content, err)
	}
	return resp.EventID
}

func relatesTo(relType event.RelationType, parent id.EventID) map[string]any {
	return map[string]any{"rel_type": string(relType), "event_id": string(parent)}
}

// relReply sends an m.text thread reply to root.
func relReply(t *testing.T, cli *mautrix.Client, roomID id.RoomID, root id.EventID, body string) id.EventID {
	t.Helper()
	return relSend(t, cli, roomID, event.EventMessage, map[string]any{
		"msgtype": "m.text", "body": body, "m.relates_to": relatesTo(event.RelThread, root),
	})
}

// relEdit sends an edit of original.
func relEdit(t *testing.T, cli *mautrix.Client, roomID id.RoomID, original id.EventID, body string) id.EventID {
	t.Helper()
	return relSend(t, cli, roomID, event.EventMessage, map[string]any{
		"msgtype": "m.text", "body": "* " + body,
		"m.new_content": map[string]any{"msgtype": "m.text", "body": body},
		"m.relates_to":  relatesTo(event.RelReplace, original),
	})
}

func relIDs(evs []*event.Event) []id.EventID {
	out := []id.EventID{}
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

// relPages follows /relations from req.From until next_batch runs out,
// failing on duplicates or oversized pages.
func relPages(t *testing.T, cli *mautrix.Client, roomID id.RoomID, parent id.EventID, req mautrix.ReqGetRelations) []id.EventID {
	t.Helper()
	var all []id.EventID
	for page := 0; ; page++ {
		if page > 50 {
			t.Fatal("relations pagination did not end")
		}
		resp, err := cli.GetRelations(t.Context(), roomID, parent, &req)
		if err != nil {
			t.Fatalf("relations %+v: %v", req, err)
		}
		if len(resp.Chunk) > req.Limit {
			t.Fatalf("page of %d events exceeds limit %d", len(resp.Chunk), req.Limit)
		}
		for _, ev := range resp.Chunk {
			if slices.Contains(all, ev.ID) {
				t.Fatalf("event %s returned twice", ev.ID)
			}
			all = append(all, ev.ID)
		}
		if req.From != "" && resp.PrevBatch != req.From {
			t.Errorf("prev_batch %q, want the from token %q", resp.PrevBatch, req.From)
		}
		if resp.NextBatch == "" {
			return all
		}
		req.From = resp.NextBatch
	}
}

type relThreadsResp struct {
	Chunk     []*event.Event `json:"chunk"`
	NextBatch string         `json:"next_batch"`
}

// relThreads calls GET /v1/rooms/{roomId}/threads.
func relThreads(t *testing.T, cli *mautrix.Client, roomID id.RoomID, query map[string]string) (*relThreadsResp, error) {
	var resp relThreadsResp
	u := cli.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", roomID, "threads"}, query)
	_, err := cli.MakeRequest(t.Context(), http.MethodGet, u, nil, &resp)
	return &resp, err
}

// relAllThreads pages through /threads, limit roots at a time.
func relAllThreads(t *testing.T, cli *mautrix.Client, roomID id.RoomID, include string, limit int) []*event.Event {
	t.Helper()
	var all []*event.Event
	from := ""
	for page := 0; ; page++ {
		if page > 50 {
			t.Fatal("threads pagination did not end")
		}
		q := map[string]string{"limit": fmt.Sprint(limit)}
		if include != "" {
			q["include"] = include
		}
		if from != "" {
			q["from"] = from
		}
		resp, err := relThreads(t, cli, roomID, q)
		if err != nil {
			t.Fatalf("threads %v: %v", q, err)
		}
		if len(resp.Chunk) > limit {
			t.Fatalf("threads page of %d exceeds limit %d", len(resp.Chunk), limit)
		}
		all = append(all, resp.Chunk...)
		if resp.NextBatch == "" {
			return all
		}
		from = resp.NextBatch
	}
}

// relFind returns the event with the given ID from a list, or fails.
func relFind(t *testing.T, evs []*event.Event, eventID id.EventID) *event.Event {
	t.Helper()
	for _, ev := range evs {
		if ev.ID == eventID {
			return ev
		}
	}
	t.Fatalf("event %s not among %v", eventID, relIDs(evs))
	return nil
}

// relCheckThread checks an event's bundled m.thread.
func relCheckThread(t *testing.T, ev *event.Event, count int, latest id.EventID, participated bool) {
	t.Helper()
	th := ev.Unsigned.Relations.GetThread()
	if th == nil {
		t.Fatalf("event %s has no bundled m.thread (unsigned %+v)", ev.ID, ev.Unsigned)
	}
	if th.Count != count || th.LatestEvent == nil || th.LatestEvent.ID != latest || th.CurrentUserParticipated != participated {
		got := id.EventID("")
		if th.LatestEvent != nil {
			got = th.LatestEvent.ID
		}
		t.Fatalf("m.thread of %s: count %d latest %s participated %v; want %d %s %v", ev.ID, th.Count, got, th.CurrentUserParticipated, count, latest, participated)
	}
}

func TestRelations(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")
	roomID := joinedPair(t, alice, bob, "private_chat")

	root := sendText(t, alice, roomID, "root", "root")
	var replies []id.EventID
	for i := range 5 {
		who := bob
		if i%2 == 1 {
			who = alice
		}
		replies = append(replies, relReply(t, who, roomID, root, fmt.Sprint("reply ", i)))
	}
	edit := relEdit(t, alice, roomID, root, "root, edited")
	bobsEdit := relEdit(t, bob, roomID, root, "not yours to edit")
	ref := relSend(t, bob, roomID, event.Type{Type: "org.example.ref", Class: event.MessageEventType}, map[string]any{
		"m.relates_to": relatesTo(event.RelReference, root),
	})
	reaction := relSend(t, bob, roomID, event.EventReaction, map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": string(root), "key": "👍"},
	})
	// An edit of a thread reply: related to root only indirectly.
	replyEdit := relEdit(t, alice, roomID, replies[1], "reply 1, edited")
	sendText(t, alice, roomID, "unrelated", "unrelated")

	children := append(slices.Clone(replies), edit, bobsEdit, ref, reaction)
	newestFirst := slices.Clone(children)
	slices.Reverse(newestFirst)

	t.Run("pagination backward and forward", func(t *testing.T) {
		if got := relPages(t, bob, roomID, root, mautrix.ReqGetRelations{Limit: 3}); !slices.Equal(got, newestFirst) {
			t.Fatalf("backward pages %v, want %v", got, newestFirst)
		}
		if got := relPages(t, bob, roomID, root, mautrix.ReqGetRelations{Limit: 4, Dir: mautrix.DirectionForward}); !slices.Equal(got, children) {
			t.Fatalf("forward pages %v, want %v", got, children)
		}
		// A page's next_batch as the to of a fresh request gives that page.
		first, err := bob.GetRelations(t.Context(), roomID, root, &mautrix.ReqGetRelations{Limit: 3})
		if err != nil || first.NextBatch == "" || first.PrevBatch != "" {
			t.Fatalf("first page %+v (%v)", first, err)
		}
		again, err := bob.GetRelations(t.Context(), roomID, root, &mautrix.ReqGetRelations{Limit: 10, To: first.NextBatch})
		if err != nil || !slices.Equal(relIDs(again.Chunk), newestFirst[:3]) {
			t.Fatalf("relations down to %s: %v (%v), want %v", first.NextBatch, relIDs(again.Chunk), err, newestFirst[:3])
		}
		// A /messages token works as from: nothing after it is returned.
		msgs, err := bob.Messages(t.Context(), roomID, "", "", mautrix.DirectionBackward, nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		from, err := bob.GetRelations(t.Context(), roomID, root, &mautrix.ReqGetRelations{Limit: 100, From: msgs.Start})
		if err != nil || !slices.Equal(relIDs(from.Chunk), newestFirst) {
			t.Fatalf("relations from the /messages start token: %v (%v)", relIDs(from.Chunk), err)
		}
	})

	t.Run("rel_type and event type filters", func(t *testing.T) {
		for _, tc := range []struct {
			rel     event.RelationType
			evType  string
			want    []id.EventID
			comment string
		}{
			{event.RelThread, "", replies, "every thread reply"},
			{event.RelThread, "m.room.message", replies, "thread replies of type m.room.message"},
			{event.RelThread, "m.reaction", []id.EventID{}, "no thread reactions"},
			{event.RelReplace, "", []id.EventID{edit, bobsEdit}, "both edits are listed, even the invalid one"},
			{event.RelReference, "org.example.ref", []id.EventID{ref}, "the reference"},
			{event.RelAnnotation, "m.reaction", []id.EventID{reaction}, "the reaction"},
			{"org.example.none", "", []id.EventID{}, "an unknown rel_type"},
		} {
			req := mautrix.ReqGetRelations{RelationType: tc.rel, Limit: 2, Dir: mautrix.DirectionForward}
			if tc.evType != "" {
				req.EventType = event.Type{Type: tc.evType}
			}
			got := relPages(t, bob, roomID, root, req)
			if got == nil {
				got = []id.EventID{}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s (%s/%s): %v, want %v", tc.comment, tc.rel, tc.evType, got, tc.want)
			}
		}
	})

	t.Run("recurse", func(t *testing.T) {
		resp, err := bob.GetRelations(t.Context(), roomID, root, &mautrix.ReqGetRelations{Limit: 100, Recurse: true})
		if err != nil {
			t.Fatal(err)
		}
		want := append([]id.EventID{replyEdit}, newestFirst...)
		if !slices.Equal(relIDs(resp.Chunk), want) || resp.RecursionDepth != 3 {
			t.Fatalf("recursive relations %v depth %d, want %v depth 3", relIDs(resp.Chunk), resp.RecursionDepth, want)
		}
		// A rel_type filter applies at every level: the edit hangs off a
		// thread reply, so it is not reached through m.replace alone.
		resp, err = bob.GetRelations(t.Context(), roomID, root, &mautrix.ReqGetRelations{RelationType: event.RelReplace, Limit: 100, Recurse: true})
		if err != nil || !slices.Equal(relIDs(resp.Chunk), []id.EventID{bobsEdit, edit}) {
			t.Fatalf("recursive m.replace relations %v (%v)", relIDs(resp.Chunk), err)
		}
		// Recursive pages in both directions visit every descendant once.
		all := slices.Clone(want)
		slices.Reverse(all)
		if got := relPages(t, bob, roomID, root, mautrix.ReqGetRelations{Limit: 2, Recurse: true, Dir: mautrix.DirectionForward}); !slices.Equal(got, all) {
			t.Fatalf("recursive forward pages %v, want %v", got, all)
		}
		if got := relPages(t, bob, roomID, root, mautrix.ReqGetRelations{Limit: 2, Recurse: true}); !slices.Equal(got, want) {
			t.Fatalf("recursive backward pages %v, want %v", got, want)
		}
		plain, err := bob.GetRelations(t.Context(), roomID, root, &mautrix.ReqGetRelations{Limit: 100})
		if err != nil || plain.RecursionDepth != 0 || slices.Contains(relIDs(plain.Chunk), replyEdit) {
			t.Fatalf("non-recursive relations %v depth %d (%v)", relIDs(plain.Chunk), plain.RecursionDepth, err)
		}
	})

	t.Run("bundled aggregations in /messages", func(t *testing.T) {
		msgs, err := bob.Messages(t.Context(), roomID, "", "", mautrix.DirectionBackward, nil, 50)
		if err != nil {
			t.Fatal(err)
		}
		rootEv := relFind(t, msgs.Chunk, root)
		relCheckThread(t, rootEv, 5, replies[4], true)
		latest := rootEv.Unsigned.Relations.Thread.LatestEvent
		if latest.RoomID != roomID || latest.Sender != bob.UserID {
			t.Errorf("latest_event is not a full event: %+v", latest)
		}
		le := rootEv.Unsigned.Relations.GetLatestEdit()
		if le == nil || le.ID != edit || le.Sender != alice.UserID || le.Timestamp == 0 || le.Type != event.EventMessage {
			t.Errorf("m.replace of root %+v, want alice's edit %s (bob's %s must not count)", le, edit, bobsEdit)
		}
		if refs := rootEv.Unsigned.Relations.GetReferences().GetEventIDs(); !slices.Equal(refs, []id.EventID{ref}) {
			t.Errorf("m.reference of root %v, want [%s]", refs, ref)
		}
		// The content of the original is left as it was.
		if bodyOf(rootEv) != "root" {
			t.Errorf("root body %q was replaced", bodyOf(rootEv))
		}
		// Reply 1's edit is bundled with it, in /messages and in the
		// thread's latest_event when that is the edited reply.
		r1 := relFind(t, msgs.Chunk, replies[1])
		if le := r1.Unsigned.Relations.GetLatestEdit(); le == nil || le.ID != replyEdit {
			t.Errorf("m.replace of reply 1: %+v", le)
		}
		if plain := relFind(t, msgs.Chunk, replies[0]); plain.Unsigned.Relations != nil {
			t.Errorf("reply 0 has relations %+v", plain.Unsigned.Relations)
		}
		// Through /relations, children carry their own bundles too.
		resp, err := bob.GetRelations(t.Context(), roomID, root, &mautrix.ReqGetRelations{RelationType: event.RelThread, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if le := relFind(t, resp.Chunk, replies[1]).Unsigned.Relations.GetLatestEdit(); le == nil || le.ID != replyEdit {
			t.Errorf("m.replace of reply 1 in /relations: %+v", le)
		}
	})

	t.Run("bundled aggregations in /sync", func(t *testing.T) {
		resp, err := syncOnce(t.Context(), alice, "", 0, timelineFilter(50))
		if err != nil {
			t.Fatal(err)
		}
		jr, ok := resp.Rooms.Join[roomID]
		if !ok {
			t.Fatal("room missing from sync")
		}
		relCheckThread(t, relFind(t, jr.Timeline.Events, root), 5, replies[4], true)
		// An incremental sync with a new reply bundles the new count.
		latest := relReply(t, bob, roomID, root, "reply 5")
		inc := syncUntil(t, alice, resp.NextBatch, func(r *mautrix.RespSync) bool {
			jr, ok := r.Rooms.Join[roomID]
			return ok && slices.Contains(relIDs(jr.Timeline.Events), latest)
		})
		if evs := inc.Rooms.Join[roomID].Timeline.Events; slices.Contains(relIDs(evs), root) {
			t.Errorf("root re-sent in an incremental sync")
		}
		full, err := syncOnce(t.Context(), alice, "", 0, timelineFilter(50))
		if err != nil {
			t.Fatal(err)
		}
		relCheckThread(t, relFind(t, full.Rooms.Join[roomID].Timeline.Events, root), 6, latest, true)
	})

	t.Run("threads", func(t *testing.T) {
		root2 := sendText(t, alice, roomID, "root2", "second root")
		r2 := relReply(t, alice, roomID, root2, "alice alone")
		all := relAllThreads(t, bob, roomID, "", 10)
		if got := relIDs(all); !slices.Equal(got, []id.EventID{root2, root}) {
			t.Fatalf("threads %v, want [root2 root]", got)
		}
		relCheckThread(t, all[0], 1, r2, false)
		relCheckThread(t, all[1], 6, relIDs(mustRelations(t, bob, roomID, root, event.RelThread))[0], true)
		if got := relIDs(relAllThreads(t, bob, roomID, "participated", 10)); !slices.Equal(got, []id.EventID{root}) {
			t.Errorf("bob's threads %v, want [root]", got)
		}
		if got := relIDs(relAllThreads(t, alice, roomID, "participated", 10)); !slices.Equal(got, []id.EventID{root2, root}) {
			t.Errorf("alice's threads %v, want [root2 root]", got)
		}
		// A new reply makes root the most recent thread again; pages of
		// one give the same order.
		latest := relReply(t, bob, roomID, root, "bump")
		if got := relIDs(relAllThreads(t, bob, roomID, "all", 1)); !slices.Equal(got, []id.EventID{root, root2}) {
			t.Fatalf("threads in pages of one %v, want [root root2]", got)
		}
		relCheckThread(t, relAllThreads(t, bob, roomID, "", 1)[0], 7, latest, true)
	})

	t.Run("outsiders and bad requests", func(t *testing.T) {
		_, err := carol.GetRelations(t.Context(), roomID, root, &mautrix.ReqGetRelations{})
		wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
		_, err = relThreads(t, carol, roomID, nil)
		wantMatrixError(t, err, mautrix.MForbidden, http.StatusForbidden)
		_, err = bob.GetRelations(t.Context(), roomID, "$nope", &mautrix.ReqGetRelations{})
		wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
		other := newRoom(t, carol, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		_, err = bob.GetRelations(t.Context(), other, root, &mautrix.ReqGetRelations{})
		wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)
		for _, q := range []map[string]string{{"include": "mine"}, {"limit": "0"}, {"limit": "x"}, {"from": "bogus"}} {
			_, err := relThreads(t, bob, roomID, q)
			wantMatrixError(t, err, mautrix.MInvalidParam, http.StatusBadRequest)
		}
		for _, q := range []map[string]string{{"dir": "x"}, {"from": "bogus"}, {"to": "bogus"}, {"recurse": "maybe"}, {"limit": "-1"}} {
			u := bob.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", roomID, "relations", root}, q)
			_, err := bob.MakeRequest(t.Context(), http.MethodGet, u, nil, nil)
			wantMatrixError(t, err, mautrix.MInvalidParam, http.StatusBadRequest)
		}
	})

	t.Run("redacted children are de-aggregated", func(t *testing.T) {
		before := mustRelations(t, bob, roomID, root, event.RelThread)
		if _, err := bob.RedactEvent(t.Context(), roomID, before[0].ID); err != nil {
			t.Fatalf("redact %s: %v", before[0].ID, err)
		}
		if _, err := alice.RedactEvent(t.Context(), roomID, edit); err != nil {
			t.Fatalf("redact %s: %v", edit, err)
		}
		after := mustRelations(t, bob, roomID, root, event.RelThread)
		if !slices.Equal(relIDs(after), relIDs(before[1:])) {
			t.Fatalf("thread after redacting its latest reply %v, want %v", relIDs(after), relIDs(before[1:]))
		}
		msgs, err := bob.Messages(t.Context(), roomID, "", "", mautrix.DirectionBackward, nil, 50)
		if err != nil {
			t.Fatal(err)
		}
		rootEv := relFind(t, msgs.Chunk, root)
		relCheckThread(t, rootEv, len(after), after[0].ID, true)
		if le := rootEv.Unsigned.Relations.GetLatestEdit(); le != nil {
			t.Errorf("the redacted edit is still bundled: %s", le.ID)
		}
		// Redacting the root keeps its thread but drops no children.
		if _, err := alice.RedactEvent(t.Context(), roomID, root); err != nil {
			t.Fatal(err)
		}
		if got := mustRelations(t, bob, roomID, root, event.RelThread); len(got) != len(after) {
			t.Errorf("thread of the redacted root has %d events, want %d", len(got), len(after))
		}
	})
}

// mustRelations returns every child of parent of relType, newest first.
func mustRelations(t *testing.T, cli *mautrix.Client, roomID id.RoomID, parent id.EventID, relType event.RelationType) []*event.Event {
	t.Helper()
	resp, err := cli.GetRelations(t.Context(), roomID, parent, &mautrix.ReqGetRelations{RelationType: relType, Limit: 1000})
	if err != nil {
		t.Fatalf("relations of %s: %v", parent, err)
	}
	return resp.Chunk
}

// A reader sees only the thread events their history visibility allows:
// the latest_event and count stop where they left.
func TestRelationsVisibility(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	dave := newUser(t, srv, "dave")
	roomID := newRoom(t, alice, &mautrix.ReqCreateRoom{
		Preset: "public_chat",
		InitialState: []*event.Event{{
			Type: event.StateHistoryVisibility, StateKey: new(""),
			Content: event.Content{Raw: map[string]any{"history_visibility": "joined"}},
		}},
	})
	early := sendText(t, alice, roomID, "early", "before dave")
	relReply(t, alice, roomID, early, "early reply")
	if _, err := dave.JoinRoomByID(t.Context(), roomID); err != nil {
		t.Fatal(err)
	}
	root := sendText(t, alice, roomID, "root", "root")
	seen := []id.EventID{relReply(t, alice, roomID, root, "one"), relReply(t, dave, roomID, root, "two")}
	if _, err := dave.LeaveRoom(t.Context(), roomID); err != nil {
		t.Fatal(err)
	}
	unseen := relReply(t, alice, roomID, root, "three")

	// The root from before dave joined is invisible to him: 404.
	_, err := dave.GetRelations(t.Context(), roomID, early, &mautrix.ReqGetRelations{})
	wantMatrixError(t, err, mautrix.MNotFound, http.StatusNotFound)

	resp, err := dave.GetRelations(t.Context(), roomID, root, &mautrix.ReqGetRelations{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := relIDs(resp.Chunk), []id.EventID{seen[1], seen[0]}; !slices.Equal(got, want) {
		t.Fatalf("dave's relations %v, want %v (not %s)", got, want, unseen)
	}
	msgs, err := dave.Messages(t.Context(), roomID, "", "", mautrix.DirectionBackward, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	relCheckThread(t, relFind(t, msgs.Chunk, root), 2, seen[1], true)
	amsgs, err := alice.Messages(t.Context(), roomID, "", "", mautrix.DirectionBackward, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	relCheckThread(t, relFind(t, amsgs.Chunk, root), 3, unseen, true)
	// /threads lists only roots dave may see.
	threads, err := relThreads(t, dave, roomID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := relIDs(threads.Chunk); !slices.Equal(got, []id.EventID{root}) {
		t.Fatalf("dave's threads %v, want [root]", got)
	}
	relCheckThread(t, threads.Chunk[0], 2, seen[1], true)
}
