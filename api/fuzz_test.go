package api_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"chronicle/api/apitest"
)

// biFuzzEndpoint is one endpoint the fuzzer posts bodies to.
type biFuzzEndpoint struct {
	method string
	path   func() string // fresh per request (unique transaction IDs)
	auth   bool
}

// FuzzRequestBodies sends arbitrary bodies to the JSON-taking endpoints of
// one real server and checks that the server never fails (5xx), always
// answers JSON, answers errors as Matrix errors, and never appends to the
// log for a request it refused.
//
// The input is (endpoint index, body). Endpoints, by index mod 13:
//
//	0 POST /register          4 PUT  /rooms/{A}/state/m.room.topic/   8 POST /keys/upload
//	1 POST /login             5 POST /rooms/{A}/invite                9 POST /keys/query
//	2 POST /createRoom        6 POST /join/{B}                       10 POST /keys/claim
//	3 PUT  /rooms/{A}/send/…  7 POST /rooms/{B}/leave                11 PUT  /profile/{me}/displayname
//	                                                                 12 PUT  /profile/{me}/org.example.fuzz
//
// Room A is where sends go and is never left; room B is public, so join and
// leave may alternate on it. /logout is excluded so the token stays valid.
func FuzzRequestBodies(f *testing.F) {
	srv := apitest.Start(f, "")
	c := biNewClient(srv)
	token := c.register(f, "fuzzer", "fuzz password")
	roomA := c.createRoom(f, token, map[string]any{"preset": "private_chat"})
	roomB := c.createRoom(f, token, map[string]any{"preset": "public_chat"})

	var txn atomic.Uint64
	endpoints := []biFuzzEndpoint{
		{"POST", func() string { return biPrefix + "/register" }, false},
		{"POST", func() string { return biPrefix + "/login" }, false},
		{"POST", func() string { return biPrefix + "/createRoom" }, true},
		{"PUT", func() string { return fmt.Sprintf("%s/send/m.room.message/fuzz%d", biRoomPath(roomA), txn.Add(1)) }, true},
		{"PUT", func() string { return biRoomPath(roomA) + "/state/m.room.topic/" }, true},
		{"POST", func() string { return biRoomPath(roomA) + "/invite" }, true},
		{"POST", func() string { return biPrefix + "/join/" + url.PathEscape(roomB) }, true},
		{"POST", func() string { return biRoomPath(roomB) + "/leave" }, true},
		{"POST", func() string { return biPrefix + "/keys/upload" }, true},
		{"POST", func() string { return biPrefix + "/keys/query" }, true},
		{"POST", func() string { return biPrefix + "/keys/claim" }, true},
		{"PUT", func() string { return biPrefix + "/profile/@fuzzer:localhost/displayname" }, true},
		{"PUT", func() string { return biPrefix + "/profile/@fuzzer:localhost/org.example.fuzz" }, true},
	}

	for _, seed := range biFuzzSeeds() {
		for i := range endpoints {
			f.Add(uint8(i), seed)
		}
	}

	f.Fuzz(func(t *testing.T, idx uint8, body []byte) {
		ep := endpoints[int(idx)%len(endpoints)]
		method, path := ep.method, ep.path()
		tok := ""
		if ep.auth {
			tok = token
		}
		before := c.head()
		resp, err := c.do(method, path, tok, body, false)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		after := c.head()
		if resp.Status >= 500 {
			t.Fatalf("%s %s with body %q: status %d, body %s", method, path, biTrunc(body), resp.Status, biTrunc(resp.Body))
		}
		if !json.Valid(resp.Body) {
			t.Fatalf("%s %s with body %q: status %d, response is not JSON: %q", method, path, biTrunc(body), resp.Status, biTrunc(resp.Body))
		}
		if resp.Status == 200 {
			var obj map[string]any
			if err := json.Unmarshal(resp.Body, &obj); err != nil {
				t.Fatalf("%s %s: 200 response is not a JSON object: %q", method, path, biTrunc(resp.Body))
			}
			return
		}
		if after != before {
			t.Errorf("%s %s with body %q: refused with %d but the log head moved from %d to %d", method, path, biTrunc(body), resp.Status, before, after)
		}
		if resp.Status == 401 && !ep.auth {
			// /register's user-interactive auth challenge: flows, no errcode.
			var uia struct {
				Flows   []json.RawMessage `json:"flows"`
				Session string            `json:"session"`
			}
			if err := json.Unmarshal(resp.Body, &uia); err == nil && len(uia.Flows) > 0 && uia.Session != "" {
				return
			}
		}
		code, err := biErrorBody(resp.Body)
		if err != nil {
			t.Fatalf("%s %s with body %q: status %d: %v", method, path, biTrunc(body), resp.Status, err)
		}
		if !strings.HasPrefix(code, "M_") {
			t.Fatalf("%s %s with body %q: status %d: errcode %q does not start with M_", method, path, biTrunc(body), resp.Status, code)
		}
	})
}

// biFuzzSeeds are bodies every endpoint is seeded with: valid ones for each
// endpoint (so mutations start from accepted shapes), malformed JSON,
// wrong types, deep nesting, huge numbers, unicode and NULs. Successful
// /register seeds carry no password: bcrypt would make seeds slow.
func biFuzzSeeds() [][]byte {
	s := []string{
		// Valid bodies.
		`{"auth":{"type":"m.login.dummy"}}`,
		`{"username":"seeduser","auth":{"type":"m.login.dummy"},"inhibit_login":true}`,
		`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"fuzzer"},"password":"wrong"}`,
		`{"type":"m.login.password","user":"nobody","password":"x"}`,
		`{}`,
		`{"name":"room","topic":"t","preset":"public_chat","visibility":"public"}`,
		`{"initial_state":[{"type":"m.room.topic","state_key":"","content":{"topic":"x"}}],"invite":["@nobody:localhost"],"is_direct":true}`,
		`{"creation_content":{"m.federate":false},"power_level_content_override":{"users_default":5},"room_version":"10"}`,
		`{"msgtype":"m.text","body":"hello"}`,
		`{"topic":"a topic"}`,
		`{"user_id":"@nobody:localhost","reason":"r"}`,
		`{"reason":"bye"}`,
		`{"one_time_keys":{"signed_curve25519:AAAA":{"key":"k","signatures":{"@fuzzer:localhost":{"ed25519:X":"s"}}}},"fallback_keys":{"signed_curve25519:F":"f"}}`,
		`{"device_keys":{"@fuzzer:localhost":[]}}`,
		`{"one_time_keys":{"@fuzzer:localhost":{"X":"signed_curve25519"}}}`,
		`{"displayname":"Fuzzy"}`,
		`{"org.example.fuzz":{"n":[1,2.5,"x"]}}`,
		// Malformed.
		``, ` `, `{`, `}`, `{"a":}`, `{"a" 1}`, `{"a":1,}`, `[1,]`, `{} {}`, `nul`, `tru`, `'x'`, `{"a":"\x"}`,
		`{"a":"unterminated}`, "\xef\xbb\xbf{}", `{"a":01}`, `{"a":NaN}`, `{"a":Infinity}`, `{a:1}`,
		// Wrong types and shapes.
		`null`, `true`, `0`, `-1`, `"str"`, `[]`, `[{}]`, `{"username":5}`, `{"username":["a"]}`, `{"auth":"dummy"}`,
		`{"auth":{"type":5}}`, `{"identifier":"fuzzer","type":"m.login.password"}`, `{"type":["m.login.password"]}`,
		`{"name":5}`, `{"invite":"x"}`, `{"invite":[5]}`, `{"initial_state":{}}`, `{"initial_state":[{"type":"x","content":"y"}]}`,
		`{"creation_content":[]}`, `{"power_level_content_override":"x"}`, `{"room_version":12}`, `{"room_version":"1"}`,
		`{"preset":"x"}`, `{"visibility":null}`, `{"is_direct":"yes"}`, `{"user_id":5}`, `{"user_id":""}`, `{"user_id":"@"}`,
		`{"user_id":"@a:"}`, `{"user_id":"@:localhost"}`, `{"reason":5}`, `{"body":null,"msgtype":{}}`, `{"topic":{"topic":"x"}}`,
		`{"a":1,"a":2}`, `{"username":"x","username":"y","auth":{"type":"m.login.dummy"}}`,
		// Huge and odd numbers.
		`{"n":1e400}`, `{"n":-1e400}`, `{"n":123456789012345678901234567890}`, `{"n":9007199254740993}`,
		`{"n":-9007199254740993}`, `{"n":1.5}`, `{"n":-0}`, `{"n":1e-400}`, `{"n":0.1e1}`,
		`{"users_default":1e400}`, `{"power_level_content_override":{"users_default":1e400}}`,
		`{"power_level_content_override":{"users":{"@fuzzer:localhost":9007199254740993}}}`,
		`{"power_level_content_override":{"users":{"@fuzzer:localhost":1.5}}}`,
		// Unicode, escapes and NULs.
		`{"body":"héllo wörld 漢字 🎉","msgtype":"m.text"}`, `{"topic":"\u0000"}`, `{"body":"a\u0000b"}`,
		`{"\u0000":"key"}`, `{"body":"\ud800"}`, `{"body":"\udc00\ud800"}`, `{"body":"\ud83d\ude00"}`,
		"{\"body\":\"\xff\xfe\"}", "{\"\xff\":1}", "{\"body\":\"a\x00b\"}", "{\"body\":\"\x01\x1f\"}",
		"\x00", "{\"a\":1}\x00", `{"username":"\u0041lice","auth":{"type":"m.login.dummy"}}`,
		`{"username":"ünïcode","auth":{"type":"m.login.dummy"}}`, `{"username":"a\u0000b","auth":{"type":"m.login.dummy"}}`,
		`{"type":"m.login.password","user":"@fuzzer:localhost\u0000","password":"x"}`,
		`{"name":"\ud800","topic":"\u0000"}`, `{"user_id":"@\u0000:localhost"}`,
		`{"creation_content":{"type":"\u0000"}}`, `{"initial_state":[{"type":"\u0000","state_key":"\u0000","content":{}}]}`,
	}
	out := make([][]byte, 0, len(s)+8)
	for _, v := range s {
		out = append(out, []byte(v))
	}
	// Deep nesting, both as the whole body and inside an object.
	out = append(out,
		[]byte(strings.Repeat("[", 100000)+strings.Repeat("]", 100000)),
		[]byte(`{"a":`+strings.Repeat("[", 5000)+strings.Repeat("]", 5000)+`}`),
		[]byte(`{"a":`+strings.Repeat(`{"a":`, 600)+`1`+strings.Repeat("}", 600)+`}`),
		[]byte(`{"creation_content":`+strings.Repeat(`{"a":`, 600)+`1`+strings.Repeat("}", 600)+`}`),
		[]byte(strings.Repeat(`{"a":`, 20000)),
	)
	// Many keys, long strings, an event just over the PDU limit.
	var many strings.Builder
	many.WriteString("{")
	for i := range 2000 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `"k%d":%d`, i, i)
	}
	many.WriteString("}")
	out = append(out, []byte(many.String()), biObject(70*1024), biObject(60*1024))
	return out
}
