package loadgen

// A deliberately minimal Matrix Client-Server API client. It only uses the
// standard library and standard v3 endpoints so the benchmark can be pointed at
// any homeserver (Synapse, Dendrite, Chronicle) and the numbers stay comparable.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// maxRetries bounds 429 retries so a server that rate-limits forever fails the
// scenario instead of hanging the benchmark.
const maxRetries = 30

// NewHTTPClient returns the single HTTP client shared by every simulated user.
// Sharing one transport (with a large idle pool) means connection setup cost is
// paid once, not per request, and 32 concurrent senders don't thrash sockets.
func NewHTTPClient() *http.Client {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	// Long enough for a 30s long-poll /sync plus a slow initial sync; short
	// enough that a wedged server doesn't hang the run forever.
	return &http.Client{Transport: tr, Timeout: 120 * time.Second}
}

// Stats shared by all clients; reported so readers know when a server's rate
// limiter (rather than its raw speed) shaped the numbers.
var retries429 atomic.Int64

// Retries429 is how many 429 responses were retried in this process so far.
func Retries429() int64 { return retries429.Load() }

// MatrixError is a non-2xx response from the server.
type MatrixError struct {
	Status  int
	ErrCode string `json:"errcode"`
	Message string `json:"error"`
	Body    string
}

func (e *MatrixError) Error() string {
	if e.ErrCode != "" {
		return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.ErrCode, e.Message)
	}
	b := e.Body
	if len(b) > 200 {
		b = b[:200] + "..."
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, b)
}

// Client is one logged-in (or anonymous, before registration) Matrix user.
type Client struct {
	Base   string
	HTTP   *http.Client
	Token  string
	UserID string

	txnPrefix string
	txn       atomic.Int64
}

// NewClient returns an anonymous client; Register fills in the credentials.
func NewClient(base string, hc *http.Client) *Client {
	return &Client{Base: base, HTTP: hc, txnPrefix: RandHex(4)}
}

// RandHex returns n random bytes hex-encoded (lowercase, so valid in localparts).
func RandHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// Raw performs one request, retrying on 429, and returns the status and body.
// Non-2xx statuses other than 429 are returned, not turned into errors, so
// callers like Register can inspect a 401 user-interactive-auth response.
func (c *Client) Raw(ctx context.Context, method, path string, in any) (int, []byte, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body) // fresh reader per attempt so retries resend the body
		}
		req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
		if err != nil {
			return 0, nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		resp, err := c.HTTP.Do(req)
		if err != nil {
			return 0, nil, err
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return resp.StatusCode, nil, err
		}
		if resp.StatusCode != http.StatusTooManyRequests || attempt >= maxRetries {
			return resp.StatusCode, data, nil
		}
		retries429.Add(1)
		select {
		case <-time.After(retryDelay(resp, data)):
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
}

// retryDelay honours retry_after_ms in the body (the spec's field), then the
// Retry-After header (newer spec versions), then falls back to 1s.
func retryDelay(resp *http.Response, body []byte) time.Duration {
	var e struct {
		RetryAfterMs int64 `json:"retry_after_ms"`
	}
	if json.Unmarshal(body, &e) == nil && e.RetryAfterMs > 0 {
		return time.Duration(e.RetryAfterMs) * time.Millisecond
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return time.Second
}

// Do performs a request and decodes a 2xx JSON body into out (if non-nil).
// It returns the raw body length so callers can report response sizes.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) (int, error) {
	status, data, err := c.Raw(ctx, method, path, in)
	if err != nil {
		return 0, err
	}
	if status < 200 || status > 299 {
		me := &MatrixError{Status: status, Body: string(data)}
		_ = json.Unmarshal(data, me)
		return len(data), me
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return len(data), fmt.Errorf("%s %s: decoding response: %w", method, path, err)
		}
	}
	return len(data), nil
}

// Register creates a fresh account using the m.login.dummy UIA flow. Servers
// that register without UIA (200 on the first call) are accepted too.
func (c *Client) Register(ctx context.Context, username, password string) error {
	req := map[string]any{
		"username":                    username,
		"password":                    password,
		"initial_device_display_name": "chronicle-bench",
	}
	status, data, err := c.Raw(ctx, "POST", "/_matrix/client/v3/register", req)
	if err != nil {
		return err
	}
	if status == http.StatusUnauthorized {
		var uia struct {
			Session string `json:"session"`
		}
		if err := json.Unmarshal(data, &uia); err != nil || uia.Session == "" {
			return fmt.Errorf("register: 401 without a UIA session: %s", data)
		}
		req["auth"] = map[string]any{"type": "m.login.dummy", "session": uia.Session}
		if status, data, err = c.Raw(ctx, "POST", "/_matrix/client/v3/register", req); err != nil {
			return err
		}
	}
	if status != http.StatusOK {
		me := &MatrixError{Status: status, Body: string(data)}
		_ = json.Unmarshal(data, me)
		return fmt.Errorf("register: %w", me)
	}
	var ok struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(data, &ok); err != nil {
		return fmt.Errorf("register: decoding response: %w", err)
	}
	if ok.AccessToken == "" {
		return errors.New("register: server returned no access_token")
	}
	c.UserID, c.Token = ok.UserID, ok.AccessToken
	return nil
}

// CreateRoom creates a public room (so other bench users can join without invites).
func (c *Client) CreateRoom(ctx context.Context) (string, error) {
	var out struct {
		RoomID string `json:"room_id"`
	}
	_, err := c.Do(ctx, "POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}, &out)
	if err == nil && out.RoomID == "" {
		err = errors.New("createRoom: no room_id in response")
	}
	return out.RoomID, err
}

// Join joins a room by ID.
func (c *Client) Join(ctx context.Context, roomID string) error {
	_, err := c.Do(ctx, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), map[string]any{}, nil)
	return err
}

// Send sends an m.text message and returns its event ID. Transaction IDs are
// unique per client so retries after 429 stay idempotent and nothing dedups.
func (c *Client) Send(ctx context.Context, roomID, body string) (string, error) {
	return c.SendTxn(ctx, roomID, c.NextTxn(), body)
}

// NextTxn returns a transaction ID this client has not used yet.
func (c *Client) NextTxn() string { return fmt.Sprintf("b%s-%d", c.txnPrefix, c.txn.Add(1)) }

// SendTxn sends an m.text message with the given transaction ID. Sending
// again with the same ID after an error is idempotent: the server returns
// the event it already accepted instead of creating a second one.
func (c *Client) SendTxn(ctx context.Context, roomID, txn, body string) (string, error) {
	var out struct {
		EventID string `json:"event_id"`
	}
	path := "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + "/send/m.room.message/" + txn
	_, err := c.Do(ctx, "PUT", path, map[string]any{"msgtype": "m.text", "body": body}, &out)
	if err == nil && out.EventID == "" {
		err = errors.New("send: no event_id in response")
	}
	return out.EventID, err
}

// WhoAmI returns the user ID the server associates with the access token.
func (c *Client) WhoAmI(ctx context.Context) (string, error) {
	var out struct {
		UserID string `json:"user_id"`
	}
	_, err := c.Do(ctx, "GET", "/_matrix/client/v3/account/whoami", nil, &out)
	return out.UserID, err
}

// UseBase moves a logged-in client to another node of the same homeserver
// (a cluster shares its accounts). Nodes apply replicated writes a moment
// apart, so it waits, for up to 10s, until the token is known there. This is
// setup, not measured.
func (c *Client) UseBase(ctx context.Context, base string) error {
	if base == c.Base {
		return nil
	}
	c.Base = base
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.WhoAmI(ctx)
		var me *MatrixError
		if err == nil || !errors.As(err, &me) || me.ErrCode != "M_UNKNOWN_TOKEN" || time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("using %s's token on %s: %w", c.UserID, base, err)
			}
			return nil
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Event is the subset of a client event the benchmark looks at.
type Event struct {
	EventID string `json:"event_id"`
	Type    string `json:"type"`
}

// SyncResponse is the subset of /sync the benchmark needs.
type SyncResponse struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events []Event `json:"events"`
			} `json:"timeline"`
		} `json:"join"`
	} `json:"rooms"`
}

// HasEvent reports whether eventID is in roomID's joined timeline.
func (s *SyncResponse) HasEvent(roomID, eventID string) bool {
	for _, ev := range s.Rooms.Join[roomID].Timeline.Events {
		if ev.EventID == eventID {
			return true
		}
	}
	return false
}

// Sync calls GET /sync. Empty since means an initial sync; timeoutMs<0 omits
// the timeout; empty filter uses the server default. Returns the body size.
func (c *Client) Sync(ctx context.Context, since string, timeoutMs int, filter string) (*SyncResponse, int, error) {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if timeoutMs >= 0 {
		q.Set("timeout", strconv.Itoa(timeoutMs))
	}
	if filter != "" {
		q.Set("filter", filter)
	}
	path := "/_matrix/client/v3/sync"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out SyncResponse
	n, err := c.Do(ctx, "GET", path, nil, &out)
	return &out, n, err
}

// MessagesPage is one page of GET /rooms/{roomId}/messages.
type MessagesPage struct {
	Chunk []Event `json:"chunk"`
	Start string  `json:"start"`
	End   string  `json:"end"`
}

// Messages pages a room's timeline; empty from starts at the live end (dir=b).
func (c *Client) Messages(ctx context.Context, roomID, from, dir string, limit int) (*MessagesPage, error) {
	q := url.Values{"dir": {dir}, "limit": {strconv.Itoa(limit)}}
	if from != "" {
		q.Set("from", from)
	}
	var out MessagesPage
	_, err := c.Do(ctx, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/messages?"+q.Encode(), nil, &out)
	return &out, err
}
