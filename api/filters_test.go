package api

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"chronicle/projections/rooms"
)

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"m.room.message", "m.room.message", true},
		{"m.room.message", "m.room.messages", false},
		{"m.room.*", "m.room.message", true},
		{"m.room.*", "m.room.", true},
		{"m.room.*", "m.roomx", false},
		{"*", "", true},
		{"*", "anything", true},
		{"*.message", "m.room.message", true},
		{"*.message", "m.room.messages", false},
		{"m.*.member", "m.room.member", true},
		{"m.*.member", "m.room.message", false},
		{"m.*.*", "m.room.member", true},
		{"m.*.*", "m.room", false},
		{"a*a", "a", false}, // the prefix and suffix must not overlap
		{"a*a", "aa", true},
		{"", "", true},
		{"", "x", false},
	} {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func list(s ...string) *[]string { return &s }

func TestEventFilterMatching(t *testing.T) {
	type ev struct{ typ, sender string }
	msg := ev{"m.room.message", "@alice:x"}
	name := ev{"m.room.name", "@bob:x"}
	custom := ev{"org.example.thing", "@carol:x"}
	noSender := ev{"m.typing", ""}
	all := []ev{msg, name, custom, noSender}
	for _, tc := range []struct {
		name string
		f    eventFilter
		want []ev
	}{
		{"empty filter allows all", eventFilter{}, all},
		{"types", eventFilter{Types: list("m.room.message", "m.typing")}, []ev{msg, noSender}},
		{"types wildcard", eventFilter{Types: list("m.room.*")}, []ev{msg, name}},
		{"empty types allows none", eventFilter{Types: list()}, nil},
		{"not_types", eventFilter{NotTypes: []string{"m.room.name"}}, []ev{msg, custom, noSender}},
		{"not_types wildcard", eventFilter{NotTypes: []string{"m.*"}}, []ev{custom}},
		{"not_types wins over types", eventFilter{Types: list("m.room.*"), NotTypes: []string{"m.room.message"}}, []ev{name}},
		{"not_types wildcard wins over exact types", eventFilter{Types: list("m.room.message"), NotTypes: []string{"*"}}, nil},
		{"senders", eventFilter{Senders: list("@alice:x", "@carol:x")}, []ev{msg, custom}},
		{"senders take no wildcard", eventFilter{Senders: list("@*")}, nil},
		{"empty senders allows none", eventFilter{Senders: list()}, nil},
		{"not_senders", eventFilter{NotSenders: []string{"@alice:x"}}, []ev{name, custom, noSender}},
		{"not_senders wins over senders", eventFilter{Senders: list("@alice:x", "@bob:x"), NotSenders: []string{"@alice:x"}}, []ev{name}},
		{"types and senders both apply", eventFilter{Types: list("m.room.*"), Senders: list("@bob:x", "@carol:x")}, []ev{name}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []ev
			for _, e := range all {
				if tc.f.matches(e.typ, e.sender) {
					got = append(got, e)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("kept %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRoomEventFilterMatching(t *testing.T) {
	yes, no := true, false
	mk := func(room, content string) *rooms.Event {
		return &rooms.Event{RoomID: room, Type: "m.room.message", Sender: "@a:x", Content: json.RawMessage(content)}
	}
	image := mk("!a", `{"msgtype":"m.image","url":"mxc://x/y"}`)
	text := mk("!a", `{"msgtype":"m.text","body":"hi"}`)
	badURL := mk("!a", `{"url":5}`)
	other := mk("!b", `{"body":"elsewhere"}`)
	all := []*rooms.Event{image, text, badURL, other}
	for _, tc := range []struct {
		name string
		f    roomEventFilter
		want []*rooms.Event
	}{
		{"empty", roomEventFilter{}, all},
		{"rooms", roomEventFilter{Rooms: list("!a")}, []*rooms.Event{image, text, badURL}},
		{"empty rooms allows none", roomEventFilter{Rooms: list()}, nil},
		{"not_rooms", roomEventFilter{NotRooms: []string{"!a"}}, []*rooms.Event{other}},
		{"not_rooms wins over rooms", roomEventFilter{Rooms: list("!a", "!b"), NotRooms: []string{"!a"}}, []*rooms.Event{other}},
		{"contains_url true needs a string url", roomEventFilter{ContainsURL: &yes}, []*rooms.Event{image}},
		{"contains_url false", roomEventFilter{ContainsURL: &no}, []*rooms.Event{text, badURL, other}},
		{"contains_url with rooms", roomEventFilter{ContainsURL: &no, NotRooms: []string{"!b"}}, []*rooms.Event{text, badURL}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []*rooms.Event
			for _, ev := range all {
				if tc.f.matchesEvent(ev) {
					got = append(got, ev)
				}
				ce := (viewer{}).render(ev)
				if tc.f.matchesRendered(ev.RoomID, &ce) != tc.f.matchesEvent(ev) {
					t.Errorf("matchesRendered disagrees with matchesEvent on %s", ev.Content)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("kept %d events, want %d", len(got), len(tc.want))
			}
		})
	}
}

func TestRoomFilterIncludesRoom(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    roomFilter
		in   []string
	}{
		{"all", roomFilter{}, []string{"!a", "!b", "!c"}},
		{"rooms", roomFilter{Rooms: list("!a", "!c")}, []string{"!a", "!c"}},
		{"not_rooms", roomFilter{NotRooms: []string{"!b"}}, []string{"!a", "!c"}},
		{"not_rooms wins", roomFilter{Rooms: list("!a", "!b"), NotRooms: []string{"!a"}}, []string{"!b"}},
	} {
		var got []string
		for _, id := range []string{"!a", "!b", "!c"} {
			if tc.f.includesRoom(id) {
				got = append(got, id)
			}
		}
		if !slices.Equal(got, tc.in) {
			t.Errorf("%s: included %v, want %v", tc.name, got, tc.in)
		}
	}
}

func TestFilterBasic(t *testing.T) {
	evs := []basicEvent{{Type: "m.typing"}, {Type: "m.receipt"}, {Type: "m.presence", Sender: "@a:x"}, {Type: "m.presence", Sender: "@b:x"}}
	types := func(evs []basicEvent) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.Type+e.Sender)
		}
		return out
	}
	two, zero := 2, 0
	for _, tc := range []struct {
		name   string
		f      eventFilter
		room   *roomEventFilter
		roomID string
		want   []string
	}{
		{"nothing", eventFilter{}, nil, "", types(evs)},
		{"types", eventFilter{Types: list("m.typing")}, nil, "", []string{"m.typing"}},
		{"limit", eventFilter{Limit: &two}, nil, "", []string{"m.typing", "m.receipt"}},
		{"limit counts passing events", eventFilter{Limit: &two, NotTypes: []string{"m.typing"}}, nil, "", []string{"m.receipt", "m.presence@a:x"}},
		{"limit 0", eventFilter{Limit: &zero}, nil, "", nil},
		{"senders drop sender-less events", eventFilter{Senders: list("@b:x")}, nil, "", []string{"m.presence@b:x"}},
		{"not_senders", eventFilter{NotSenders: []string{"@a:x"}}, nil, "", []string{"m.typing", "m.receipt", "m.presence@b:x"}},
		{"room excluded", eventFilter{}, &roomEventFilter{NotRooms: []string{"!r"}}, "!r", nil},
		{"room included", eventFilter{}, &roomEventFilter{Rooms: list("!r")}, "!r", types(evs)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := types(filterBasic(evs, &tc.f, tc.room, tc.roomID)); !slices.Equal(got, tc.want) {
				t.Fatalf("kept %v, want %v", got, tc.want)
			}
		})
	}
}

// errcodeOf returns the Matrix error code of err ("" for nil).
func errcodeOf(err error) string {
	if err == nil {
		return ""
	}
	var me *Error
	if errors.As(err, &me) {
		return me.Code
	}
	return "not a Matrix error: " + err.Error()
}

func TestFilterValidation(t *testing.T) {
	for _, tc := range []struct {
		name, json, want string
	}{
		{"empty object", `{}`, ""},
		{"spec example", `{"room":{"state":{"types":["m.room.*"],"not_rooms":["!726s6s6q:example.com"]},"timeline":{"limit":10,"types":["m.room.message"],"not_rooms":["!726s6s6q:example.com"],"not_senders":["@spam:example.com"]},"ephemeral":{"types":["m.receipt","m.typing"],"not_rooms":["!726s6s6q:example.com"],"not_senders":["@spam:example.com"]}},"presence":{"types":["m.presence"],"not_senders":["@alice:example.com"]},"event_format":"client","event_fields":["type","content","sender"]}`, ""},
		{"every field", `{"event_fields":["content.body","type"],"event_format":"federation","presence":{"limit":1,"types":[],"not_types":["x"],"senders":["@a:x"],"not_senders":["@b:x"]},"account_data":{"limit":3},"room":{"rooms":["!a"],"not_rooms":["!b"],"include_leave":true,"ephemeral":{"limit":2},"state":{"lazy_load_members":true,"include_redundant_members":true},"timeline":{"limit":5,"contains_url":true,"lazy_load_members":false,"unread_thread_notifications":true,"rooms":["!c"],"not_rooms":[]},"account_data":{"types":["m.tag"]}}}`, ""},
		{"nulls are absent fields", `{"room":null,"presence":{"types":null},"event_fields":null}`, ""},
		{"unknown fields are ignored", `{"org.example":1,"room":{"timeline":{"org.example":[]}}}`, ""},
		{"timeline limit 0 is accepted", `{"room":{"timeline":{"limit":0}}}`, ""},
		{"v12 room IDs", `{"room":{"rooms":["!abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"]}}`, ""},

		{"not JSON", `{"room":`, "M_NOT_JSON"},
		{"not an object", `[]`, "M_BAD_JSON"},
		{"a string", `"room"`, "M_BAD_JSON"},
		{"room not an object", `{"room":[]}`, "M_BAD_JSON"},
		{"limit a string", `{"room":{"timeline":{"limit":"ten"}}}`, "M_BAD_JSON"},
		{"limit a fraction", `{"room":{"timeline":{"limit":1.5}}}`, "M_BAD_JSON"},
		{"types a string", `{"presence":{"types":"m.presence"}}`, "M_BAD_JSON"},
		{"types of numbers", `{"room":{"state":{"types":[1]}}}`, "M_BAD_JSON"},
		{"include_leave a string", `{"room":{"include_leave":"true"}}`, "M_BAD_JSON"},
		{"lazy_load_members a number", `{"room":{"state":{"lazy_load_members":1}}}`, "M_BAD_JSON"},
		{"contains_url a string", `{"room":{"timeline":{"contains_url":"yes"}}}`, "M_BAD_JSON"},
		{"event_fields a string", `{"event_fields":"content"}`, "M_BAD_JSON"},
		{"event_format a number", `{"event_format":1}`, "M_BAD_JSON"},
		{"not_rooms an object", `{"room":{"not_rooms":{}}}`, "M_BAD_JSON"},

		{"negative timeline limit", `{"room":{"timeline":{"limit":-1}}}`, "M_INVALID_PARAM"},
		{"negative presence limit", `{"presence":{"limit":-5}}`, "M_INVALID_PARAM"},
		{"negative account_data limit", `{"account_data":{"limit":-1}}`, "M_INVALID_PARAM"},
		{"negative ephemeral limit", `{"room":{"ephemeral":{"limit":-1}}}`, "M_INVALID_PARAM"},
		{"negative state limit", `{"room":{"state":{"limit":-1}}}`, "M_INVALID_PARAM"},
		{"negative room account_data limit", `{"room":{"account_data":{"limit":-1}}}`, "M_INVALID_PARAM"},
		{"unknown event_format", `{"event_format":"xml"}`, "M_INVALID_PARAM"},
		{"empty event_fields path", `{"event_fields":["type",""]}`, "M_INVALID_PARAM"},
		{"room ID without sigil", `{"room":{"rooms":["abc:x"]}}`, "M_INVALID_PARAM"},
		{"user ID as room", `{"room":{"not_rooms":["@a:x"]}}`, "M_INVALID_PARAM"},
		{"bare sigil", `{"room":{"timeline":{"rooms":["!"]}}}`, "M_INVALID_PARAM"},
		{"sender without sigil", `{"room":{"timeline":{"senders":["alice"]}}}`, "M_INVALID_PARAM"},
		{"not_sender without sigil", `{"presence":{"not_senders":["!room:x"]}}`, "M_INVALID_PARAM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFilter([]byte(tc.json))
			if got := errcodeOf(err); got != tc.want {
				t.Fatalf("parseFilter(%s): %q (%v), want %q", tc.json, got, err, tc.want)
			}
		})
	}
}

func TestRoomEventFilterValidation(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{}`, ""},
		{`{"types":["m.room.message"],"lazy_load_members":true,"contains_url":false,"limit":0}`, ""},
		{`{"contains_url":"true"}`, "M_BAD_JSON"},
		{`{"senders":"@a:x"}`, "M_BAD_JSON"},
		{`[{}]`, "M_BAD_JSON"},
		{`{nope`, "M_NOT_JSON"},
		{`{"limit":-1}`, "M_INVALID_PARAM"},
		{`{"not_rooms":["room"]}`, "M_INVALID_PARAM"},
		{`{"not_senders":[""]}`, "M_INVALID_PARAM"},
	} {
		_, err := parseRoomEventFilter([]byte(tc.json))
		if got := errcodeOf(err); got != tc.want {
			t.Errorf("parseRoomEventFilter(%s): %q (%v), want %q", tc.json, got, err, tc.want)
		}
	}
}

func TestParseFieldPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"type", []string{"type"}},
		{"content.body", []string{"content", "body"}},
		{`content.m\.relates_to`, []string{"content", "m.relates_to"}},
		{`content.m\\foo`, []string{"content", `m\foo`}},
		{`content.m\\.foo`, []string{"content", `m\`, "foo"}},
		{`content.\x`, []string{"content", `\x`}},
		{`trailing\`, []string{`trailing\`}},
		{"a..b", []string{"a", "", "b"}},
	} {
		if got := parseFieldPath(tc.path); !slices.Equal([]string(got), tc.want) {
			t.Errorf("parseFieldPath(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestFieldTreePick(t *testing.T) {
	event := `{"content":{"body":"hi","m.relates_to":{"rel_type":"m.thread","event_id":"$p"},"n":12345678901234567890},"event_id":"$e","sender":"@a:x","type":"m.room.message","unsigned":{"age":5}}`
	for _, tc := range []struct {
		fields []string
		want   string
	}{
		{[]string{"type", "sender"}, `{"sender":"@a:x","type":"m.room.message"}`},
		{[]string{"content.body"}, `{"content":{"body":"hi"}}`},
		{[]string{`content.m\.relates_to.rel_type`}, `{"content":{"m.relates_to":{"rel_type":"m.thread"}}}`},
		{[]string{"content.body", "content"}, `{"content":{"body":"hi","m.relates_to":{"rel_type":"m.thread","event_id":"$p"},"n":12345678901234567890}}`},
		{[]string{"content", "content.body"}, `{"content":{"body":"hi","m.relates_to":{"rel_type":"m.thread","event_id":"$p"},"n":12345678901234567890}}`},
		{[]string{"content.missing"}, `{"content":{}}`},
		{[]string{"content.body.deeper"}, `{"content":{}}`},
		{[]string{"missing.deeper", "event_id"}, `{"event_id":"$e"}`},
		{[]string{"nothing"}, `{}`},
	} {
		var paths []fieldPath
		for _, f := range tc.fields {
			paths = append(paths, parseFieldPath(f))
		}
		got := buildFieldTree(paths).pick(json.RawMessage(event))
		var gotV, wantV any
		if err := json.Unmarshal(got, &gotV); err != nil {
			t.Fatalf("%v: %s: %v", tc.fields, got, err)
		}
		_ = json.Unmarshal([]byte(tc.want), &wantV)
		gb, _ := json.Marshal(gotV)
		wb, _ := json.Marshal(wantV)
		if string(gb) != string(wb) {
			t.Errorf("event_fields %q kept %s, want %s", tc.fields, got, tc.want)
		}
	}
}

func TestShapedEventMarshals(t *testing.T) {
	evs := []clientEvent{
		{EventID: "$a", Type: "m.room.message", Sender: "@a:x", Content: json.RawMessage(`{"body":"x"}`)},
		{EventID: "$b", Type: "m.room.message", shaped: json.RawMessage(`{"type":"m.room.message"}`)},
	}
	raw, err := json.Marshal(timeline{Events: evs, Limited: true})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"events":[{"content":{"body":"x"},"event_id":"$a","origin_server_ts":0,"sender":"@a:x","type":"m.room.message","unsigned":{"age":0}},{"type":"m.room.message"}],"limited":true}`
	if string(raw) != want {
		t.Fatalf("got  %s\nwant %s", raw, want)
	}
}

func TestLazyMemberCacheFollowsTokens(t *testing.T) {
	var c lazyMemberCache
	const u, d = "@a:x", "DEV"
	// Initial sync (since 0) ends at 10 and sends bob's member event.
	c.link(u, d, 10, 0)
	c.set(u, d, 10, "!r", map[string]string{"@bob:x": "$b1"})
	if got := c.known(u, d, 10, "!r"); got["@bob:x"] != "$b1" {
		t.Fatalf("after 10: %v", got)
	}
	// 10 -> 20 touches another room only: !r is inherited.
	c.link(u, d, 20, 10)
	c.set(u, d, 20, "!other", map[string]string{"@carol:x": "$c1"})
	if got := c.known(u, d, 20, "!r"); got["@bob:x"] != "$b1" {
		t.Fatalf("after 20, !r: %v", got)
	}
	// A response from 10 the client never used (ending at 25) sends dave;
	// the client retries from 10 and gets 30 without dave.
	c.link(u, d, 25, 10)
	c.set(u, d, 25, "!r", map[string]string{"@bob:x": "$b1", "@dave:x": "$d1"})
	c.link(u, d, 30, 10)
	if got := c.known(u, d, 30, "!r"); got["@dave:x"] != "" || got["@bob:x"] != "$b1" {
		t.Fatalf("after the retried 30: %v (dave must not count)", got)
	}
	// Two responses with different since tokens ending at one position:
	// nothing is known there.
	c.link(u, d, 40, 30)
	c.link(u, d, 40, 20)
	if got := c.known(u, d, 40, "!r"); got != nil {
		t.Fatalf("ambiguous 40: %v", got)
	}
	// Two writes of one room at one token keep what both agree on.
	c.link(u, d, 50, 30)
	c.set(u, d, 50, "!r", map[string]string{"@bob:x": "$b1", "@eve:x": "$e1"})
	c.set(u, d, 50, "!r", map[string]string{"@bob:x": "$b2", "@eve:x": "$e1"})
	if got := c.known(u, d, 50, "!r"); len(got) != 1 || got["@eve:x"] != "$e1" {
		t.Fatalf("twice-written 50: %v", got)
	}
	// A sync that ends where it started (nothing new) changes nothing.
	c.link(u, d, 50, 50)
	if got := c.known(u, d, 50, "!r"); got["@eve:x"] != "$e1" {
		t.Fatalf("50 after an empty sync: %v", got)
	}
	// Other devices and unknown tokens know nothing.
	if c.known(u, "OTHER", 10, "!r") != nil || c.known(u, d, 999, "!r") != nil {
		t.Fatal("unknown device or token should know nothing")
	}
	// Old tokens are dropped beyond the bound; the chain then ends.
	for i := uint64(0); i < maxLazyTokens+2; i++ {
		c.link(u, d, 100+i+1, 100+i)
	}
	if c.known(u, d, 10, "!r") != nil {
		t.Fatal("token 10 should have been dropped")
	}
	// The entry count follows what is held.
	c.set(u, "D2", 7, "!r", map[string]string{"@x:x": "$x", "@y:x": "$y"})
	sum := 0
	for _, dm := range c.devices {
		n := 0
		for _, byRoom := range dm.rooms {
			for _, m := range byRoom {
				n += len(m)
			}
		}
		if n != dm.entries {
			t.Fatalf("device counts %d entries, holds %d", dm.entries, n)
		}
		sum += n
	}
	if sum != c.entries || sum != 2 {
		t.Fatalf("cache counts %d entries, holds %d (want 2: the first device's were dropped with their tokens)", c.entries, sum)
	}
	if !c.evictOldest("") || c.entries != 2 || !c.evictOldest("") || c.entries != 0 || c.evictOldest("") {
		t.Fatalf("evicting every device leaves %d entries", c.entries)
	}
}
