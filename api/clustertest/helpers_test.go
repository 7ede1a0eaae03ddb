// Package clustertest drives three-node in-process Chronicle clusters with
// real Matrix clients while nodes are killed, restarted, wiped and
// partitioned, and checks that no acknowledged write is lost or duplicated,
// that tokens never go backwards, and that every node ends with the same log
// and the same projections.
package clustertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
	rlog "chronicle/log"
)

// ---------------------------------------------------------------------------
// Users and clients.

// user is a registered account; its access token works on every node.
type user struct {
	ID     id.UserID
	Token  string
	Device id.DeviceID
}

// clientTimeout bounds every client request unless a test says otherwise.
const clientTimeout = 5 * time.Second

// client returns a mautrix client for u against baseURL, with a bounded
// HTTP timeout and no automatic retries (the tests retry themselves).
func (u *user) client(t testing.TB, baseURL string) *mautrix.Client {
	t.Helper()
	return newClient(t, baseURL, u.ID, u.Token, u.Device, clientTimeout)
}

func newClient(t testing.TB, baseURL string, uid id.UserID, token string, device id.DeviceID, timeout time.Duration) *mautrix.Client {
	t.Helper()
	cli, err := mautrix.NewClient(baseURL, uid, token)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	cli.DeviceID = device
	cli.Client = &http.Client{Timeout: timeout}
	cli.DefaultHTTPRetries = 0
	return cli
}

// register creates localpart through the m.login.dummy flow on baseURL.
// Setup steps retry retriable failures (an election on a starved machine);
// a registration that went through although its answer was lost is picked
// up by logging in.
func register(t testing.TB, baseURL, localpart string) *user {
	t.Helper()
	cli := newClient(t, baseURL, "", "", "", 15*time.Second)
	password := "correct horse battery " + localpart
	deadline := time.Now().Add(20 * time.Second)
	retried := false
	for {
		resp, err := cli.RegisterDummy(context.Background(), &mautrix.ReqRegister[any]{Username: localpart, Password: password})
		if err == nil {
			return &user{ID: resp.UserID, Token: resp.AccessToken, Device: resp.DeviceID}
		}
		if retried && errors.Is(err, mautrix.MUserInUse) {
			lr, err := cli.Login(context.Background(), &mautrix.ReqLogin{
				Type:       mautrix.AuthTypePassword,
				Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
				Password:   password,
			})
			if err != nil {
				t.Fatalf("log in %s after an indeterminate registration: %v", localpart, err)
			}
			return &user{ID: lr.UserID, Token: lr.AccessToken, Device: lr.DeviceID}
		}
		if !retriable(err) || time.Now().After(deadline) {
			t.Fatalf("register %s on %s: %v", localpart, baseURL, err)
		}
		retried = true
		time.Sleep(50 * time.Millisecond)
	}
}

// retrySetup runs a setup step, retrying retriable failures for up to 20 s.
func retrySetup(t testing.TB, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if !retriable(err) || time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// createPublicRoom creates a public room as u through baseURL.
func createPublicRoom(t testing.TB, u *user, baseURL string) id.RoomID {
	t.Helper()
	var roomID id.RoomID
	retrySetup(t, fmt.Sprintf("%s creates a room", u.ID), func() error {
		resp, err := u.client(t, baseURL).CreateRoom(context.Background(), &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "cluster"})
		if err == nil {
			roomID = resp.RoomID
		}
		return err
	})
	return roomID
}

func joinRoom(t testing.TB, u *user, baseURL string, roomID id.RoomID) {
	t.Helper()
	retrySetup(t, fmt.Sprintf("%s joins %s via %s", u.ID, roomID, baseURL), func() error {
		_, err := u.client(t, baseURL).JoinRoomByID(context.Background(), roomID)
		return err
	})
}

func text(body string) *event.MessageEventContent {
	return &event.MessageEventContent{MsgType: event.MsgText, Body: body}
}

// sendOnce sends one m.text with txnID through cli.
func sendOnce(ctx context.Context, cli *mautrix.Client, roomID id.RoomID, txnID, body string) (id.EventID, error) {
	resp, err := cli.SendMessageEvent(ctx, roomID, event.EventMessage, text(body), mautrix.ReqSendEvent{TransactionID: txnID})
	if err != nil {
		return "", err
	}
	return resp.EventID, nil
}

// retriable reports whether a send error is one a client should retry with
// the same transaction ID (elsewhere): 503 M_UNAVAILABLE, a 502/504, or a
// transport failure (connection refused or reset, timeout).
func retriable(err error) bool {
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.Response != nil {
		switch he.Response.StatusCode {
		case http.StatusServiceUnavailable:
			return he.RespError == nil || he.RespError.ErrCode == "M_UNAVAILABLE"
		case http.StatusBadGateway, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return true // no HTTP response: transport error
}

// describeErr gives a short classification for logs.
func describeErr(err error) string {
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.Response != nil {
		code := ""
		if he.RespError != nil {
			code = he.RespError.ErrCode
		}
		return fmt.Sprintf("HTTP %d %s", he.Response.StatusCode, code)
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "connection refused"):
		return "connection refused"
	case strings.Contains(s, "Client.Timeout") || strings.Contains(s, "deadline exceeded"):
		return "timeout"
	case strings.Contains(s, "EOF") || strings.Contains(s, "reset"):
		return "connection dropped"
	}
	return s
}

// ---------------------------------------------------------------------------
// Load: senders that retry the same transaction ID on another node.

// nodeSet is the client side's view of which nodes to talk to. Clients never
// touch *apitest.Server (the test goroutine restarts them); URLs are stable
// across restarts.
type nodeSet struct {
	urls []string
	down []atomic.Bool
}

func newNodeSet(c *apitest.Cluster) *nodeSet {
	ns := &nodeSet{down: make([]atomic.Bool, len(c.Nodes))}
	for _, s := range c.Nodes {
		ns.urls = append(ns.urls, s.URL)
	}
	return ns
}

// next returns the first node after i not marked down (i itself if all are).
func (ns *nodeSet) next(i int) int {
	for k := 1; k <= len(ns.urls); k++ {
		j := (i + k) % len(ns.urls)
		if !ns.down[j].Load() {
			return j
		}
	}
	return i
}

// ack is one send that got 200.
type ack struct {
	Sender  int
	N       int
	TxnID   string
	EventID id.EventID
	Node    int // node that answered 200
	Retried bool
	Start   time.Time
	At      time.Time
}

// attemptErr is one failed attempt.
type attemptErr struct {
	TxnID string
	Node  int
	Kind  string
	At    time.Time
}

// load runs senders, each its own user pinned to a home node, sending
// unique transaction IDs in a loop; a failed attempt is retried with the
// same transaction ID against the next node until it gets 200.
type load struct {
	t      testing.TB
	ns     *nodeSet
	roomID id.RoomID
	users  []*user

	mu     sync.Mutex
	acks   []ack
	errs   []attemptErr
	fatal  []string
	stop   atomic.Bool
	wg     sync.WaitGroup
	counts []atomic.Int64
}

func newLoad(t testing.TB, ns *nodeSet, roomID id.RoomID, users []*user) *load {
	return &load{t: t, ns: ns, roomID: roomID, users: users, counts: make([]atomic.Int64, len(users))}
}

func body(sender, n int) string { return fmt.Sprintf("c%d-m%d", sender, n) }

// start launches one goroutine per user; sender i is pinned to node i mod
// len(nodes).
func (l *load) start() {
	for i := range l.users {
		l.wg.Add(1)
		go l.run(i)
	}
}

// stopAndWait lets every sender finish (retrying to 200) its current send.
func (l *load) stopAndWait() {
	l.stop.Store(true)
	l.wg.Wait()
}

func (l *load) total() int64 {
	var n int64
	for i := range l.counts {
		n += l.counts[i].Load()
	}
	return n
}

func (l *load) run(i int) {
	defer l.wg.Done()
	home := i % len(l.ns.urls)
	clients := make([]*mautrix.Client, len(l.ns.urls))
	for j, u := range l.ns.urls {
		clients[j] = l.users[i].client(l.t, u)
	}
	for n := 0; !l.stop.Load(); n++ {
		txn := body(i, n)
		node := home
		if l.ns.down[node].Load() {
			node = l.ns.next(node)
		}
		start := time.Now()
		giveUp := start.Add(45 * time.Second)
		retried := false
		for {
			evID, err := sendOnce(context.Background(), clients[node], l.roomID, txn, txn)
			if err == nil {
				l.mu.Lock()
				l.acks = append(l.acks, ack{Sender: i, N: n, TxnID: txn, EventID: evID, Node: node, Retried: retried, Start: start, At: time.Now()})
				l.mu.Unlock()
				l.counts[i].Add(1)
				break
			}
			l.mu.Lock()
			l.errs = append(l.errs, attemptErr{TxnID: txn, Node: node, Kind: describeErr(err), At: time.Now()})
			l.mu.Unlock()
			if !retriable(err) || time.Now().After(giveUp) {
				l.mu.Lock()
				l.fatal = append(l.fatal, fmt.Sprintf("sender %d txn %s on node %d: %v", i, txn, node, err))
				l.mu.Unlock()
				return
			}
			retried = true
			node = l.ns.next(node)
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// check asserts the client-side invariants against the room as each of the
// given nodes serves it: every acknowledged send is there exactly once with
// the acknowledged event ID, nothing unacknowledged is there, each sender's
// messages are in its send order, and every node shows the same timeline.
// Retried transaction IDs are sent once more to another node and must
// return the same event ID.
func (l *load) check(t *testing.T, reader *user, nodes []*apitest.Server) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fatal) > 0 {
		t.Fatalf("senders gave up: %v", l.fatal)
	}
	if len(l.acks) == 0 {
		t.Fatal("no send was acknowledged")
	}
	byTxn := map[string]ack{}
	for _, a := range l.acks {
		if prev, dup := byTxn[a.TxnID]; dup {
			t.Errorf("txn %s acknowledged twice (%s, %s)", a.TxnID, prev.EventID, a.EventID)
		}
		byTxn[a.TxnID] = a
	}

	var reference []timelineEvent
	for k, s := range nodes {
		tl := roomTimeline(t, reader.client(t, s.URL), l.roomID)
		seen := map[string]int{}
		lastN := map[int]int{}
		for _, ev := range tl {
			if ev.Type != event.EventMessage.Type {
				continue
			}
			seen[ev.Body]++
			a, ok := byTxn[ev.Body]
			if !ok {
				t.Errorf("node %s: message %q (%s) was never acknowledged", s.ID, ev.Body, ev.EventID)
				continue
			}
			if ev.EventID != a.EventID {
				t.Errorf("node %s: message %q has event ID %s, the client was told %s", s.ID, ev.Body, ev.EventID, a.EventID)
			}
			if prev, ok := lastN[a.Sender]; ok && a.N <= prev {
				t.Errorf("node %s: sender %d's message %d appears after its message %d", s.ID, a.Sender, a.N, prev)
			}
			lastN[a.Sender] = a.N
		}
		for txn := range byTxn {
			switch seen[txn] {
			case 1:
			case 0:
				t.Errorf("node %s: acknowledged send %s (%s) is missing", s.ID, txn, byTxn[txn].EventID)
			default:
				t.Errorf("node %s: acknowledged send %s appears %d times", s.ID, txn, seen[txn])
			}
		}
		if k == 0 {
			reference = tl
			continue
		}
		if !slices.Equal(eventIDs(tl), eventIDs(reference)) {
			t.Errorf("node %s shows a different timeline than node %s (%d vs %d events)", s.ID, nodes[0].ID, len(tl), len(reference))
		}
	}

	// Idempotency across nodes: a retried transaction ID sent again, to a
	// node other than the one that acknowledged it, returns the same event.
	again := 0
	for _, a := range l.acks {
		if !a.Retried {
			continue
		}
		s := nodes[again%len(nodes)]
		again++
		evID, err := sendRetry(l.users[a.Sender].client(t, s.URL), l.roomID, a.TxnID, a.TxnID)
		if err != nil {
			t.Errorf("re-send of retried txn %s via %s: %v", a.TxnID, s.ID, err)
		} else if evID != a.EventID {
			t.Errorf("re-send of retried txn %s via %s returned %s, first 200 said %s", a.TxnID, s.ID, evID, a.EventID)
		}
	}
	t.Logf("%d acknowledged sends, %d failed attempts, %d retried txns re-sent for idempotency", len(l.acks), len(l.errs), again)
}

// errorSummary counts failed attempts by kind.
func (l *load) errorSummary() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, e := range l.errs {
		out[e.Kind]++
	}
	return out
}

// ---------------------------------------------------------------------------
// Reading the room.

type timelineEvent struct {
	EventID id.EventID
	Type    string
	Sender  id.UserID
	Body    string
}

func eventIDs(tl []timelineEvent) []id.EventID {
	out := make([]id.EventID, len(tl))
	for i, ev := range tl {
		out[i] = ev.EventID
	}
	return out
}

// roomTimeline pages /messages forwards from the start of the room to the
// end and returns every event in order.
func roomTimeline(t testing.TB, cli *mautrix.Client, roomID id.RoomID) []timelineEvent {
	t.Helper()
	var out []timelineEvent
	from := ""
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatalf("paging %s did not end", roomID)
		}
		resp, err := cli.Messages(context.Background(), roomID, from, "", mautrix.DirectionForward, nil, 1000)
		if err != nil {
			t.Fatalf("messages in %s via %s (from %q): %v", roomID, cli.HomeserverURL, from, err)
		}
		for _, ev := range resp.Chunk {
			te := timelineEvent{EventID: ev.ID, Type: ev.Type.Type, Sender: ev.Sender}
			if b, ok := ev.Content.Raw["body"].(string); ok {
				te.Body = b
			}
			out = append(out, te)
		}
		if resp.End == "" || len(resp.Chunk) == 0 {
			return out
		}
		from = resp.End
	}
}

// ---------------------------------------------------------------------------
// Node state: log head, records and projection digests.

type nodeState struct {
	Head    rlog.Position
	Records int
	// RecordsHash hashes every record's encoding in order.
	RecordsHash string
	Digests     map[string][32]byte
}

func (a nodeState) equal(b nodeState) bool {
	if a.Head != b.Head || a.Records != b.Records || a.RecordsHash != b.RecordsHash || len(a.Digests) != len(b.Digests) {
		return false
	}
	for k, v := range a.Digests {
		if b.Digests[k] != v {
			return false
		}
	}
	return true
}

func (a nodeState) String() string {
	var names []string
	for k := range a.Digests {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	fmt.Fprintf(&b, "head=%d/%s records=%d/%s", a.Head.Seq, a.Head.Hash.String()[:12], a.Records, a.RecordsHash[:12])
	for _, k := range names {
		d := a.Digests[k]
		fmt.Fprintf(&b, " %s=%s", k, hex.EncodeToString(d[:6]))
	}
	return b.String()
}

// readState reads head, records and digests from one consistent snapshot.
func readState(t testing.TB, s *apitest.Server) nodeState {
	t.Helper()
	var st nodeState
	m := s.Node.Machine()
	err := m.View(func(r pebble.Reader) error {
		var err error
		if st.Head, err = rlog.ReadHead(r); err != nil {
			return err
		}
		h := sha256.New()
		var prev rlog.Hash
		err = rlog.Scan(r, 1, 0, func(rec *rlog.Record, raw []byte) error {
			st.Records++
			if rec.Seq != uint64(st.Records) {
				return fmt.Errorf("record %d at position %d", rec.Seq, st.Records)
			}
			if rec.PrevHash != prev {
				return fmt.Errorf("record %d: prev hash does not chain", rec.Seq)
			}
			prev = sha256.Sum256(raw)
			h.Write(raw)
			return nil
		})
		if err != nil {
			return err
		}
		if prev != st.Head.Hash {
			return fmt.Errorf("last record hash %s is not the head %s", prev, st.Head.Hash)
		}
		st.RecordsHash = hex.EncodeToString(h.Sum(nil))
		st.Digests, err = m.Engine().Digests(r)
		return err
	})
	if err != nil {
		t.Fatalf("read state of %s: %v", s.ID, err)
	}
	return st
}

// assertSameState waits (bounded) until every given node reports the same
// head, records and digests, and fails with each node's state otherwise.
func assertSameState(t testing.TB, d time.Duration, nodes ...*apitest.Server) nodeState {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		states := make([]nodeState, len(nodes))
		same := true
		for i, s := range nodes {
			states[i] = readState(t, s)
			if i > 0 && !states[i].equal(states[0]) {
				same = false
			}
		}
		if same {
			return states[0]
		}
		if time.Now().After(deadline) {
			var lines []string
			for i, s := range nodes {
				lines = append(lines, fmt.Sprintf("%s: %s", s.ID, states[i]))
			}
			t.Fatalf("nodes differ after %s:\n  %s", d, strings.Join(lines, "\n  "))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// waitHeadAtLeast waits until s has applied position seq.
func waitHeadAtLeast(t testing.TB, s *apitest.Server, seq uint64, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := apitest.WaitApplied(ctx, s, seq); err != nil {
		t.Fatalf("%s did not reach position %d within %s (at %d)", s.ID, seq, d, s.Node.Machine().Log().Head().Seq)
	}
}

// waitReady polls GET /_chronicle/v1/ready until 200.
func waitReady(t testing.TB, s *apitest.Server, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		status, _, _ := httpDo(t, http.MethodGet, s.URL+"/_chronicle/v1/ready", "", nil, 2*time.Second)
		if status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %s (last status %d)", s.ID, d, status)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// indexOf returns s's index in c.Nodes.
func indexOf(c *apitest.Cluster, s *apitest.Server) int {
	for i, n := range c.Nodes {
		if n == s {
			return i
		}
	}
	panic("node not in cluster")
}

// ---------------------------------------------------------------------------
// Plain HTTP.

// httpDo performs one request and returns status, headers and body (status
// 0 on a transport error).
func httpDo(t testing.TB, method, u, token string, body any, timeout time.Duration) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// sendURL is the spec's send endpoint for an m.room.message.
func sendURL(base string, roomID id.RoomID, txnID string) string {
	return base + "/_matrix/client/v3/rooms/" + url.PathEscape(string(roomID)) + "/send/m.room.message/" + url.PathEscape(txnID)
}

// errcode extracts the Matrix errcode from a JSON error body.
func errcode(b []byte) string {
	var e struct {
		Errcode string `json:"errcode"`
	}
	_ = json.Unmarshal(b, &e)
	return e.Errcode
}

// tokenSeq parses "s<seq>".
func tokenSeq(t testing.TB, tok string) uint64 {
	t.Helper()
	rest, ok := strings.CutPrefix(tok, "s")
	n, err := strconv.ParseUint(rest, 10, 64)
	if !ok || err != nil {
		t.Fatalf("token %q is not s<seq>", tok)
	}
	return n
}

// sendRetry sends through cli, retrying retriable failures (an election on
// a starved machine) with the same transaction ID for up to 20 s.
func sendRetry(cli *mautrix.Client, roomID id.RoomID, txnID, body string) (id.EventID, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		evID, err := sendOnce(context.Background(), cli, roomID, txnID, body)
		if err == nil || !retriable(err) || time.Now().After(deadline) {
			return evID, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sendMany sends n messages into roomID from the given users, spread over
// the given nodes by `workers` concurrent senders (bodies prefix-0 ...).
// Retriable failures are retried with the same transaction ID; anything
// else is fatal.
func sendMany(t testing.TB, users []*user, urls []string, roomID id.RoomID, prefix string, n, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	var next atomic.Int64
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			cli := users[w%len(users)].client(t, urls[w%len(urls)])
			for {
				k := int(next.Add(1)) - 1
				if k >= n {
					return
				}
				b := fmt.Sprintf("%s-%d", prefix, k)
				if _, err := sendRetry(cli, roomID, b, b); err != nil {
					errs <- fmt.Errorf("send %s via %s: %w", b, urls[w%len(urls)], err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
