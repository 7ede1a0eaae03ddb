package e2e

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// Identifiers in room version 12: a room ID is "!" plus the create event's
// reference hash (43 url-safe unpadded base64 chars, no server part); an
// event ID is "$" plus 43 such chars.
var (
	v12RoomID  = regexp.MustCompile(`^![A-Za-z0-9_-]{43}$`)
	v12EventID = regexp.MustCompile(`^\$[A-Za-z0-9_-]{43}$`)
)

// passwordOf is the password every test user registers with.
func passwordOf(localpart string) string { return "correct horse battery " + localpart }

// userID is the full Matrix ID of a local user on the test server.
func userID(localpart string) id.UserID {
	return id.NewUserID(localpart, apitest.ServerName)
}

// anonClient is a client with no credentials.
func anonClient(t *testing.T, srv *apitest.Server) *mautrix.Client {
	t.Helper()
	cli, err := mautrix.NewClient(srv.URL, "", "")
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	return cli
}

// newUser registers localpart (password passwordOf(localpart)) through the
// m.login.dummy flow and returns a client logged in as that user.
func newUser(t *testing.T, srv *apitest.Server, localpart string) *mautrix.Client {
	t.Helper()
	cli := anonClient(t, srv)
	resp, err := cli.RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{
		Username: localpart, Password: passwordOf(localpart),
	})
	if err != nil {
		t.Fatalf("register %s: %v", localpart, err)
	}
	if resp.UserID != userID(localpart) || resp.AccessToken == "" || resp.DeviceID == "" {
		t.Fatalf("register %s: got %+v", localpart, resp)
	}
	cli.SetCredentials(resp.UserID, resp.AccessToken)
	cli.DeviceID = resp.DeviceID
	return cli
}

// login opens a new session for an existing user and returns its client.
func login(t *testing.T, srv *apitest.Server, localpart string) *mautrix.Client {
	t.Helper()
	cli := anonClient(t, srv)
	_, err := cli.Login(t.Context(), &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:         passwordOf(localpart),
		StoreCredentials: true,
	})
	if err != nil {
		t.Fatalf("login %s: %v", localpart, err)
	}
	return cli
}

// reconnect returns a client for the same session against the server's
// current URL (it changes on Restart).
func reconnect(t *testing.T, srv *apitest.Server, cli *mautrix.Client) *mautrix.Client {
	t.Helper()
	fresh, err := mautrix.NewClient(srv.URL, cli.UserID, cli.AccessToken)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	fresh.DeviceID = cli.DeviceID
	return fresh
}

// newRoom creates a room as creator and returns its ID.
func newRoom(t *testing.T, creator *mautrix.Client, req *mautrix.ReqCreateRoom) id.RoomID {
	t.Helper()
	resp, err := creator.CreateRoom(t.Context(), req)
	if err != nil {
		t.Fatalf("%s creates room (%+v): %v", creator.UserID, req, err)
	}
	return resp.RoomID
}

// joinedPair creates a room of the given preset as creator and has member
// join it (invited first unless the room is public).
func joinedPair(t *testing.T, creator, member *mautrix.Client, preset string) id.RoomID {
	t.Helper()
	req := &mautrix.ReqCreateRoom{Preset: preset}
	if preset != "public_chat" {
		req.Invite = []id.UserID{member.UserID}
	}
	roomID := newRoom(t, creator, req)
	if _, err := member.JoinRoomByID(t.Context(), roomID); err != nil {
		t.Fatalf("%s joins %s: %v", member.UserID, roomID, err)
	}
	return roomID
}

func textContent(body string) *event.MessageEventContent {
	return &event.MessageEventContent{MsgType: event.MsgText, Body: body}
}

// sendText sends an m.text message with the given transaction ID.
func sendText(t *testing.T, cli *mautrix.Client, roomID id.RoomID, txnID, body string) id.EventID {
	t.Helper()
	resp, err := cli.SendMessageEvent(t.Context(), roomID, event.EventMessage, textContent(body), mautrix.ReqSendEvent{TransactionID: txnID})
	if err != nil {
		t.Fatalf("%s sends %q: %v", cli.UserID, body, err)
	}
	return resp.EventID
}

// bodyOf returns the body of a message event ("" for anything else).
func bodyOf(ev *event.Event) string {
	if ev.Type != event.EventMessage {
		return ""
	}
	b, _ := ev.Content.Raw["body"].(string)
	return b
}

// messageBodies returns the bodies of the m.room.message events, in order.
func messageBodies(evs []*event.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == event.EventMessage {
			out = append(out, bodyOf(ev))
		}
	}
	return out
}

// wantMatrixError fails unless err is the Matrix error want with the HTTP
// status the spec gives it.
func wantMatrixError(t *testing.T, err error, want mautrix.RespError, status int) {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want %s (HTTP %d)", want.ErrCode, status)
	}
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %s", err, want.ErrCode)
	}
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.Response == nil {
		t.Fatalf("error %v carries no HTTP response", err)
	}
	if got := httpErr.Response.StatusCode; got != status {
		t.Fatalf("%s came with HTTP %d, want %d", want.ErrCode, got, status)
	}
}

// tokenSeq reads the position out of a sync or pagination token ("s<seq>").
func tokenSeq(t *testing.T, tok string) uint64 {
	t.Helper()
	rest, ok := strings.CutPrefix(tok, "s")
	n, err := strconv.ParseUint(rest, 10, 64)
	if !ok || err != nil {
		t.Fatalf("token %q is not of the form s<seq>", tok)
	}
	return n
}

// timelineFilter is an inline sync filter limiting every room timeline.
func timelineFilter(limit int) string {
	return fmt.Sprintf(`{"room":{"timeline":{"limit":%d}}}`, limit)
}

// syncOnce performs one /sync.
func syncOnce(ctx context.Context, cli *mautrix.Client, since string, timeout time.Duration, filter string) (*mautrix.RespSync, error) {
	return cli.FullSyncRequest(ctx, mautrix.ReqSync{Since: since, Timeout: int(timeout.Milliseconds()), FilterID: filter})
}

// syncUntil syncs from since (following next_batch) until done reports true
// for a response, and returns that response. Each sync long-polls; the whole
// loop gives up at the deadline.
func syncUntil(t *testing.T, cli *mautrix.Client, since string, done func(*mautrix.RespSync) bool) *mautrix.RespSync {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := syncOnce(t.Context(), cli, since, time.Second, "")
		if err != nil {
			t.Fatalf("%s syncs since %q: %v", cli.UserID, since, err)
		}
		if done(resp) {
			return resp
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: sync condition not met by the deadline (last next_batch %s)", cli.UserID, resp.NextBatch)
		}
		since = resp.NextBatch
	}
}

// stateKeys lists "type|state_key" of a set of state events, sorted.
func stateKeys(evs []*event.Event) []string {
	var out []string
	for _, ev := range evs {
		sk := ""
		if ev.StateKey != nil {
			sk = *ev.StateKey
		}
		out = append(out, ev.Type.Type+"|"+sk)
	}
	slices.Sort(out)
	return out
}

// stateType is a custom state event type.
func stateType(name string) event.Type {
	return event.Type{Type: name, Class: event.StateEventType}
}
