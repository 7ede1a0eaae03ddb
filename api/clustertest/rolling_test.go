package clustertest

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"chronicle/api/apitest"
)

func TestRollingRestartUnderLoad(t *testing.T) {
	c := apitest.StartCluster(t, 3)
	alice, users, ns, roomID := setupRoom(t, c, 4)
	l := newLoad(t, ns, roomID, users)
	l.start()
	defer l.stopAndWait()

	for i, s := range c.Nodes {
		waitAcks(t, l, 20, 10*time.Second)
		wasLeader := s.Node.IsLeader()
		ns.down[i].Store(true)
		start := time.Now()
		s.Stop()
		stopped := time.Since(start)
		s.Restart()
		ns.down[i].Store(false)
		waitReady(t, s, 15*time.Second)
		ready := time.Since(start)
		// Converged under load: it has applied at least what the leader
		// had when it became ready.
		leader := c.WaitForLeader(10*time.Second, nil)
		waitHeadAtLeast(t, s, leader.Node.Machine().Log().Head().Seq, 15*time.Second)
		t.Logf("restarted %s (leader: %v): stop took %s, ready after %s, caught up after %s", s.ID, wasLeader, stopped.Round(time.Millisecond), ready.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	waitAcks(t, l, 20, 10*time.Second)
	l.stopAndWait()
	t.Logf("attempt errors by kind: %v", l.errorSummary())

	st := assertSameState(t, 15*time.Second, c.Nodes...)
	t.Logf("all nodes agree: %s", st)
	l.check(t, alice, c.Nodes)
}

// waitAcks waits until the load has n more acknowledged sends than now.
func waitAcks(t *testing.T, l *load, n int64, d time.Duration) {
	t.Helper()
	want := l.total() + n
	deadline := time.Now().Add(d)
	for l.total() < want {
		if time.Now().After(deadline) {
			t.Fatalf("load stalled: %d acknowledged sends, waited for %d (errors: %v)", l.total(), want, l.errorSummary())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWritesOnFollowerReadYourWrites(t *testing.T) {
	c := apitest.StartCluster(t, 3)
	ns := newNodeSet(c)
	alice := register(t, ns.urls[0], "alice")
	roomID := createPublicRoom(t, alice, ns.urls[0])
	c.WaitConverged(10 * time.Second) // alice's token is known everywhere
	followers := c.Followers()
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		f := followers[i%len(followers)]
		cli := alice.client(t, f.URL)
		txn := fmt.Sprintf("ryw-%d", i)
		evID, err := sendRetry(cli, roomID, txn, txn)
		if err != nil {
			t.Fatalf("send %s via follower %s: %v", txn, f.ID, err)
		}
		resp, err := cli.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 1)
		if err != nil {
			t.Fatalf("messages via %s: %v", f.ID, err)
		}
		if len(resp.Chunk) != 1 || resp.Chunk[0].ID != evID {
			got := "nothing"
			if len(resp.Chunk) > 0 {
				got = string(resp.Chunk[0].ID)
			}
			t.Fatalf("iteration %d: follower %s answered send %s with %s but its newest event is %s", i, f.ID, txn, evID, got)
		}
	}
	st := assertSameState(t, 10*time.Second, c.Nodes...)
	t.Logf("all nodes agree: %s", st)

	// A token minted through the leader, used at once on a follower.
	leader := c.Leader()
	var unknown []string
	for i := 0; i < 10; i++ {
		u := register(t, leader.URL, fmt.Sprintf("fresh%d", i))
		f := followers[i%len(followers)]
		status, _, body := httpDo(t, http.MethodGet, f.URL+"/_matrix/client/v3/account/whoami", u.Token, nil, 5*time.Second)
		switch {
		case status == http.StatusOK:
		case status == http.StatusUnauthorized && errcode(body) == "M_UNKNOWN_TOKEN":
			unknown = append(unknown, fmt.Sprintf("%s on %s", u.ID, f.ID))
		default:
			t.Errorf("whoami of fresh %s on %s: %d %s", u.ID, f.ID, status, body)
		}
	}
	if len(unknown) > 0 {
		t.Fatalf("%d of 10 access tokens registered through the leader got 401 M_UNKNOWN_TOKEN when used at once on a follower (%v)",
			len(unknown), unknown)
	}
}

// When the leader stops, writes arriving at followers before they notice
// (they still name the old leader for a heartbeat timeout) must fail fast
// with a retriable error or succeed through the new leader, not hang. The
// followers have pooled forward connections to the old leader.
func TestFollowerWriteRightAfterLeaderStop(t *testing.T) {
	t.Parallel() // mostly waits on timeouts; runs beside the other waiting tests
	c := apitest.StartCluster(t, 3)
	ns := newNodeSet(c)
	alice := register(t, ns.urls[0], "alice")
	roomID := createPublicRoom(t, alice, ns.urls[0])
	c.WaitConverged(10 * time.Second)
	followers := c.Followers()
	for _, f := range followers {
		sendMany(t, []*user{alice}, []string{f.URL}, roomID, "warm-"+f.ID, 16, 4) // fill the forward pool
	}

	old := c.Leader()
	old.Stop()
	type result struct {
		txn  string
		via  string
		took time.Duration
		err  error
	}
	results := make(chan result, 8)
	for i := 0; i < 8; i++ {
		f := followers[i%2]
		txn := fmt.Sprintf("after-stop-%d", i)
		go func() {
			cli := newClient(t, f.URL, alice.ID, alice.Token, alice.Device, 4*time.Second)
			start := time.Now()
			_, err := sendOnce(context.Background(), cli, roomID, txn, txn)
			results <- result{txn, f.ID, time.Since(start), err}
		}()
	}
	var hung, failed []string
	var txns []string
	for i := 0; i < 8; i++ {
		r := <-results
		txns = append(txns, r.txn)
		switch {
		case r.err == nil:
		case describeErr(r.err) == "timeout":
			hung = append(hung, fmt.Sprintf("%s via %s", r.txn, r.via))
		case retriable(r.err):
			failed = append(failed, fmt.Sprintf("%s via %s: %s after %s", r.txn, r.via, describeErr(r.err), r.took.Round(time.Millisecond)))
		default:
			t.Errorf("%s via %s: %v", r.txn, r.via, r.err)
		}
	}
	newLeader := c.WaitForLeader(10*time.Second, old)
	t.Logf("after %s stopped (%s leads now): %d of 8 writes via followers hung past the 4 s client timeout, prompt retriable failures: %v", old.ID, newLeader.ID, len(hung), failed)

	// Every transaction retried to 200 lands exactly once.
	for _, txn := range txns {
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, err := sendOnce(context.Background(), alice.client(t, newLeader.URL), roomID, txn, txn)
			if err == nil {
				break
			}
			if !retriable(err) || time.Now().After(deadline) {
				t.Fatalf("retry %s: %v", txn, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	st := assertSameState(t, 15*time.Second, followers...)
	t.Logf("survivors agree: %s", st)
	seen := map[string]int{}
	for _, ev := range roomTimeline(t, alice.client(t, followers[0].URL), roomID) {
		seen[ev.Body]++
	}
	for _, txn := range txns {
		if seen[txn] != 1 {
			t.Errorf("%s appears %d times", txn, seen[txn])
		}
	}
	if len(hung) > 0 {
		t.Fatalf("%d of 8 writes sent through followers right after leader %s stopped hung until the client's 4 s timeout (%v), "+
			"although %s was elected", len(hung), old.ID, hung, newLeader.ID)
	}
}
