package e2e

import (
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"chronicle/api/apitest"
)

type counts struct {
	HighlightCount    int `json:"highlight_count"`
	NotificationCount int `json:"notification_count"`
}

// rawSync is the part of a /sync response these tests read, including
// unread_thread_notifications, which mautrix does not decode.
type rawSync struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[id.RoomID]struct {
			UnreadNotifications       *counts           `json:"unread_notifications"`
			UnreadThreadNotifications map[string]counts `json:"unread_thread_notifications"`
		} `json:"join"`
	} `json:"rooms"`
}

// unread returns cli's counts in room from a sync from scratch (so always
// present), with filter (inline JSON, or "").
func unread(t *testing.T, cli *mautrix.Client, room id.RoomID, filter string) (counts, map[string]counts) {
	t.Helper()
	q := map[string]string{"timeout": "0"}
	if filter != "" {
		q["filter"] = filter
	}
	var resp rawSync
	if _, err := cli.MakeRequest(t.Context(), http.MethodGet, cli.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "sync"}, q), nil, &resp); err != nil {
		t.Fatalf("%s syncs: %v", cli.UserID, err)
	}
	jr, ok := resp.Rooms.Join[room]
	if !ok {
		t.Fatalf("%s: room %s not in rooms.join", cli.UserID, room)
	}
	if jr.UnreadNotifications == nil {
		t.Fatalf("%s: no unread_notifications in %s", cli.UserID, room)
	}
	return *jr.UnreadNotifications, jr.UnreadThreadNotifications
}

func wantUnread(t *testing.T, cli *mautrix.Client, room id.RoomID, notify, highlight int) {
	t.Helper()
	got, _ := unread(t, cli, room, "")
	if want := (counts{NotificationCount: notify, HighlightCount: highlight}); got != want {
		t.Fatalf("%s in %s: %+v, want %+v", cli.UserID, room, got, want)
	}
}

// groupRoom has alice create a public room that bob and carol join.
func groupRoom(t *testing.T, alice *mautrix.Client, others ...*mautrix.Client) id.RoomID {
	t.Helper()
	room := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	for _, c := range others {
		if _, err := c.JoinRoomByID(t.Context(), room); err != nil {
			t.Fatal(err)
		}
	}
	return room
}

func sendContent(t *testing.T, cli *mautrix.Client, room id.RoomID, content map[string]any) id.EventID {
	t.Helper()
	resp, err := cli.SendMessageEvent(t.Context(), room, event.EventMessage, content)
	if err != nil {
		t.Fatalf("%s sends %v: %v", cli.UserID, content, err)
	}
	return resp.EventID
}

// TestUnreadCountsMentionsAndReceipts: messages notify the other members,
// mentions of bob's display name or user ID highlight, and a read receipt
// resets the counts up to its event.
func TestUnreadCountsMentionsAndReceipts(t *testing.T) {
	srv := apitest.Start(t, "")
	alice, bob, carol := newUser(t, srv, "alice"), newUser(t, srv, "bob"), newUser(t, srv, "carol")
	room := groupRoom(t, alice, bob, carol)
	if _, err := bob.SendStateEvent(t.Context(), room, event.StateMember, string(bob.UserID),
		map[string]any{"membership": "join", "displayname": "Bobby Tables"}); err != nil {
		t.Fatalf("bob sets his display name: %v", err)
	}
	wantUnread(t, bob, room, 0, 0)

	sendText(t, alice, room, "t1", "hello all")
	wantUnread(t, bob, room, 1, 0)
	wantUnread(t, alice, room, 0, 0) // never for one's own messages
	mid := sendText(t, alice, room, "t2", "Bobby Tables: are you there?")
	wantUnread(t, bob, room, 2, 1)
	sendText(t, alice, room, "t3", "cc @bob:localhost")
	wantUnread(t, bob, room, 3, 2)
	last := sendContent(t, alice, room, map[string]any{"msgtype": "m.text", "body": "ping",
		"m.mentions": map[string]any{"user_ids": []string{string(bob.UserID)}}})
	wantUnread(t, bob, room, 4, 3)
	wantUnread(t, carol, room, 4, 0) // no mention of carol

	if err := bob.MarkRead(t.Context(), room, mid); err != nil {
		t.Fatal(err)
	}
	wantUnread(t, bob, room, 2, 2)
	if err := bob.SendReceipt(t.Context(), room, last, event.ReceiptTypeReadPrivate, nil); err != nil {
		t.Fatal(err)
	}
	wantUnread(t, bob, room, 0, 0)
	wantUnread(t, carol, room, 4, 0)

	// The counts move in an incremental sync with the event itself.
	first, err := syncOnce(t.Context(), bob, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	sendText(t, alice, room, "t5", "more")
	got := syncUntil(t, bob, first.NextBatch, func(r *mautrix.RespSync) bool { return r.Rooms.Join[room] != nil })
	jr := got.Rooms.Join[room]
	if jr.UnreadNotifications == nil || jr.UnreadNotifications.NotificationCount != 1 || len(jr.Timeline.Events) == 0 {
		t.Fatalf("incremental sync: counts %+v with %d timeline events", jr.UnreadNotifications, len(jr.Timeline.Events))
	}
	// Reading resets them in the next incremental sync (with the receipt).
	if err := bob.MarkRead(t.Context(), room, jr.Timeline.Events[len(jr.Timeline.Events)-1].ID); err != nil {
		t.Fatal(err)
	}
	got = syncUntil(t, bob, got.NextBatch, func(r *mautrix.RespSync) bool { return r.Rooms.Join[room] != nil })
	if c := got.Rooms.Join[room].UnreadNotifications; c == nil || c.NotificationCount != 0 || c.HighlightCount != 0 {
		t.Fatalf("incremental sync after the receipt: counts %+v", c)
	}
}

// TestUnreadOneToOneAndDisabledRule: in a room of two every message
// notifies; disabling .m.rule.message silences a group room, not the 1:1.
func TestUnreadOneToOneAndDisabledRule(t *testing.T) {
	srv := apitest.Start(t, "")
	alice, bob, carol := newUser(t, srv, "alice"), newUser(t, srv, "bob"), newUser(t, srv, "carol")
	dm := joinedPair(t, alice, bob, "trusted_private_chat")
	group := groupRoom(t, alice, bob, carol)
	sendText(t, alice, dm, "d1", "psst")
	wantUnread(t, bob, dm, 1, 0)
	sendText(t, alice, group, "g1", "hi all")
	wantUnread(t, bob, group, 1, 0)

	if err := bob.SetPushRuleEnabled(t.Context(), "global", pushrules.UnderrideRule, ".m.rule.message", false); err != nil {
		t.Fatal(err)
	}
	sendText(t, alice, group, "g2", "anyone?")
	wantUnread(t, bob, group, 1, 0)
	wantUnread(t, carol, group, 2, 0)
	sendText(t, alice, dm, "d2", "you?")
	wantUnread(t, bob, dm, 2, 0)

	// A room rule without actions mutes the 1:1 room.
	if err := bob.PutPushRule(t.Context(), "global", pushrules.RoomRule, string(dm), &mautrix.ReqPutPushRule{Actions: []*pushrules.PushAction{}}); err != nil {
		t.Fatal(err)
	}
	sendText(t, alice, dm, "d3", "muted")
	wantUnread(t, bob, dm, 2, 0)
}

// TestUnreadThreadNotifications: with unread_thread_notifications in the
// filter, thread events count under their root and not in the room's
// counts; a threaded receipt reads only its thread.
func TestUnreadThreadNotifications(t *testing.T) {
	srv := apitest.Start(t, "")
	alice, bob, carol := newUser(t, srv, "alice"), newUser(t, srv, "bob"), newUser(t, srv, "carol")
	room := groupRoom(t, alice, bob, carol)
	root := sendText(t, alice, room, "r", "root")
	inThread := func(txn, body string) id.EventID {
		return sendContent(t, carol, room, map[string]any{"msgtype": "m.text", "body": body,
			"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}})
	}
	t1 := inThread("t1", "one")
	inThread("t2", "two bob")
	sendText(t, alice, room, "m2", "main")

	const threaded = `{"room":{"timeline":{"unread_thread_notifications":true}}}`
	main, threads := unread(t, bob, room, threaded)
	if main != (counts{NotificationCount: 2}) || len(threads) != 1 || threads[string(root)] != (counts{NotificationCount: 2, HighlightCount: 1}) {
		t.Fatalf("threaded counts: main %+v threads %+v", main, threads)
	}
	all, threads := unread(t, bob, room, "")
	if all != (counts{NotificationCount: 4, HighlightCount: 1}) || threads != nil {
		t.Fatalf("unthreaded counts %+v (threads %+v)", all, threads)
	}
	// A stored filter works the same way.
	filterResp, err := bob.CreateFilter(t.Context(), &mautrix.Filter{Room: &mautrix.RoomFilter{Timeline: &mautrix.FilterPart{UnreadThreadNotifications: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if main, threads := unread(t, bob, room, filterResp.FilterID); main.NotificationCount != 2 || len(threads) != 1 {
		t.Fatalf("stored filter: main %+v threads %+v", main, threads)
	}

	if err := bob.SendReceipt(t.Context(), room, t1, event.ReceiptTypeRead, &mautrix.ReqSendReceipt{ThreadID: string(root)}); err != nil {
		t.Fatal(err)
	}
	main, threads = unread(t, bob, room, threaded)
	if main.NotificationCount != 2 || threads[string(root)] != (counts{NotificationCount: 1, HighlightCount: 1}) {
		t.Fatalf("after thread receipt: main %+v threads %+v", main, threads)
	}
	if err := bob.SendReceipt(t.Context(), room, root, event.ReceiptTypeRead, &mautrix.ReqSendReceipt{ThreadID: "main"}); err != nil {
		t.Fatal(err)
	}
	main, threads = unread(t, bob, room, threaded)
	if main.NotificationCount != 1 || threads[string(root)].NotificationCount != 1 {
		t.Fatalf("after main receipt: main %+v threads %+v", main, threads)
	}
	// An unthreaded receipt on the latest event reads everything.
	latest := sendText(t, carol, room, "m3", "latest")
	if err := bob.MarkRead(t.Context(), room, latest); err != nil {
		t.Fatal(err)
	}
	main, threads = unread(t, bob, room, threaded)
	if main != (counts{}) || len(threads) != 0 {
		t.Fatalf("after unthreaded receipt: main %+v threads %+v", main, threads)
	}
}

// TestNotificationsEndpoint: GET /notifications lists what notified,
// newest first, pages with next_token, marks what was read, and filters
// highlights.
func TestNotificationsEndpoint(t *testing.T) {
	srv := apitest.Start(t, "")
	alice, bob, carol := newUser(t, srv, "alice"), newUser(t, srv, "bob"), newUser(t, srv, "carol")
	room := groupRoom(t, alice, bob, carol)
	var ids []id.EventID
	for i, body := range []string{"one", "two bob", "three", "four bob"} {
		ids = append(ids, sendText(t, alice, room, string(rune('a'+i)), body))
	}
	if err := bob.MarkRead(t.Context(), room, ids[1]); err != nil {
		t.Fatal(err)
	}
	type notification struct {
		Actions []any        `json:"actions"`
		Event   *event.Event `json:"event"`
		Read    bool         `json:"read"`
		RoomID  id.RoomID    `json:"room_id"`
		TS      int64        `json:"ts"`
	}
	type page struct {
		NextToken     string         `json:"next_token"`
		Notifications []notification `json:"notifications"`
	}
	get := func(q url.Values) page {
		t.Helper()
		var p page
		qm := map[string]string{}
		for k := range q {
			qm[k] = q.Get(k)
		}
		if _, err := bob.MakeRequest(t.Context(), http.MethodGet, bob.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "notifications"}, qm), nil, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := get(url.Values{"limit": {"3"}})
	if len(p.Notifications) != 3 || p.NextToken == "" {
		t.Fatalf("first page %+v", p)
	}
	for i, n := range p.Notifications {
		if n.Event.ID != ids[3-i] || n.RoomID != room || n.TS == 0 || len(n.Actions) == 0 || n.Read != (i == 2) {
			t.Fatalf("notification %d: %+v (event %s)", i, n, n.Event.ID)
		}
	}
	rest := get(url.Values{"from": {p.NextToken}})
	if len(rest.Notifications) != 1 || rest.Notifications[0].Event.ID != ids[0] || !rest.Notifications[0].Read || rest.NextToken != "" {
		t.Fatalf("second page %+v", rest)
	}
	hl := get(url.Values{"only": {"highlight"}})
	if len(hl.Notifications) != 2 || hl.Notifications[0].Event.ID != ids[3] || hl.Notifications[1].Event.ID != ids[1] {
		t.Fatalf("highlights %+v", hl)
	}
	if _, err := bob.MakeRequest(t.Context(), http.MethodGet, bob.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "notifications"}, map[string]string{"from": "x"}), nil, nil); err == nil {
		t.Fatal("bad from token accepted")
	}
}
