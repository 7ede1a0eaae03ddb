package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"chronicle/api/apitest"
)

// Helpers in this file are prefixed "bi" (bad input) so they do not clash
// with helpers in other test files of package api_test. fuzz_test.go uses
// them too.

const biPrefix = "/_matrix/client/v3"

// biClient talks to one test server with plain net/http, so the test
// controls the exact bytes sent.
type biClient struct {
	srv *apitest.Server
	hc  *http.Client
}

func biNewClient(srv *apitest.Server) *biClient {
	return &biClient{srv: srv, hc: &http.Client{Timeout: 30 * time.Second}}
}

// head is the log head: the number of records appended so far.
func (c *biClient) head() uint64 { return c.srv.Node.Machine().Log().Head().Seq }

// biResponse is a response with its body read.
type biResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// biOnlyReader hides bytes.Reader's type so net/http cannot learn the
// length: the request goes out chunked with no Content-Length.
type biOnlyReader struct{ io.Reader }

// do sends one request. token "" sends no credentials; a path may carry
// its own ?access_token=. chunked sends the body without Content-Length.
func (c *biClient) do(method, path, token string, body []byte, chunked bool) (*biResponse, error) {
	var rd io.Reader
	if body != nil {
		if chunked {
			rd = biOnlyReader{bytes.NewReader(body)}
		} else {
			rd = bytes.NewReader(body)
		}
	}
	req, err := http.NewRequest(method, c.srv.URL+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &biResponse{Status: resp.StatusCode, Header: resp.Header, Body: raw}, nil
}

// mustJSON sends a JSON body and requires status 200, returning the
// decoded response object.
func (c *biClient) mustOK(t testing.TB, method, path, token string, body any) map[string]any {
	t.Helper()
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := c.do(method, path, token, raw, false)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("%s %s: status %d, body %s", method, path, resp.Status, resp.Body)
	}
	var out map[string]any
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		t.Fatalf("%s %s: response is not a JSON object: %v: %s", method, path, err, resp.Body)
	}
	return out
}

// register creates a user with a password (one-stage dummy auth) and
// returns its access token.
func (c *biClient) register(t testing.TB, username, password string) string {
	t.Helper()
	out := c.mustOK(t, "POST", biPrefix+"/register", "", map[string]any{
		"username": username, "password": password, "auth": map[string]any{"type": "m.login.dummy"},
	})
	tok, _ := out["access_token"].(string)
	if tok == "" {
		t.Fatalf("register %s: no access token in %v", username, out)
	}
	return tok
}

func (c *biClient) createRoom(t testing.TB, token string, body map[string]any) string {
	t.Helper()
	out := c.mustOK(t, "POST", biPrefix+"/createRoom", token, body)
	roomID, _ := out["room_id"].(string)
	if !strings.HasPrefix(roomID, "!") {
		t.Fatalf("createRoom: bad room_id in %v", out)
	}
	return roomID
}

// biRoomPath is /rooms/{roomId} with the room ID escaped as clients do.
func biRoomPath(roomID string) string { return biPrefix + "/rooms/" + url.PathEscape(roomID) }

// biErrorBody checks that body is a Matrix error object and returns its
// errcode.
func biErrorBody(body []byte) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return "", fmt.Errorf("error body is not a JSON object: %v: %q", err, biTrunc(body))
	}
	var code, msg string
	if err := json.Unmarshal(obj["errcode"], &code); err != nil || code == "" {
		return "", fmt.Errorf("error body has no errcode string: %q", biTrunc(body))
	}
	if err := json.Unmarshal(obj["error"], &msg); err != nil {
		return code, fmt.Errorf("error body has no error string: %q", biTrunc(body))
	}
	return code, nil
}

func biTrunc(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// biObject builds a JSON object {"body": "xxx..."} of exactly n bytes.
func biObject(n int) []byte {
	const pre, post = `{"msgtype":"m.text","body":"`, `"}`
	return []byte(pre + strings.Repeat("x", n-len(pre)-len(post)) + post)
}

type biCase struct {
	name   string
	method string
	path   string
	// token: none, valid (alice), bogus (unknown, header), query (alice's
	// token as ?access_token=), bogusquery (unknown, as ?access_token=),
	// loggedout (a token whose device logged out).
	token       string
	body        []byte
	chunked     bool // send without Content-Length
	wantStatus  int
	wantErrcode string // "" for a success response
	writes      bool   // a success that appends records
}

func TestBadInput(t *testing.T) {
	srv := apitest.Start(t, "")
	c := biNewClient(srv)

	// Setup (writes legitimately): alice with her own room, bob with a
	// private room alice is not in, carol whose token is logged out.
	start := c.head()
	alice := c.register(t, "alice", "correct horse")
	bob := c.register(t, "bob", "bob's password")
	aliceRoom := c.createRoom(t, alice, map[string]any{"preset": "private_chat", "name": "alice's"})
	bobRoom := c.createRoom(t, bob, map[string]any{"preset": "private_chat", "name": "bob's"})
	c.register(t, "carol", "carol's password")
	login := c.mustOK(t, "POST", biPrefix+"/login", "", map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "carol"}, "password": "carol's password",
	})
	loggedOut, _ := login["access_token"].(string)
	c.mustOK(t, "POST", biPrefix+"/logout", loggedOut, map[string]any{})
	// A valid send, to prove the head does move for a good request, so a
	// head that stays put below means something.
	before := c.head()
	c.mustOK(t, "PUT", biRoomPath(aliceRoom)+"/send/m.room.message/setup1", alice, map[string]any{"msgtype": "m.text", "body": "hi"})
	if c.head() <= before || before <= start {
		t.Fatalf("log head does not move for good requests: start %d, before %d, after %d", start, before, c.head())
	}

	tokens := map[string]string{"none": "", "valid": alice, "bogus": "chr_not_a_real_token", "loggedout": loggedOut}
	long := strings.Repeat("a", 300)
	huge := biObject(biMaxBody + 1) // over the 1 MiB request limit
	bigEvent := biObject(70 * 1024) // over the 65536-byte PDU limit, under 1 MiB
	sendA := biRoomPath(aliceRoom) + "/send/m.room.message/"
	stateA := biRoomPath(aliceRoom) + "/state/m.room.topic/"
	txn := 0
	send := func() string { txn++; return fmt.Sprintf("%sbad%d", sendA, txn) }
	b := func(s string) []byte { return []byte(s) }
	dummy := `,"auth":{"type":"m.login.dummy"}`
	profileA := biPrefix + "/profile/@alice:localhost"

	cases := []biCase{
		// Malformed JSON.
		{name: "register/not json", method: "POST", path: "/register", token: "none", body: b(`{"username":`), wantStatus: 400, wantErrcode: "M_NOT_JSON"},
		{name: "register/empty body", method: "POST", path: "/register", token: "none", body: b(``), wantStatus: 400, wantErrcode: "M_NOT_JSON"},
		{name: "register/trailing garbage", method: "POST", path: "/register", token: "none", body: b(`{} x`), wantStatus: 400, wantErrcode: "M_NOT_JSON"},
		{name: "login/not json", method: "POST", path: "/login", token: "none", body: b(`{"type":"m.login.password",`), wantStatus: 400, wantErrcode: "M_NOT_JSON"},
		{name: "login/single quotes", method: "POST", path: "/login", token: "none", body: b(`{'type':'m.login.password'}`), wantStatus: 400, wantErrcode: "M_NOT_JSON"},
		{name: "createRoom/not json", method: "POST", path: "/createRoom", token: "valid", body: b(`{"name":"x"`), wantStatus: 400, wantErrcode: "M_NOT_JSON"},
		{name: "createRoom/empty body", method: "POST", path: "/createRoom", token: "valid", body: b(``), wantStatus: 400, wantErrcode: "M_NOT_JSON"},
		{name: "send/not json", method: "PUT", path: send(), token: "valid", body: b(`{"body":"hi"`), wantStatus: 400, wantErrcode: "M_NOT_JSON"},
		{name: "send/empty body", method: "PUT", path: send(), token: "valid", body: b(``), wantStatus: 400, wantErrcode: "M_NOT_JSON"},
		{name: "state/not json", method: "PUT", path: stateA, token: "valid", body: b(`{"topic":}`), wantStatus: 400, wantErrcode: "M_NOT_JSON"},
		{name: "state/not json with key", method: "PUT", path: biRoomPath(aliceRoom) + "/state/m.room.topic/k", token: "valid", body: b(`nope`), wantStatus: 400, wantErrcode: "M_NOT_JSON"},

		// Well-formed JSON of the wrong shape.
		{name: "register/username number", method: "POST", path: "/register", token: "none", body: b(`{"username":5` + dummy + `}`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "register/body is array", method: "POST", path: "/register", token: "none", body: b(`[]`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "register/auth is string", method: "POST", path: "/register", token: "none", body: b(`{"username":"dave","auth":"m.login.dummy"}`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "login/identifier user number", method: "POST", path: "/login", token: "none", body: b(`{"type":"m.login.password","identifier":{"type":"m.id.user","user":5},"password":"x"}`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "login/password object", method: "POST", path: "/login", token: "none", body: b(`{"type":"m.login.password","user":"alice","password":{}}`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "createRoom/name number", method: "POST", path: "/createRoom", token: "valid", body: b(`{"name":5}`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "createRoom/invite string", method: "POST", path: "/createRoom", token: "valid", body: b(`{"invite":"x"}`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "createRoom/body is string", method: "POST", path: "/createRoom", token: "valid", body: b(`"room"`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "createRoom/unknown preset", method: "POST", path: "/createRoom", token: "valid", body: b(`{"preset":"nope"}`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "createRoom/initial_state content array", method: "POST", path: "/createRoom", token: "valid", body: b(`{"initial_state":[{"type":"m.room.topic","content":[]}]}`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "send/content array", method: "PUT", path: send(), token: "valid", body: b(`[{"body":"hi"}]`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "send/content string", method: "PUT", path: send(), token: "valid", body: b(`"hi"`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "send/content number", method: "PUT", path: send(), token: "valid", body: b(`42`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "send/content null", method: "PUT", path: send(), token: "valid", body: b(`null`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "state/content array", method: "PUT", path: stateA, token: "valid", body: b(`["topic"]`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "state/content string", method: "PUT", path: stateA, token: "valid", body: b(`"topic"`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "invite/user_id number", method: "POST", path: biRoomPath(aliceRoom) + "/invite", token: "valid", body: b(`{"user_id":5}`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},

		// Other invalid parameters on writing endpoints.
		{name: "login/unknown type", method: "POST", path: "/login", token: "none", body: b(`{"type":"m.login.magic","user":"alice"}`), wantStatus: 400, wantErrcode: "M_UNKNOWN"},
		{name: "invite/missing user_id", method: "POST", path: biRoomPath(aliceRoom) + "/invite", token: "valid", body: b(`{}`), wantStatus: 400, wantErrcode: "M_MISSING_PARAM"},
		{name: "invite/invalid user_id", method: "POST", path: biRoomPath(aliceRoom) + "/invite", token: "valid", body: b(`{"user_id":"bob"}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "createRoom/invalid invitee", method: "POST", path: "/createRoom", token: "valid", body: b(`{"invite":["bob"]}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "createRoom/unsupported version", method: "POST", path: "/createRoom", token: "valid", body: b(`{"room_version":"999"}`), wantStatus: 400, wantErrcode: "M_UNSUPPORTED_ROOM_VERSION"},
		{name: "register/guest", method: "POST", path: "/register?kind=guest", token: "none", body: b(`{}`), wantStatus: 403, wantErrcode: "M_GUEST_ACCESS_FORBIDDEN"},

		// End-to-end encryption keys (api/keys.go).
		{name: "keys upload/not json", method: "POST", path: "/keys/upload", token: "valid", body: b(`{"one_time_keys":`), wantStatus: 400, wantErrcode: "M_NOT_JSON"},
		{name: "keys upload/body is array", method: "POST", path: "/keys/upload", token: "valid", body: b(`[]`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "keys upload/body is null", method: "POST", path: "/keys/upload", token: "valid", body: b(`null`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "keys upload/device_keys of another user", method: "POST", path: "/keys/upload", token: "valid",
			body: b(`{"device_keys":{"user_id":"@bob:localhost","device_id":"X","algorithms":[],"keys":{},"signatures":{}}}`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "keys upload/one_time_keys array", method: "POST", path: "/keys/upload", token: "valid", body: b(`{"one_time_keys":["k"]}`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "keys upload/key ID without algorithm", method: "POST", path: "/keys/upload", token: "valid", body: b(`{"one_time_keys":{"AAAA":"k"}}`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "keys upload/NUL in key ID", method: "POST", path: "/keys/upload", token: "valid", body: b(`{"one_time_keys":{"signed_curve25519:a\u0000b":"k"}}`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "keys upload/nothing", method: "POST", path: "/keys/upload", token: "valid", body: b(`{}`), wantStatus: 200},
		{name: "keys upload/no token", method: "POST", path: "/keys/upload", token: "none", body: b(`{}`), wantStatus: 401, wantErrcode: "M_MISSING_TOKEN"},
		{name: "keys query/device_keys string", method: "POST", path: "/keys/query", token: "valid", body: b(`{"device_keys":"all"}`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "keys query/invalid user ID", method: "POST", path: "/keys/query", token: "valid", body: b(`{"device_keys":{"alice":[]}}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "keys query/valid", method: "POST", path: "/keys/query", token: "valid", body: b(`{"device_keys":{"@alice:localhost":[]}}`), wantStatus: 200},
		{name: "keys claim/not json", method: "POST", path: "/keys/claim", token: "valid", body: b(`{`), wantStatus: 400, wantErrcode: "M_NOT_JSON"},
		{name: "keys claim/algorithm number", method: "POST", path: "/keys/claim", token: "valid", body: b(`{"one_time_keys":{"@bob:localhost":{"D":5}}}`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "keys claim/invalid user ID", method: "POST", path: "/keys/claim", token: "valid", body: b(`{"one_time_keys":{"bob":{"D":"signed_curve25519"}}}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "keys claim/nothing to claim", method: "POST", path: "/keys/claim", token: "valid", body: b(`{"one_time_keys":{"@bob:localhost":{"NODEVICE":"signed_curve25519"}}}`), wantStatus: 200},
		{name: "keys changes/missing from", method: "GET", path: "/keys/changes", token: "valid", wantStatus: 400, wantErrcode: "M_MISSING_PARAM"},
		{name: "keys changes/invalid from", method: "GET", path: "/keys/changes?from=garbage&to=s1", token: "valid", wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "keys changes/valid", method: "GET", path: "/keys/changes?from=s1&to=s2", token: "valid", wantStatus: 200},

		// Missing and bad tokens.
		{name: "whoami/no token", method: "GET", path: "/account/whoami", token: "none", wantStatus: 401, wantErrcode: "M_MISSING_TOKEN"},
		{name: "createRoom/no token", method: "POST", path: "/createRoom", token: "none", body: b(`{}`), wantStatus: 401, wantErrcode: "M_MISSING_TOKEN"},
		{name: "sync/no token", method: "GET", path: "/sync", token: "none", wantStatus: 401, wantErrcode: "M_MISSING_TOKEN"},
		{name: "send/no token", method: "PUT", path: send(), token: "none", body: b(`{"body":"hi"}`), wantStatus: 401, wantErrcode: "M_MISSING_TOKEN"},
		{name: "whoami/unknown token", method: "GET", path: "/account/whoami", token: "bogus", wantStatus: 401, wantErrcode: "M_UNKNOWN_TOKEN"},
		{name: "send/unknown token", method: "PUT", path: send(), token: "bogus", body: b(`{"body":"hi"}`), wantStatus: 401, wantErrcode: "M_UNKNOWN_TOKEN"},
		{name: "whoami/unknown token in query", method: "GET", path: "/account/whoami", token: "bogusquery", wantStatus: 401, wantErrcode: "M_UNKNOWN_TOKEN"},
		{name: "createRoom/unknown token in query", method: "POST", path: "/createRoom", token: "bogusquery", body: b(`{}`), wantStatus: 401, wantErrcode: "M_UNKNOWN_TOKEN"},
		{name: "whoami/logged out token", method: "GET", path: "/account/whoami", token: "loggedout", wantStatus: 401, wantErrcode: "M_UNKNOWN_TOKEN"},
		{name: "send/logged out token", method: "PUT", path: send(), token: "loggedout", body: b(`{"body":"hi"}`), wantStatus: 401, wantErrcode: "M_UNKNOWN_TOKEN"},
		{name: "whoami/valid token in query", method: "GET", path: "/account/whoami", token: "query", wantStatus: 200},

		// Unknown endpoints and methods.
		{name: "unknown endpoint", method: "GET", path: "/nope", token: "none", wantStatus: 404, wantErrcode: "M_UNRECOGNIZED"},
		{name: "unknown endpoint with token", method: "POST", path: "/nope", token: "valid", body: b(`{}`), wantStatus: 404, wantErrcode: "M_UNRECOGNIZED"},
		{name: "unknown room endpoint", method: "GET", path: "/rooms/x/nope", token: "none", wantStatus: 404, wantErrcode: "M_UNRECOGNIZED"},
		{name: "unknown room endpoint with token", method: "POST", path: "/rooms/x/nope", token: "valid", body: b(`{}`), wantStatus: 404, wantErrcode: "M_UNRECOGNIZED"},
		{name: "versions/wrong method", method: "PUT", path: "/_matrix/client/versions", token: "none", body: b(`{}`), wantStatus: 405, wantErrcode: "M_UNRECOGNIZED"},
		{name: "login/wrong method", method: "DELETE", path: "/login", token: "none", wantStatus: 405, wantErrcode: "M_UNRECOGNIZED"},
		{name: "send/wrong method", method: "POST", path: send(), token: "valid", body: b(`{"body":"hi"}`), wantStatus: 405, wantErrcode: "M_UNRECOGNIZED"},

		// Login failures.
		{name: "login/wrong password", method: "POST", path: "/login", token: "none", body: b(`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"wrong"}`), wantStatus: 403, wantErrcode: "M_FORBIDDEN"},
		{name: "login/wrong password full user ID", method: "POST", path: "/login", token: "none", body: b(`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"@alice:localhost"},"password":"wrong"}`), wantStatus: 403, wantErrcode: "M_FORBIDDEN"},
		{name: "login/unknown user", method: "POST", path: "/login", token: "none", body: b(`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"nobody"},"password":"x"}`), wantStatus: 403, wantErrcode: "M_FORBIDDEN"},
		{name: "login/unknown user deprecated form", method: "POST", path: "/login", token: "none", body: b(`{"type":"m.login.password","user":"nobody","password":"x"}`), wantStatus: 403, wantErrcode: "M_FORBIDDEN"},

		// Taken and invalid user names.
		{name: "register/taken", method: "POST", path: "/register", token: "none", body: b(`{"username":"alice","password":"x"` + dummy + `}`), wantStatus: 400, wantErrcode: "M_USER_IN_USE"},
		{name: "register/taken without auth", method: "POST", path: "/register", token: "none", body: b(`{"username":"alice","password":"x"}`), wantStatus: 400, wantErrcode: "M_USER_IN_USE"},
		{name: "available/taken", method: "GET", path: "/register/available?username=alice", token: "none", wantStatus: 400, wantErrcode: "M_USER_IN_USE"},
		{name: "register/invalid uppercase and bang", method: "POST", path: "/register", token: "none", body: b(`{"username":"Alice!"` + dummy + `}`), wantStatus: 400, wantErrcode: "M_INVALID_USERNAME"},
		{name: "register/invalid space", method: "POST", path: "/register", token: "none", body: b(`{"username":"has space"` + dummy + `}`), wantStatus: 400, wantErrcode: "M_INVALID_USERNAME"},
		{name: "register/invalid too long", method: "POST", path: "/register", token: "none", body: b(`{"username":"` + long + `"` + dummy + `}`), wantStatus: 400, wantErrcode: "M_INVALID_USERNAME"},
		{name: "available/invalid uppercase and bang", method: "GET", path: "/register/available?username=" + url.QueryEscape("Alice!"), token: "none", wantStatus: 400, wantErrcode: "M_INVALID_USERNAME"},
		{name: "available/invalid space", method: "GET", path: "/register/available?username=" + url.QueryEscape("has space"), token: "none", wantStatus: 400, wantErrcode: "M_INVALID_USERNAME"},
		{name: "available/invalid too long", method: "GET", path: "/register/available?username=" + long, token: "none", wantStatus: 400, wantErrcode: "M_INVALID_USERNAME"},
		{name: "register/password too long", method: "POST", path: "/register", token: "none", body: b(`{"username":"dave","password":"` + strings.Repeat("p", 600) + `"` + dummy + `}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},

		// Rooms one is not in.
		{name: "send/not joined", method: "PUT", path: biRoomPath(bobRoom) + "/send/m.room.message/t1", token: "valid", body: b(`{"msgtype":"m.text","body":"hi"}`), wantStatus: 403, wantErrcode: "M_FORBIDDEN"},
		{name: "state/not joined", method: "PUT", path: biRoomPath(bobRoom) + "/state/m.room.topic/", token: "valid", body: b(`{"topic":"mine now"}`), wantStatus: 403, wantErrcode: "M_FORBIDDEN"},
		{name: "send/nonexistent room", method: "PUT", path: biRoomPath("!doesnotexist:localhost") + "/send/m.room.message/t1", token: "valid", body: b(`{"msgtype":"m.text","body":"hi"}`), wantStatus: 403, wantErrcode: "M_FORBIDDEN"},
		{name: "invite/not joined", method: "POST", path: biRoomPath(bobRoom) + "/invite", token: "valid", body: b(`{"user_id":"@alice:localhost"}`), wantStatus: 403, wantErrcode: "M_FORBIDDEN"},
		{name: "join/private room not invited", method: "POST", path: biPrefix + "/join/" + url.PathEscape(bobRoom), token: "valid", body: b(`{}`), wantStatus: 403, wantErrcode: "M_FORBIDDEN"},
		{name: "messages/not joined", method: "GET", path: biRoomPath(bobRoom) + "/messages?dir=b", token: "valid", wantStatus: 403, wantErrcode: "M_FORBIDDEN"},

		{name: "join/nonexistent room", method: "POST", path: biPrefix + "/join/" + url.PathEscape("!doesnotexist:localhost"), token: "valid", body: b(`{}`), wantStatus: 404, wantErrcode: "M_NOT_FOUND"},
		{name: "join/unknown alias", method: "POST", path: biPrefix + "/join/" + url.PathEscape("#nope:localhost"), token: "valid", body: b(`{}`), wantStatus: 404, wantErrcode: "M_NOT_FOUND"},

		// Invalid identifiers in paths and bodies.
		{name: "send/invalid room ID", method: "PUT", path: biRoomPath("notaroom") + "/send/m.room.message/t1", token: "valid", body: b(`{"body":"hi"}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "send/txn ID too long", method: "PUT", path: sendA + strings.Repeat("t", 300), token: "valid", body: b(`{"body":"hi"}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "send/NUL in event type", method: "PUT", path: biRoomPath(aliceRoom) + "/send/m.room%00message/t1", token: "valid", body: b(`{"body":"hi"}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "state/NUL in state key", method: "PUT", path: biRoomPath(aliceRoom) + "/state/m.room.topic/a%00b", token: "valid", body: b(`{"topic":"x"}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "invite/empty localpart", method: "POST", path: biRoomPath(aliceRoom) + "/invite", token: "valid", body: b(`{"user_id":"@:localhost"}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "invite/NUL in user ID", method: "POST", path: biRoomPath(aliceRoom) + "/invite", token: "valid", body: b(`{"user_id":"@a\u0000b:localhost"}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "invite/space in user ID", method: "POST", path: biRoomPath(aliceRoom) + "/invite", token: "valid", body: b(`{"user_id":"@has space:localhost"}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "createRoom/invitee empty localpart", method: "POST", path: "/createRoom", token: "valid", body: b(`{"invite":["@:localhost"]}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},

		// Valid requests the server should accept (bug reports).
		{name: "createRoom/room version 10", method: "POST", path: "/createRoom", token: "valid", body: b(`{"room_version":"10"}`), wantStatus: 200, writes: true},
		{name: "createRoom/room version 11", method: "POST", path: "/createRoom", token: "valid", body: b(`{"room_version":"11"}`), wantStatus: 200, writes: true},

		// Too large.
		{name: "register/body over 1 MiB", method: "POST", path: "/register", token: "none", body: huge, wantStatus: 413, wantErrcode: "M_TOO_LARGE"},
		{name: "register/body over 1 MiB chunked", method: "POST", path: "/register", token: "none", body: huge, chunked: true, wantStatus: 413, wantErrcode: "M_TOO_LARGE"},
		{name: "send/body over 1 MiB", method: "PUT", path: send(), token: "valid", body: huge, wantStatus: 413, wantErrcode: "M_TOO_LARGE"},
		{name: "send/body over 1 MiB chunked", method: "PUT", path: send(), token: "valid", body: huge, chunked: true, wantStatus: 413, wantErrcode: "M_TOO_LARGE"},
		{name: "send/event over 64 KiB", method: "PUT", path: send(), token: "valid", body: bigEvent, wantStatus: 413, wantErrcode: "M_TOO_LARGE"},
		{name: "state/event over 64 KiB", method: "PUT", path: stateA, token: "valid", body: bigEvent, wantStatus: 413, wantErrcode: "M_TOO_LARGE"},

		// Invalid query parameters.
		{name: "messages/invalid dir", method: "GET", path: biRoomPath(aliceRoom) + "/messages?dir=sideways", token: "valid", wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "messages/missing dir", method: "GET", path: biRoomPath(aliceRoom) + "/messages", token: "valid", wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "messages/invalid from", method: "GET", path: biRoomPath(aliceRoom) + "/messages?dir=b&from=garbage", token: "valid", wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "messages/negative limit", method: "GET", path: biRoomPath(aliceRoom) + "/messages?dir=b&limit=-1", token: "valid", wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "sync/invalid since", method: "GET", path: "/sync?since=garbage", token: "valid", wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "sync/since overflow", method: "GET", path: "/sync?since=s99999999999999999999999", token: "valid", wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "sync/invalid timeout", method: "GET", path: "/sync?timeout=soon", token: "valid", wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "sync/malformed filter", method: "GET", path: "/sync?filter=" + url.QueryEscape(`{"room":`), token: "valid", wantStatus: 400, wantErrcode: "M_NOT_JSON"},
		{name: "sync/filter wrong type", method: "GET", path: "/sync?filter=" + url.QueryEscape(`{"room":{"timeline":{"limit":"ten"}}}`), token: "valid", wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "sync/filter negative limit", method: "GET", path: "/sync?filter=" + url.QueryEscape(`{"room":{"timeline":{"limit":-1}}}`), token: "valid", wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "messages/invalid limit", method: "GET", path: biRoomPath(aliceRoom) + "/messages?dir=b&limit=ten", token: "valid", wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "sync/invalid full_state", method: "GET", path: "/sync?full_state=maybe", token: "valid", wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},

		// Profiles (api/profile.go).
		{name: "profile/not json", method: "PUT", path: profileA + "/displayname", token: "valid", body: b(`{"displayname":`), wantStatus: 400, wantErrcode: "M_NOT_JSON"},
		{name: "profile/empty body", method: "PUT", path: profileA + "/displayname", token: "valid", body: b(``), wantStatus: 400, wantErrcode: "M_NOT_JSON"},
		{name: "profile/body is array", method: "PUT", path: profileA + "/displayname", token: "valid", body: b(`["x"]`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "profile/body is null", method: "PUT", path: profileA + "/displayname", token: "valid", body: b(`null`), wantStatus: 400, wantErrcode: "M_BAD_JSON"},
		{name: "profile/missing key", method: "PUT", path: profileA + "/displayname", token: "valid", body: b(`{"avatar_url":"mxc://localhost/a"}`), wantStatus: 400, wantErrcode: "M_MISSING_PARAM"},
		{name: "profile/displayname number", method: "PUT", path: profileA + "/displayname", token: "valid", body: b(`{"displayname":5}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "profile/displayname null", method: "PUT", path: profileA + "/displayname", token: "valid", body: b(`{"displayname":null}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "profile/displayname too long", method: "PUT", path: profileA + "/displayname", token: "valid", body: b(`{"displayname":"` + strings.Repeat("n", 257) + `"}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "profile/avatar_url not mxc", method: "PUT", path: profileA + "/avatar_url", token: "valid", body: b(`{"avatar_url":"https://example.org/a.png"}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "profile/avatar_url object", method: "PUT", path: profileA + "/avatar_url", token: "valid", body: b(`{"avatar_url":{}}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "profile/m.tz number", method: "PUT", path: profileA + "/m.tz", token: "valid", body: b(`{"m.tz":1}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "profile/key outside the grammar", method: "PUT", path: profileA + "/nickname", token: "valid", body: b(`{"nickname":"x"}`), wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "profile/key too long", method: "PUT", path: profileA + "/org.example." + long, token: "valid", body: b(`{"org.example.` + long + `":1}`), wantStatus: 400, wantErrcode: "M_KEY_TOO_LARGE"},
		{name: "profile/over 64 KiB", method: "PUT", path: profileA + "/org.example.big", token: "valid", body: b(`{"org.example.big":"` + strings.Repeat("x", 70*1024) + `"}`), wantStatus: 400, wantErrcode: "M_PROFILE_TOO_LARGE"},
		{name: "profile/another user's", method: "PUT", path: biPrefix + "/profile/@bob:localhost/displayname", token: "valid", body: b(`{"displayname":"not bob"}`), wantStatus: 403, wantErrcode: "M_FORBIDDEN"},
		{name: "profile/delete another user's", method: "DELETE", path: biPrefix + "/profile/@bob:localhost/displayname", token: "valid", wantStatus: 403, wantErrcode: "M_FORBIDDEN"},
		{name: "profile/no token", method: "PUT", path: profileA + "/displayname", token: "none", body: b(`{"displayname":"x"}`), wantStatus: 401, wantErrcode: "M_MISSING_TOKEN"},
		{name: "profile/invalid user ID", method: "GET", path: "/profile/alice", token: "none", wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "profile/unknown user", method: "GET", path: "/profile/@nobody:localhost", token: "none", wantStatus: 404, wantErrcode: "M_NOT_FOUND"},
		{name: "profile/unset field", method: "GET", path: profileA + "/m.tz", token: "none", wantStatus: 404, wantErrcode: "M_NOT_FOUND"},
		{name: "profile/get invalid key", method: "GET", path: profileA + "/nickname", token: "none", wantStatus: 400, wantErrcode: "M_INVALID_PARAM"},
		{name: "profile/wrong method", method: "POST", path: profileA + "/displayname", token: "valid", body: b(`{}`), wantStatus: 405, wantErrcode: "M_UNRECOGNIZED"},
		{name: "profile/get", method: "GET", path: profileA, token: "none", wantStatus: 200},
		{name: "profile/set displayname", method: "PUT", path: profileA + "/displayname", token: "valid", body: b(`{"displayname":"Alice"}`), wantStatus: 200, writes: true},
		{name: "turnServer/no token", method: "GET", path: "/voip/turnServer", token: "none", wantStatus: 401, wantErrcode: "M_MISSING_TOKEN"},
		{name: "turnServer/valid", method: "GET", path: "/voip/turnServer", token: "valid", wantStatus: 200},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if !strings.HasPrefix(path, "/_matrix/") {
				path = biPrefix + path
			}
			token := tokens[tc.token]
			switch tc.token {
			case "query", "bogusquery":
				tok := alice
				if tc.token == "bogusquery" {
					tok = tokens["bogus"]
				}
				sep := "?"
				if strings.Contains(path, "?") {
					sep = "&"
				}
				path += sep + "access_token=" + url.QueryEscape(tok)
				token = ""
			case "none", "valid", "bogus", "loggedout":
			default:
				t.Fatalf("unknown token mode %q", tc.token)
			}

			before := c.head()
			resp, err := c.do(tc.method, path, token, tc.body, tc.chunked)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			after := c.head()

			if resp.Status >= 500 {
				t.Errorf("status %d (server error), body %s", resp.Status, biTrunc(resp.Body))
			}
			if resp.Status != tc.wantStatus {
				t.Errorf("status %d, want %d; body %s", resp.Status, tc.wantStatus, biTrunc(resp.Body))
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if tc.wantErrcode == "" {
				if !json.Valid(resp.Body) {
					t.Errorf("response is not JSON: %s", biTrunc(resp.Body))
				}
			} else {
				code, err := biErrorBody(resp.Body)
				if err != nil {
					t.Error(err)
				} else if code != tc.wantErrcode {
					t.Errorf("errcode %s, want %s; body %s", code, tc.wantErrcode, biTrunc(resp.Body))
				}
			}
			if tc.writes {
				if after == before {
					t.Errorf("log head did not move for a successful write")
				}
			} else if after != before {
				t.Errorf("log head moved from %d to %d: a rejected request appended %d record(s)", before, after, after-before)
			}
		})
	}

	// The valid token still works after all that, and the query form is
	// not confused by a header being absent.
	out := c.mustOK(t, "GET", biPrefix+"/account/whoami", alice, nil)
	if out["user_id"] != "@alice:localhost" {
		t.Errorf("whoami: %v", out)
	}
}

// biMaxBody mirrors api.maxBodyBytes (1 MiB).
const biMaxBody = 1 << 20

// TestBadInputSyncTimeout checks that a huge ?timeout= on /sync is capped,
// not overflowed: with nothing new since the token, the server must hold
// the request (the cap is minutes) rather than answer at once.
func TestBadInputSyncTimeout(t *testing.T) {
	srv := apitest.Start(t, "")
	c := biNewClient(srv)
	tok := c.register(t, "sleeper", "")
	next, _ := c.mustOK(t, "GET", biPrefix+"/sync", tok, nil)["next_batch"].(string)
	if next == "" {
		t.Fatal("no next_batch")
	}
	for _, tc := range []struct {
		timeout string
	}{
		{timeout: "600000"}, // 10 minutes: capped at the 5 minute maximum
		{timeout: "9223372036854775807"},
		{timeout: "9223372036855"},
	} {
		t.Run(tc.timeout, func(t *testing.T) {
			hc := &http.Client{Timeout: 500 * time.Millisecond}
			req, _ := http.NewRequest("GET", srv.URL+biPrefix+"/sync?since="+next+"&timeout="+tc.timeout, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := hc.Do(req)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Fatalf("sync with timeout=%s answered at once: %d %s", tc.timeout, resp.StatusCode, biTrunc(body))
			}
		})
	}
}
