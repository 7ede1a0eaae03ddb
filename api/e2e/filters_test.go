package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// Filters (api/filters*.go) through /sync, /messages and /context, one
// scenario per field of the spec's Filter.

// query builds a query map from key/value pairs.
func query(kv ...string) map[string]string {
	q := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		q[kv[i]] = kv[i+1]
	}
	return q
}

func syncURL(cli *mautrix.Client, q map[string]string) string {
	if _, ok := q["timeout"]; !ok {
		q["timeout"] = "0"
	}
	return cli.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "sync"}, q)
}

// fsync performs one /sync with the query parameters q (filter, since,
// use_state_after...).
func fsync(t *testing.T, cli *mautrix.Client, q map[string]string) *mautrix.RespSync {
	t.Helper()
	var resp mautrix.RespSync
	if _, err := cli.MakeRequest(t.Context(), http.MethodGet, syncURL(cli, q), nil, &resp); err != nil {
		t.Fatalf("%s: /sync %v: %v", cli.UserID, q, err)
	}
	return &resp
}

// fsyncErr performs one /sync expected to fail.
func fsyncErr(t *testing.T, cli *mautrix.Client, q map[string]string) error {
	t.Helper()
	_, err := cli.MakeRequest(t.Context(), http.MethodGet, syncURL(cli, q), nil, nil)
	return err
}

// fsyncRaw performs one /sync and returns the JSON object.
func fsyncRaw(t *testing.T, cli *mautrix.Client, q map[string]string) map[string]any {
	t.Helper()
	var resp map[string]any
	if err := json.Unmarshal(rawGet(t, cli, syncURL(cli, q)), &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// dig walks a decoded JSON object by keys.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// rawEvents returns the events list at path in a decoded sync response.
func rawEvents(v any, keys ...string) []map[string]any {
	list, _ := dig(v, keys...).([]any)
	var out []map[string]any
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// joined returns a room's joined section or fails.
func joined(t *testing.T, resp *mautrix.RespSync, roomID id.RoomID) *mautrix.SyncJoinedRoom {
	t.Helper()
	jr := resp.Rooms.Join[roomID]
	if jr == nil {
		t.Fatalf("room %s missing from rooms.join (rooms: %v)", roomID, joinedIDs(resp))
	}
	return jr
}

func joinedIDs(resp *mautrix.RespSync) []id.RoomID {
	var out []id.RoomID
	for r := range resp.Rooms.Join {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// evTypes lists the events' types, in order.
func evTypes(evs []*event.Event) []string {
	out := []string{}
	for _, ev := range evs {
		out = append(out, ev.Type.Type)
	}
	return out
}

// evSenders lists the distinct senders of events, sorted.
func evSenders(evs []*event.Event) []string {
	out := []string{}
	for _, ev := range evs {
		if !slices.Contains(out, ev.Sender.String()) {
			out = append(out, ev.Sender.String())
		}
	}
	slices.Sort(out)
	return out
}

// memberIDs lists the state keys of the member events among evs, sorted.
func memberIDs(evs []*event.Event) []string {
	out := []string{}
	for _, ev := range evs {
		if ev.Type == event.StateMember {
			out = append(out, ev.GetStateKey())
		}
	}
	slices.Sort(out)
	return out
}

// sortedIDs turns user IDs into sorted strings, dropping duplicates.
func sortedIDs(users ...id.UserID) []string {
	out := []string{}
	for _, u := range users {
		if !slices.Contains(out, u.String()) {
			out = append(out, u.String())
		}
	}
	slices.Sort(out)
	return out
}

func sendJSON(t *testing.T, cli *mautrix.Client, roomID id.RoomID, evType string, content map[string]any) id.EventID {
	t.Helper()
	resp, err := cli.SendMessageEvent(t.Context(), roomID, event.Type{Type: evType, Class: event.MessageEventType}, content)
	if err != nil {
		t.Fatalf("%s sends %s: %v", cli.UserID, evType, err)
	}
	return resp.EventID
}

func setState(t *testing.T, cli *mautrix.Client, roomID id.RoomID, evType event.Type, content any) id.EventID {
	t.Helper()
	resp, err := cli.SendStateEvent(t.Context(), roomID, evType, "", content)
	if err != nil {
		t.Fatalf("%s sets %s: %v", cli.UserID, evType.Type, err)
	}
	return resp.EventID
}

func mustJoin(t *testing.T, cli *mautrix.Client, roomID id.RoomID) {
	t.Helper()
	if _, err := cli.JoinRoomByID(t.Context(), roomID); err != nil {
		t.Fatalf("%s joins %s: %v", cli.UserID, roomID, err)
	}
}

// filteredMessages pages /messages with a raw filter.
func filteredMessages(t *testing.T, cli *mautrix.Client, roomID id.RoomID, q map[string]string) *mautrix.RespMessages {
	t.Helper()
	var resp mautrix.RespMessages
	url := cli.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", roomID, "messages"}, q)
	if _, err := cli.MakeRequest(t.Context(), http.MethodGet, url, nil, &resp); err != nil {
		t.Fatalf("/messages %v: %v", q, err)
	}
	return &resp
}

func TestFilterTimeline(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice, bob, carol := newUser(t, srv, "alice"), newUser(t, srv, "bob"), newUser(t, srv, "carol")
	room := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Filters"})
	other := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	mustJoin(t, bob, room)
	mustJoin(t, carol, room)
	sendText(t, alice, room, "a1", "a1")
	sendJSON(t, bob, room, "m.room.message", map[string]any{"msgtype": "m.image", "body": "pic", "url": "mxc://localhost/pic"})
	sendText(t, carol, room, "c1", "c1")
	sendJSON(t, bob, room, "org.example.ping", map[string]any{"n": 1})
	setState(t, alice, room, event.StateTopic, map[string]any{"topic": "tea"})
	sendText(t, carol, room, "c2", "c2")

	timelineWith := func(t *testing.T, timelineFilter string) *mautrix.SyncJoinedRoom {
		t.Helper()
		return joined(t, fsync(t, alice, query("filter", `{"room":{"timeline":`+timelineFilter+`}}`)), room)
	}
	everything := timelineWith(t, `{"limit":50}`).Timeline.Events

	for _, tc := range []struct {
		name, filter string
		keep         func(ev *event.Event) bool
	}{
		{"types", `{"limit":50,"types":["m.room.message"]}`, func(ev *event.Event) bool { return ev.Type == event.EventMessage }},
		{"types wildcard", `{"limit":50,"types":["org.example.*"]}`, func(ev *event.Event) bool { return ev.Type.Type == "org.example.ping" }},
		{"not_types wildcard", `{"limit":50,"not_types":["m.*"]}`, func(ev *event.Event) bool { return ev.Type.Type == "org.example.ping" }},
		{"not_types wins over types", `{"limit":50,"types":["m.room.*"],"not_types":["m.room.message","m.room.member"]}`, func(ev *event.Event) bool {
			return strings.HasPrefix(ev.Type.Type, "m.room.") && ev.Type != event.EventMessage && ev.Type != event.StateMember
		}},
		{"empty types", `{"limit":50,"types":[]}`, func(*event.Event) bool { return false }},
		{"senders", `{"limit":50,"senders":["` + bob.UserID.String() + `"]}`, func(ev *event.Event) bool { return ev.Sender == bob.UserID }},
		{"not_senders", `{"limit":50,"not_senders":["` + alice.UserID.String() + `"]}`, func(ev *event.Event) bool { return ev.Sender != alice.UserID }},
		{"not_senders wins over senders", `{"limit":50,"senders":["` + bob.UserID.String() + `","` + carol.UserID.String() + `"],"not_senders":["` + bob.UserID.String() + `"]}`, func(ev *event.Event) bool { return ev.Sender == carol.UserID }},
		{"contains_url true", `{"limit":50,"contains_url":true}`, func(ev *event.Event) bool { return bodyOf(ev) == "pic" }},
		{"contains_url false", `{"limit":50,"contains_url":false,"types":["m.room.message"]}`, func(ev *event.Event) bool { return ev.Type == event.EventMessage && bodyOf(ev) != "pic" }},
		{"rooms", `{"limit":50,"rooms":["` + other.String() + `"]}`, func(*event.Event) bool { return false }},
		{"not_rooms", `{"limit":50,"not_rooms":["` + room.String() + `"]}`, func(*event.Event) bool { return false }},
		{"rooms including the room", `{"limit":50,"rooms":["` + room.String() + `"]}`, func(*event.Event) bool { return true }},
		{"unread_thread_notifications is accepted", `{"limit":50,"unread_thread_notifications":true}`, func(*event.Event) bool { return true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jr := timelineWith(t, tc.filter)
			var want []id.EventID
			for _, ev := range everything {
				if tc.keep(ev) {
					want = append(want, ev.ID)
				}
			}
			if got := ids(jr.Timeline.Events); !slices.Equal(got, append([]id.EventID{}, want...)) {
				t.Fatalf("timeline %v (%v), want %v", got, evTypes(jr.Timeline.Events), want)
			}
			if jr.Timeline.Limited {
				t.Fatal("a timeline holding every passing event is not limited")
			}
			// The state is the room's at the start of the timeline: empty
			// only when the timeline starts at the room's creation.
			if len(jr.State.Events) == 0 && !slices.Contains(evTypes(jr.Timeline.Events), "m.room.create") {
				t.Fatal("initial sync lost the room's state")
			}
		})
	}

	t.Run("limit counts passing events and prev_batch continues", func(t *testing.T) {
		jr := timelineWith(t, `{"limit":2,"types":["m.room.message"]}`)
		if got := messageBodies(jr.Timeline.Events); !slices.Equal(got, []string{"c1", "c2"}) || len(jr.Timeline.Events) != 2 {
			t.Fatalf("timeline %q (%v), want the last two messages", got, evTypes(jr.Timeline.Events))
		}
		if !jr.Timeline.Limited || jr.Timeline.PrevBatch == "" {
			t.Fatalf("limited %v, prev_batch %q: two of four messages is a limited timeline", jr.Timeline.Limited, jr.Timeline.PrevBatch)
		}
		// The topic, set after the first message returned but dropped by
		// the filter, is still in the state (it is the room's topic now).
		var topic string
		for _, ev := range jr.State.Events {
			if ev.Type == event.StateTopic {
				topic, _ = ev.Content.Raw["topic"].(string)
			}
		}
		if topic != "tea" {
			t.Fatalf("state lacks the filtered-out topic change (topic %q): %v", topic, stateKeys(jr.State.Events))
		}
		back := filteredMessages(t, alice, room, query("dir", "b", "from", jr.Timeline.PrevBatch, "limit", "10", "filter", `{"types":["m.room.message"]}`))
		if got := messageBodies(back.Chunk); !slices.Equal(got, []string{"pic", "a1"}) {
			t.Fatalf("/messages from prev_batch: %q, want the two earlier messages", got)
		}
	})

	t.Run("limit 0", func(t *testing.T) {
		jr := timelineWith(t, `{"limit":0}`)
		if len(jr.Timeline.Events) != 0 || !jr.Timeline.Limited {
			t.Fatalf("limit 0: %d events, limited %v", len(jr.Timeline.Events), jr.Timeline.Limited)
		}
	})

	t.Run("lazy_load_members on the timeline does not lazy-load /sync", func(t *testing.T) {
		jr := timelineWith(t, `{"limit":1,"lazy_load_members":true}`)
		if got, want := memberIDs(jr.State.Events), sortedIDs(alice.UserID, bob.UserID, carol.UserID); !slices.Equal(got, want) {
			t.Fatalf("members %v, want all %v (the spec lazy-loads /sync through room.state)", got, want)
		}
	})

	t.Run("incremental", func(t *testing.T) {
		filter := `{"room":{"timeline":{"types":["m.room.message"]}}}`
		since := fsync(t, alice, query("filter", filter)).NextBatch
		setState(t, alice, room, event.StateRoomName, map[string]any{"name": "Renamed"})
		sendText(t, carol, room, "c3", "c3")
		jr := joined(t, fsync(t, alice, query("filter", filter, "since", since)), room)
		if got := messageBodies(jr.Timeline.Events); !slices.Equal(got, []string{"c3"}) || len(jr.Timeline.Events) != 1 || jr.Timeline.Limited {
			t.Fatalf("incremental timeline %v (limited %v), want just c3", evTypes(jr.Timeline.Events), jr.Timeline.Limited)
		}
		if got := stateKeys(jr.State.Events); !slices.Equal(got, []string{"m.room.name|"}) {
			t.Fatalf("incremental state %v, want the filtered-out rename", got)
		}

		// A change the filter drops entirely leaves the room out and does
		// not end a long-poll early.
		since = fsync(t, alice, query("filter", filter, "since", since)).NextBatch
		sendJSON(t, bob, room, "org.example.ping", map[string]any{"n": 2})
		resp := fsync(t, alice, query("filter", filter, "since", since, "timeout", "300"))
		if resp.Rooms.Join[room] != nil {
			t.Fatalf("a room with only filtered-out events is in the sync: %v", evTypes(resp.Rooms.Join[room].Timeline.Events))
		}
		if resp := fsync(t, alice, query("since", since)); resp.Rooms.Join[room] == nil {
			t.Fatal("unfiltered, the new event shows")
		}
	})
}

func TestFilterRoomsAndIncludeLeave(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice, bob := newUser(t, srv, "alice"), newUser(t, srv, "bob")
	a := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "A"})
	b := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "B"})
	invite := newRoom(t, bob, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{alice.UserID}})
	left := newRoom(t, bob, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	mustJoin(t, alice, left)
	if _, err := alice.LeaveRoom(t.Context(), left); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetRoomAccountData(t.Context(), b, "org.example.note", map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, filter       string
		join, inv, leaving []id.RoomID
	}{
		{"no filter", `{}`, []id.RoomID{a, b}, []id.RoomID{invite}, nil},
		{"rooms", fmt.Sprintf(`{"room":{"rooms":[%q]}}`, a), []id.RoomID{a}, nil, nil},
		{"rooms with an invite", fmt.Sprintf(`{"room":{"rooms":[%q]}}`, invite), nil, []id.RoomID{invite}, nil},
		{"not_rooms", fmt.Sprintf(`{"room":{"not_rooms":[%q]}}`, a), []id.RoomID{b}, []id.RoomID{invite}, nil},
		{"not_rooms wins over rooms", fmt.Sprintf(`{"room":{"rooms":[%q,%q],"not_rooms":[%q]}}`, a, b, a), []id.RoomID{b}, nil, nil},
		{"empty rooms", `{"room":{"rooms":[]}}`, nil, nil, nil},
		{"include_leave", `{"room":{"include_leave":true}}`, []id.RoomID{a, b}, []id.RoomID{invite}, []id.RoomID{left}},
		{"include_leave with not_rooms", fmt.Sprintf(`{"room":{"include_leave":true,"not_rooms":[%q]}}`, left), []id.RoomID{a, b}, []id.RoomID{invite}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := fsync(t, alice, query("filter", tc.filter))
			var inv, leaving []id.RoomID
			for r := range resp.Rooms.Invite {
				inv = append(inv, r)
			}
			for r := range resp.Rooms.Leave {
				leaving = append(leaving, r)
			}
			slices.Sort(inv)
			slices.Sort(leaving)
			join := joinedIDs(resp)
			sortAll := func(l []id.RoomID) []id.RoomID { l = slices.Clone(l); slices.Sort(l); return l }
			if !slices.Equal(join, sortAll(tc.join)) || !slices.Equal(inv, sortAll(tc.inv)) || !slices.Equal(leaving, sortAll(tc.leaving)) {
				t.Fatalf("join %v invite %v leave %v; want %v %v %v", join, inv, leaving, tc.join, tc.inv, tc.leaving)
			}
			if jr := resp.Rooms.Join[b]; jr != nil && len(jr.AccountData.Events) != 1 {
				t.Fatalf("room B's account data: %v", evTypes(jr.AccountData.Events))
			}
		})
	}
	t.Run("left room timeline ends with the leave", func(t *testing.T) {
		resp := fsync(t, alice, query("filter", `{"room":{"include_leave":true,"timeline":{"types":["m.room.member"]}}}`))
		lr := resp.Rooms.Leave[left]
		if lr == nil || len(lr.Timeline.Events) == 0 {
			t.Fatalf("left room: %+v", lr)
		}
		last := lr.Timeline.Events[len(lr.Timeline.Events)-1]
		if last.GetStateKey() != alice.UserID.String() || last.Content.Raw["membership"] != "leave" {
			t.Fatalf("left room's timeline ends with %s %v", last.Type.Type, last.Content.Raw)
		}
		for _, ev := range lr.Timeline.Events {
			if ev.Type != event.StateMember {
				t.Fatalf("timeline filter not applied to the left room: %s", ev.Type.Type)
			}
		}
	})
}

func TestFilterState(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice, bob := newUser(t, srv, "alice"), newUser(t, srv, "bob")
	room := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Stateful", Topic: "things"})
	mustJoin(t, bob, room)
	sendText(t, bob, room, "hi", "hi")

	stateWith := func(t *testing.T, stateFilter string) *mautrix.SyncJoinedRoom {
		t.Helper()
		// A timeline limit of 1 puts nearly the whole room in the state.
		return joined(t, fsync(t, alice, query("filter", `{"room":{"timeline":{"limit":1},"state":`+stateFilter+`}}`)), room)
	}
	all := stateKeys(stateWith(t, `{}`).State.Events)
	if !slices.Contains(all, "m.room.name|") || !slices.Contains(all, "m.room.member|"+bob.UserID.String()) {
		t.Fatalf("unfiltered state %v", all)
	}
	for _, tc := range []struct {
		name, filter string
		keep         func(key string) bool
	}{
		{"types", `{"types":["m.room.name"]}`, func(k string) bool { return k == "m.room.name|" }},
		{"types wildcard and not_types", `{"types":["m.room.*"],"not_types":["m.room.member","m.room.power_levels"]}`, func(k string) bool {
			return !strings.HasPrefix(k, "m.room.member|") && !strings.HasPrefix(k, "m.room.power_levels|")
		}},
		{"senders", `{"senders":["` + bob.UserID.String() + `"]}`, func(k string) bool { return k == "m.room.member|"+bob.UserID.String() }},
		{"not_senders", `{"not_senders":["` + alice.UserID.String() + `"]}`, func(k string) bool { return k == "m.room.member|"+bob.UserID.String() }},
		{"not_rooms", `{"not_rooms":["` + room.String() + `"]}`, func(string) bool { return false }},
		{"limit does not cut the state", `{"limit":1}`, func(string) bool { return true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jr := stateWith(t, tc.filter)
			want := []string{}
			for _, k := range all {
				if tc.keep(k) {
					want = append(want, k)
				}
			}
			if got := stateKeys(jr.State.Events); !slices.Equal(got, want) {
				t.Fatalf("state %v, want %v", got, want)
			}
			if got := messageBodies(jr.Timeline.Events); !slices.Equal(got, []string{"hi"}) {
				t.Fatalf("the state filter changed the timeline: %q", got)
			}
		})
	}
}

func TestFilterLazyLoadMembers(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	// amy..eve sort first and are the summary's heroes; fay, gus, yan and
	// zed are none.
	users := map[string]*mautrix.Client{}
	room := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Lazy"})
	for _, name := range []string{"amy", "ben", "cat", "dan", "eve", "fay", "gus", "yan", "zed"} {
		users[name] = newUser(t, srv, name)
		mustJoin(t, users[name], room)
	}
	amy, fay, gus, yan, zed := users["amy"], users["fay"], users["gus"], users["yan"], users["zed"]
	sendText(t, fay, room, "f0", "f0")
	sendText(t, yan, room, "y1", "y1")
	sendText(t, zed, room, "z1", "z1")
	heroes := []id.UserID{amy.UserID, users["ben"].UserID, users["cat"].UserID, users["dan"].UserID, users["eve"].UserID}

	const lazy = `{"room":{"timeline":{"limit":2},"state":{"lazy_load_members":true}}}`
	const lazyRedundant = `{"room":{"timeline":{"limit":2},"state":{"lazy_load_members":true,"include_redundant_members":true}}}`

	first := fsync(t, alice, query("filter", lazy))
	t.Run("initial sync: senders, own member and heroes", func(t *testing.T) {
		jr := joined(t, first, room)
		if got := messageBodies(jr.Timeline.Events); !slices.Equal(got, []string{"y1", "z1"}) || !jr.Timeline.Limited {
			t.Fatalf("timeline %q limited %v", got, jr.Timeline.Limited)
		}
		if !slices.Equal(jr.Summary.Heroes, heroes) {
			t.Fatalf("heroes %v, want %v", jr.Summary.Heroes, heroes)
		}
		want := sortedIDs(append([]id.UserID{alice.UserID, yan.UserID, zed.UserID}, heroes...)...)
		if got := memberIDs(jr.State.Events); !slices.Equal(got, want) {
			t.Fatalf("lazy-loaded members %v, want the timeline's senders, alice and the heroes %v", got, want)
		}
		keys := stateKeys(jr.State.Events)
		if !slices.Contains(keys, "m.room.name|") || !slices.Contains(keys, "m.room.create|") {
			t.Fatalf("lazy-loading dropped non-member state: %v", keys)
		}
	})

	sendText(t, fay, room, "f1", "f1")
	sendText(t, yan, room, "y2", "y2")
	var second *mautrix.RespSync
	t.Run("incremental: only members the device lacks", func(t *testing.T) {
		second = fsync(t, alice, query("filter", lazy, "since", first.NextBatch))
		jr := joined(t, second, room)
		if got := messageBodies(jr.Timeline.Events); !slices.Equal(got, []string{"f1", "y2"}) || jr.Timeline.Limited {
			t.Fatalf("timeline %q limited %v", got, jr.Timeline.Limited)
		}
		if got := memberIDs(jr.State.Events); !slices.Equal(got, sortedIDs(fay.UserID)) {
			t.Fatalf("members %v, want only fay's (yan's was sent already)", got)
		}
	})
	t.Run("a retried sync resends what the lost response had", func(t *testing.T) {
		again := joined(t, fsync(t, alice, query("filter", lazy, "since", first.NextBatch)), room)
		if got := memberIDs(again.State.Events); !slices.Equal(got, sortedIDs(fay.UserID)) {
			t.Fatalf("members %v, want fay's again", got)
		}
	})
	t.Run("include_redundant_members: exactly the senders of the timeline", func(t *testing.T) {
		jr := joined(t, fsync(t, alice, query("filter", lazyRedundant, "since", first.NextBatch)), room)
		if got, want := memberIDs(jr.State.Events), evSenders(jr.Timeline.Events); !slices.Equal(got, want) || !slices.Equal(want, sortedIDs(fay.UserID, yan.UserID)) {
			t.Fatalf("members %v, want exactly the timeline's senders %v", got, want)
		}
	})
	third := second
	t.Run("members sent before are not resent", func(t *testing.T) {
		sendText(t, fay, room, "f2", "f2")
		third = fsync(t, alice, query("filter", lazy, "since", second.NextBatch))
		jr := joined(t, third, room)
		if got := memberIDs(jr.State.Events); len(got) != 0 {
			t.Fatalf("members %v, want none (fay's was sent)", got)
		}
	})
	t.Run("a limited sync carries the member changes of its gap", func(t *testing.T) {
		if _, err := gus.SendStateEvent(t.Context(), room, event.StateMember, gus.UserID.String(), map[string]any{"membership": "join", "displayname": "Gus the Great"}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			sendText(t, zed, room, fmt.Sprint("z-late", i), fmt.Sprint("z-late ", i))
		}
		jr := joined(t, fsync(t, alice, query("filter", lazy, "since", third.NextBatch)), room)
		if !jr.Timeline.Limited || len(jr.Timeline.Events) != 2 {
			t.Fatalf("timeline %v limited %v", evTypes(jr.Timeline.Events), jr.Timeline.Limited)
		}
		if got := memberIDs(jr.State.Events); !slices.Equal(got, sortedIDs(gus.UserID)) {
			t.Fatalf("members %v, want gus's change in the gap (zed's is known)", got)
		}
	})
	t.Run("state_after with lazy-loading", func(t *testing.T) {
		raw := fsyncRaw(t, alice, query("filter", lazy, "use_state_after", "true"))
		r := dig(raw, "rooms", "join", room.String())
		if dig(r, "state") != nil {
			t.Fatal("state must be omitted with use_state_after")
		}
		members := []string{}
		for _, ev := range rawEvents(r, "state_after", "events") {
			if ev["type"] == "m.room.member" {
				members = append(members, ev["state_key"].(string))
			}
		}
		slices.Sort(members)
		senders := []id.UserID{alice.UserID}
		for _, ev := range rawEvents(r, "timeline", "events") {
			senders = append(senders, id.UserID(ev["sender"].(string)))
		}
		want := sortedIDs(append(senders, heroes...)...)
		if !slices.Contains(want, zed.UserID.String()) || !slices.Equal(members, want) {
			t.Fatalf("state_after members %v, want %v", members, want)
		}
	})
	t.Run("/messages state holds exactly the chunk's senders", func(t *testing.T) {
		for _, tc := range []struct{ filter, limit string }{
			{`{"lazy_load_members":true}`, "4"},
			{`{"lazy_load_members":true,"types":["m.room.message"]}`, "7"},
			{`{"lazy_load_members":true,"senders":["` + fay.UserID.String() + `"]}`, "2"},
		} {
			resp := filteredMessages(t, alice, room, query("dir", "b", "limit", tc.limit, "filter", tc.filter))
			if got, want := memberIDs(resp.State), evSenders(resp.Chunk); !slices.Equal(got, want) || len(want) == 0 {
				t.Fatalf("%s: state members %v, want the chunk's senders %v", tc.filter, got, want)
			}
		}
		resp := filteredMessages(t, alice, room, query("dir", "b", "limit", "4"))
		if len(resp.State) != 0 {
			t.Fatalf("/messages without lazy-loading has state: %v", stateKeys(resp.State))
		}
	})
}

func TestFilterEphemeralAndAccountData(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice, bob := newUser(t, srv, "alice"), newUser(t, srv, "bob")
	room := joinedPair(t, alice, bob, "public_chat")
	quiet := joinedPair(t, alice, bob, "public_chat")
	msg := sendText(t, alice, room, "m", "m")
	if _, err := bob.UserTyping(t.Context(), room, true, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := bob.MarkRead(t.Context(), room, msg); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]any{"org.example.a": map[string]any{"a": 1}, "org.example.b": map[string]any{"b": 1}} {
		if err := alice.SetAccountData(t.Context(), name, content); err != nil {
			t.Fatal(err)
		}
	}
	if err := alice.AddTag(t.Context(), room, event.RoomTagFavourite, 0.5); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetRoomAccountData(t.Context(), room, "org.example.room", map[string]any{"r": 1}); err != nil {
		t.Fatal(err)
	}

	sorted := func(l []string) []string { l = slices.Clone(l); slices.Sort(l); return l }
	for _, tc := range []struct {
		name, filter      string
		ephemeral, roomAD []string
		global            func([]string) bool
	}{
		{"no filter", `{}`, []string{"m.receipt", "m.typing"}, []string{"m.tag", "org.example.room"}, nil},
		{"ephemeral types", `{"room":{"ephemeral":{"types":["m.typing"]}}}`, []string{"m.typing"}, nil, nil},
		{"ephemeral not_types", `{"room":{"ephemeral":{"not_types":["m.typing"]}}}`, []string{"m.receipt"}, nil, nil},
		{"ephemeral limit", `{"room":{"ephemeral":{"limit":1}}}`, []string{"m.typing"}, nil, nil},
		{"ephemeral senders (ephemeral events have none)", `{"room":{"ephemeral":{"senders":["` + bob.UserID.String() + `"]}}}`, []string{}, nil, nil},
		{"ephemeral not_rooms", `{"room":{"ephemeral":{"not_rooms":["` + room.String() + `"]}}}`, []string{}, nil, nil},
		{"room account_data types", `{"room":{"account_data":{"types":["m.tag"]}}}`, nil, []string{"m.tag"}, nil},
		{"room account_data not_types wildcard", `{"room":{"account_data":{"not_types":["org.*"]}}}`, nil, []string{"m.tag"}, nil},
		{"room account_data not_rooms", `{"room":{"account_data":{"not_rooms":["` + room.String() + `"]}}}`, nil, []string{}, nil},
		{"room account_data limit", `{"room":{"account_data":{"limit":1}}}`, nil, []string{"m.tag"}, nil},
		{"account_data not_types", `{"account_data":{"not_types":["org.example.b"]}}`, nil, nil, func(g []string) bool {
			return slices.Contains(g, "org.example.a") && !slices.Contains(g, "org.example.b")
		}},
		{"account_data types and limit", `{"account_data":{"types":["org.example.*"],"limit":1}}`, nil, nil, func(g []string) bool {
			return len(g) == 1 && strings.HasPrefix(g[0], "org.example.")
		}},
		{"account_data types", `{"account_data":{"types":["org.example.b"]}}`, nil, nil, func(g []string) bool { return slices.Equal(g, []string{"org.example.b"}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := fsync(t, alice, query("filter", tc.filter))
			jr := joined(t, resp, room)
			if tc.ephemeral != nil {
				if got := evTypes(jr.Ephemeral.Events); !slices.Equal(sorted(got), tc.ephemeral) {
					// a limit keeps the first events in server order
					if !(strings.Contains(tc.name, "limit") && len(got) == 1) {
						t.Fatalf("ephemeral %v, want %v", got, tc.ephemeral)
					}
				}
			}
			if tc.roomAD != nil {
				got := evTypes(jr.AccountData.Events)
				if strings.Contains(tc.name, "limit") {
					if len(got) != 1 {
						t.Fatalf("room account data %v, want one event", got)
					}
				} else if !slices.Equal(sorted(got), tc.roomAD) {
					t.Fatalf("room account data %v, want %v", got, tc.roomAD)
				}
			}
			if tc.global != nil {
				if got := evTypes(resp.AccountData.Events); !tc.global(got) {
					t.Fatalf("global account data %v", got)
				}
			}
		})
	}

	t.Run("incremental: a room whose only change is filtered out stays out", func(t *testing.T) {
		filter := `{"room":{"ephemeral":{"not_types":["m.typing"]}}}`
		since := fsync(t, alice, query("filter", filter)).NextBatch
		if _, err := bob.UserTyping(t.Context(), quiet, true, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if resp := fsync(t, alice, query("filter", filter, "since", since, "timeout", "300")); resp.Rooms.Join[quiet] != nil {
			t.Fatalf("room with only a filtered-out typing change: %+v", resp.Rooms.Join[quiet].Ephemeral.Events)
		}
		if resp := fsync(t, alice, query("since", since)); resp.Rooms.Join[quiet] == nil {
			t.Fatal("unfiltered, the typing change shows")
		}
	})
}

func TestFilterPresence(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice, bob, carol := newUser(t, srv, "alice"), newUser(t, srv, "bob"), newUser(t, srv, "carol")
	room := joinedPair(t, alice, bob, "public_chat")
	mustJoin(t, carol, room)
	if err := bob.SetPresence(t.Context(), mautrix.ReqPresence{Presence: event.PresenceOnline}); err != nil {
		t.Fatal(err)
	}
	if err := carol.SetPresence(t.Context(), mautrix.ReqPresence{Presence: event.PresenceUnavailable}); err != nil {
		t.Fatal(err)
	}
	presenceOf := func(t *testing.T, filter string) []string {
		t.Helper()
		return evSenders(fsync(t, alice, query("filter", filter, "set_presence", "offline")).Presence.Events)
	}
	all := presenceOf(t, `{}`)
	if !slices.Contains(all, bob.UserID.String()) || !slices.Contains(all, carol.UserID.String()) {
		t.Fatalf("unfiltered presence %v lacks bob or carol", all)
	}
	without := func(drop ...id.UserID) []string {
		return slices.DeleteFunc(slices.Clone(all), func(u string) bool { return slices.Contains(sortedIDs(drop...), u) })
	}
	for _, tc := range []struct {
		name, filter string
		want         []string
	}{
		{"types", `{"presence":{"types":["m.presence"]}}`, all},
		{"types wildcard", `{"presence":{"types":["m.*"]}}`, all},
		{"other types", `{"presence":{"types":["org.example.status"]}}`, []string{}},
		{"not_types", `{"presence":{"not_types":["m.presence"]}}`, []string{}},
		{"senders", `{"presence":{"senders":["` + carol.UserID.String() + `"]}}`, sortedIDs(carol.UserID)},
		{"not_senders", `{"presence":{"not_senders":["` + bob.UserID.String() + `"]}}`, without(bob.UserID)},
		{"not_senders wins over senders", `{"presence":{"senders":["` + bob.UserID.String() + `","` + carol.UserID.String() + `"],"not_senders":["` + bob.UserID.String() + `"]}}`, sortedIDs(carol.UserID)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := presenceOf(t, tc.filter); !slices.Equal(got, tc.want) {
				t.Fatalf("presence from %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("limit", func(t *testing.T) {
		if got := fsync(t, alice, query("filter", `{"presence":{"limit":1}}`, "set_presence", "offline")).Presence.Events; len(got) != 1 {
			t.Fatalf("%d presence events, want 1", len(got))
		}
	})
}

func TestFilterEventFieldsAndFormat(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice := newUser(t, srv, "alice")
	room := newRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Shapes"})
	root := sendText(t, alice, room, "root", "root")
	sendJSON(t, alice, room, "m.room.message", map[string]any{
		"msgtype": "m.text", "body": "in thread",
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root.String()},
	})
	gone := sendText(t, alice, room, "gone", "secret")
	if _, err := alice.RedactEvent(t.Context(), room, gone); err != nil {
		t.Fatal(err)
	}
	roomPath := []string{"rooms", "join", room.String()}

	t.Run("event_fields", func(t *testing.T) {
		raw := fsyncRaw(t, alice, query("filter", `{"event_fields":["type","sender","content.body"],"room":{"timeline":{"limit":50}}}`))
		tl := rawEvents(raw, append(roomPath, "timeline", "events")...)
		if len(tl) < 4 {
			t.Fatalf("timeline of %d events", len(tl))
		}
		var bodies []string
		for _, ev := range tl {
			for k := range ev {
				if k != "type" && k != "sender" && k != "content" {
					t.Fatalf("event has %q beyond event_fields: %v", k, ev)
				}
			}
			content, _ := ev["content"].(map[string]any)
			for k := range content {
				if k != "body" {
					t.Fatalf("content has %q beyond content.body: %v", k, content)
				}
			}
			if ev["type"] == "m.room.message" {
				if b, ok := content["body"].(string); ok {
					bodies = append(bodies, b)
				}
			}
		}
		if !slices.Contains(bodies, "root") || !slices.Contains(bodies, "in thread") {
			t.Fatalf("bodies %q", bodies)
		}
		for _, ev := range rawEvents(raw, append(roomPath, "state", "events")...) {
			if _, ok := ev["event_id"]; ok || ev["type"] == nil {
				t.Fatalf("state event not shaped by event_fields: %v", ev)
			}
		}
	})
	t.Run("event_fields with an escaped dot", func(t *testing.T) {
		raw := fsyncRaw(t, alice, query("filter", `{"event_fields":["event_id","content.m\\.relates_to.rel_type"],"room":{"timeline":{"limit":50}}}`))
		var found bool
		for _, ev := range rawEvents(raw, append(roomPath, "timeline", "events")...) {
			if rel := dig(ev, "content", "m.relates_to"); rel != nil {
				if !maps1(rel, "rel_type", "m.thread") {
					t.Fatalf("m.relates_to picked as %v", rel)
				}
				found = true
			}
			if ev["event_id"] == nil {
				t.Fatalf("event_id missing: %v", ev)
			}
		}
		if !found {
			t.Fatal("no event kept content.m.relates_to.rel_type")
		}
	})
	t.Run("event_format federation", func(t *testing.T) {
		raw := fsyncRaw(t, alice, query("filter", `{"event_format":"federation","room":{"timeline":{"limit":50}}}`))
		tl := rawEvents(raw, append(roomPath, "timeline", "events")...)
		if len(tl) == 0 {
			t.Fatal("empty timeline")
		}
		for _, ev := range tl {
			for _, k := range []string{"auth_events", "prev_events", "depth", "hashes", "event_id", "room_id", "sender", "origin_server_ts", "type"} {
				if _, ok := ev[k]; !ok {
					t.Fatalf("federation event lacks %q: %v", k, ev)
				}
			}
			if ev["event_id"] == gone.String() {
				if c, _ := ev["content"].(map[string]any); len(c) != 0 {
					t.Fatalf("redacted event's PDU keeps content %v", c)
				}
			}
		}
		for _, ev := range rawEvents(raw, append(roomPath, "state", "events")...) {
			if _, ok := ev["auth_events"]; !ok {
				t.Fatalf("state event not in federation form: %v", ev)
			}
		}
		// mautrix still reads it.
		if resp := fsync(t, alice, query("filter", `{"event_format":"federation"}`)); len(joined(t, resp, room).Timeline.Events) == 0 {
			t.Fatal("mautrix sees no timeline")
		}
	})
	t.Run("event_format federation with event_fields", func(t *testing.T) {
		raw := fsyncRaw(t, alice, query("filter", `{"event_format":"federation","event_fields":["depth","event_id"]}`))
		for _, ev := range rawEvents(raw, append(roomPath, "timeline", "events")...) {
			if len(ev) != 2 || ev["depth"] == nil || ev["event_id"] == nil {
				t.Fatalf("event %v, want just depth and event_id", ev)
			}
		}
	})
	t.Run("event_format client", func(t *testing.T) {
		raw := fsyncRaw(t, alice, query("filter", `{"event_format":"client"}`))
		for _, ev := range rawEvents(raw, append(roomPath, "timeline", "events")...) {
			if _, ok := ev["auth_events"]; ok || ev["event_id"] == nil {
				t.Fatalf("client event %v", ev)
			}
		}
	})
}

// maps1 reports whether v is an object with exactly one key k holding want.
func maps1(v any, k string, want any) bool {
	m, ok := v.(map[string]any)
	return ok && len(m) == 1 && m[k] == want
}

func TestFilterStateAfter(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice, bob := newUser(t, srv, "alice"), newUser(t, srv, "bob")
	room := joinedPair(t, alice, bob, "public_chat")
	setState(t, alice, room, event.StateTopic, map[string]any{"topic": "first"})
	since := fsync(t, alice, query()).NextBatch
	topic := setState(t, alice, room, event.StateTopic, map[string]any{"topic": "second"})
	sendText(t, alice, room, "after", "after topic")

	topicIn := func(evs []map[string]any) string {
		for _, ev := range evs {
			if ev["type"] == "m.room.topic" {
				s, _ := dig(ev, "content", "topic").(string)
				return s
			}
		}
		return ""
	}
	t.Run("incremental: the timeline's state changes are in state_after", func(t *testing.T) {
		raw := fsyncRaw(t, alice, query("since", since, "use_state_after", "true"))
		r := dig(raw, "rooms", "join", room.String())
		if dig(r, "state") != nil {
			t.Fatal("state present with use_state_after")
		}
		if got := topicIn(rawEvents(r, "state_after", "events")); got != "second" {
			t.Fatalf("state_after topic %q, want second: %v", got, dig(r, "state_after"))
		}
		if got := topicIn(rawEvents(r, "timeline", "events")); got != "second" {
			t.Fatal("the topic change is in the timeline too")
		}
	})
	t.Run("without the parameter: state, no state_after", func(t *testing.T) {
		raw := fsyncRaw(t, alice, query("since", since))
		r := dig(raw, "rooms", "join", room.String())
		if dig(r, "state_after") != nil || dig(r, "state") == nil || len(rawEvents(r, "state", "events")) != 0 {
			t.Fatalf("state %v state_after %v", dig(r, "state"), dig(r, "state_after"))
		}
	})
	t.Run("limited: state_after is the state at the end", func(t *testing.T) {
		resp, err := alice.FullSyncRequest(t.Context(), mautrix.ReqSync{UseStateAfter: true, FilterID: timelineFilter(1)})
		if err != nil {
			t.Fatal(err)
		}
		jr := joined(t, resp, room)
		if jr.StateAfter == nil || len(jr.State.Events) != 0 {
			t.Fatalf("state_after %v, state %v", jr.StateAfter, jr.State.Events)
		}
		var got id.EventID
		for _, ev := range jr.StateAfter.Events {
			if ev.Type == event.StateTopic {
				got = ev.ID
			}
		}
		if got != topic {
			t.Fatalf("state_after topic event %s, want the latest %s", got, topic)
		}
		if got := memberIDs(jr.StateAfter.Events); !slices.Equal(got, sortedIDs(alice.UserID, bob.UserID)) {
			t.Fatalf("state_after members %v", got)
		}
	})
	t.Run("empty state_after is still present", func(t *testing.T) {
		next := fsync(t, alice, query()).NextBatch
		if _, err := bob.UserTyping(t.Context(), room, true, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		raw := fsyncRaw(t, alice, query("since", next, "use_state_after", "true"))
		r := dig(raw, "rooms", "join", room.String())
		if sa, ok := dig(r, "state_after", "events").([]any); !ok || len(sa) != 0 {
			t.Fatalf("state_after %v, want an empty list", dig(r, "state_after"))
		}
	})
	t.Run("left room", func(t *testing.T) {
		next := fsync(t, bob, query()).NextBatch
		if _, err := bob.LeaveRoom(t.Context(), room); err != nil {
			t.Fatal(err)
		}
		raw := fsyncRaw(t, bob, query("since", next, "use_state_after", "true"))
		r := dig(raw, "rooms", "leave", room.String())
		if r == nil || dig(r, "state") != nil || dig(r, "state_after") == nil {
			t.Fatalf("left room %v", r)
		}
	})
	t.Run("bad value", func(t *testing.T) {
		wantMatrixError(t, fsyncErr(t, alice, query("use_state_after", "yes")), mautrix.MInvalidParam, 400)
	})
}

func TestFilterUploadValidationAndStoredIDs(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice, bob := newUser(t, srv, "alice"), newUser(t, srv, "bob")
	room := joinedPair(t, alice, bob, "public_chat")
	first := sendText(t, alice, room, "one", "one")
	sendJSON(t, bob, room, "org.example.ping", map[string]any{})
	sendText(t, bob, room, "two", "two")
	uploadURL := alice.BuildClientURL("v3", "user", alice.UserID, "filter")

	for _, tc := range []struct {
		name, filter string
		code         mautrix.RespError
	}{
		{"limit of the wrong type", `{"room":{"timeline":{"limit":"ten"}}}`, mautrix.MBadJSON},
		{"types not a list", `{"presence":{"types":"m.presence"}}`, mautrix.MBadJSON},
		{"room not an object", `{"room":[]}`, mautrix.MBadJSON},
		{"event_fields of numbers", `{"event_fields":[1]}`, mautrix.MBadJSON},
		{"contains_url a string", `{"room":{"timeline":{"contains_url":"yes"}}}`, mautrix.MBadJSON},
		{"negative limit", `{"room":{"state":{"limit":-1}}}`, mautrix.MInvalidParam},
		{"unknown event_format", `{"event_format":"pdu"}`, mautrix.MInvalidParam},
		{"not a room ID", `{"room":{"rooms":["#alias:localhost"]}}`, mautrix.MInvalidParam},
		{"not a user ID", `{"room":{"timeline":{"not_senders":["bob"]}}}`, mautrix.MInvalidParam},
		{"empty event_fields path", `{"event_fields":[""]}`, mautrix.MInvalidParam},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body json.RawMessage = []byte(tc.filter)
			_, err := alice.MakeRequest(t.Context(), http.MethodPost, uploadURL, body, nil)
			wantMatrixError(t, err, tc.code, 400)
			wantMatrixError(t, fsyncErr(t, alice, query("filter", tc.filter)), tc.code, 400)
		})
	}
	for _, tc := range []struct {
		name, filter string
		code         mautrix.RespError
	}{
		{"wrong type", `{"senders":"` + bob.UserID.String() + `"}`, mautrix.MBadJSON},
		{"negative limit", `{"limit":-3}`, mautrix.MInvalidParam},
		{"bad room", `{"rooms":["x"]}`, mautrix.MInvalidParam},
		{"unknown filter ID", `12345`, mautrix.MInvalidParam},
	} {
		t.Run("/messages and /context: "+tc.name, func(t *testing.T) {
			url := alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", room, "messages"}, query("dir", "b", "filter", tc.filter))
			_, err := alice.MakeRequest(t.Context(), http.MethodGet, url, nil, nil)
			wantMatrixError(t, err, tc.code, 400)
			url = alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", room, "context", first}, query("filter", tc.filter))
			_, err = alice.MakeRequest(t.Context(), http.MethodGet, url, nil, nil)
			wantMatrixError(t, err, tc.code, 400)
		})
	}
	t.Run("unknown filter ID on /sync", func(t *testing.T) {
		wantMatrixError(t, fsyncErr(t, alice, query("filter", "424242")), mautrix.MInvalidParam, 400)
	})

	t.Run("stored filter on /sync, /messages and /context", func(t *testing.T) {
		stored := `{"room":{"timeline":{"types":["m.room.message"],"senders":["` + bob.UserID.String() + `"]},"state":{"types":["m.room.create"]}}}`
		var created mautrix.RespCreateFilter
		if _, err := alice.MakeRequest(t.Context(), http.MethodPost, uploadURL, json.RawMessage(stored), &created); err != nil {
			t.Fatal(err)
		}
		var back map[string]any
		if _, err := alice.MakeRequest(t.Context(), http.MethodGet, alice.BuildClientURL("v3", "user", alice.UserID, "filter", created.FilterID), nil, &back); err != nil {
			t.Fatal(err)
		}
		if dig(back, "room", "timeline", "types") == nil {
			t.Fatalf("stored filter reads back as %v", back)
		}
		jr := joined(t, fsync(t, alice, query("filter", created.FilterID)), room)
		if got := messageBodies(jr.Timeline.Events); !slices.Equal(got, []string{"two"}) || len(jr.Timeline.Events) != 1 {
			t.Fatalf("timeline under the stored filter: %v", evTypes(jr.Timeline.Events))
		}
		if got := stateKeys(jr.State.Events); !slices.Equal(got, []string{"m.room.create|"}) {
			t.Fatalf("state under the stored filter: %v", got)
		}
		msgs := filteredMessages(t, alice, room, query("dir", "b", "filter", created.FilterID))
		if got := messageBodies(msgs.Chunk); !slices.Equal(got, []string{"two"}) || len(msgs.Chunk) != 1 {
			t.Fatalf("/messages under the stored filter: %v", evTypes(msgs.Chunk))
		}
		var ctxResp mautrix.RespContext
		url := alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", room, "context", first}, query("filter", created.FilterID, "limit", "10"))
		if _, err := alice.MakeRequest(t.Context(), http.MethodGet, url, nil, &ctxResp); err != nil {
			t.Fatal(err)
		}
		if got := messageBodies(ctxResp.EventsAfter); !slices.Equal(got, []string{"two"}) || len(ctxResp.EventsAfter) != 1 || len(ctxResp.EventsBefore) != 0 {
			t.Fatalf("/context under the stored filter: before %v after %v", evTypes(ctxResp.EventsBefore), evTypes(ctxResp.EventsAfter))
		}
		// Another user's filter ID means nothing here.
		var bobs mautrix.RespCreateFilter
		if _, err := bob.MakeRequest(t.Context(), http.MethodPost, bob.BuildClientURL("v3", "user", bob.UserID, "filter"), json.RawMessage(`{"room":{"rooms":[]}}`), &bobs); err != nil {
			t.Fatal(err)
		}
		if bobs.FilterID == created.FilterID {
			if jr := fsync(t, alice, query("filter", bobs.FilterID)).Rooms.Join[room]; jr == nil {
				t.Fatal("alice's sync used bob's filter")
			}
		}
	})
}

func TestFilterMessages(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, "")
	alice, bob := newUser(t, srv, "alice"), newUser(t, srv, "bob")
	room := joinedPair(t, alice, bob, "public_chat")
	var want []string
	for i := range 6 {
		cli := alice
		if i%2 == 1 {
			cli = bob
		}
		body := fmt.Sprintf("%s-%d", cli.UserID.Localpart(), i)
		sendText(t, cli, room, body, body)
		want = append(want, body)
		sendJSON(t, cli, room, "org.example.noise", map[string]any{"i": i})
	}
	sendJSON(t, bob, room, "m.room.message", map[string]any{"msgtype": "m.file", "body": "file", "url": "mxc://localhost/f"})
	want = append(want, "file")

	page := func(t *testing.T, dir, filter string, limit int) []string {
		t.Helper()
		var out []string
		from := ""
		for range 50 {
			q := query("dir", dir, "limit", fmt.Sprint(limit), "filter", filter)
			if from != "" {
				q["from"] = from
			}
			resp := filteredMessages(t, alice, room, q)
			for _, ev := range resp.Chunk {
				if ev.Type != event.EventMessage {
					t.Fatalf("filter %s let %s through", filter, ev.Type.Type)
				}
				out = append(out, bodyOf(ev))
			}
			if resp.End == "" {
				return out
			}
			from = resp.End
		}
		t.Fatal("pagination never ended")
		return nil
	}
	reversed := slices.Clone(want)
	slices.Reverse(reversed)
	t.Run("types, paged backward", func(t *testing.T) {
		if got := page(t, "b", `{"types":["m.room.message"]}`, 2); !slices.Equal(got, reversed) {
			t.Fatalf("pages %q, want %q", got, reversed)
		}
	})
	t.Run("types, paged forward", func(t *testing.T) {
		if got := page(t, "f", `{"types":["m.room.message"]}`, 3); !slices.Equal(got, want) {
			t.Fatalf("pages %q, want %q", got, want)
		}
	})
	t.Run("senders and not_types", func(t *testing.T) {
		got := page(t, "b", `{"senders":["`+bob.UserID.String()+`"],"not_types":["org.*","m.room.member"]}`, 2)
		var wantBob []string
		for _, b := range reversed {
			if strings.HasPrefix(b, "bob") || b == "file" {
				wantBob = append(wantBob, b)
			}
		}
		if !slices.Equal(got, wantBob) {
			t.Fatalf("bob's messages %q, want %q", got, wantBob)
		}
	})
	t.Run("contains_url", func(t *testing.T) {
		if got := page(t, "b", `{"contains_url":true}`, 5); !slices.Equal(got, []string{"file"}) {
			t.Fatalf("with url %q", got)
		}
	})
	t.Run("not_rooms", func(t *testing.T) {
		resp := filteredMessages(t, alice, room, query("dir", "b", "filter", `{"not_rooms":["`+room.String()+`"]}`))
		if len(resp.Chunk) != 0 || resp.End != "" {
			t.Fatalf("excluded room: %d events, end %q", len(resp.Chunk), resp.End)
		}
	})
	t.Run("context uses the same filter", func(t *testing.T) {
		msgs := filteredMessages(t, alice, room, query("dir", "b", "limit", "1", "filter", `{"contains_url":true}`))
		var ctxResp mautrix.RespContext
		url := alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", room, "context", msgs.Chunk[0].ID}, query("limit", "4", "filter", `{"types":["m.room.message"],"senders":["`+alice.UserID.String()+`"]}`))
		if _, err := alice.MakeRequest(t.Context(), http.MethodGet, url, nil, &ctxResp); err != nil {
			t.Fatal(err)
		}
		if got := messageBodies(ctxResp.EventsBefore); !slices.Equal(got, []string{"alice-4", "alice-2"}) {
			t.Fatalf("/context events_before %q", got)
		}
	})
}
