package clustertest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// bigTimeline is an inline filter that lets a sync return every missed event.
const bigTimeline = `{"room":{"timeline":{"limit":1000}}}`

// messageBodies returns the m.room.message bodies of a room's sync timeline.
func syncBodies(resp *mautrix.RespSync, roomID id.RoomID) []string {
	var out []string
	if jr, ok := resp.Rooms.Join[roomID]; ok && jr != nil {
		for _, ev := range jr.Timeline.Events {
			if ev.Type == event.EventMessage {
				b, _ := ev.Content.Raw["body"].(string)
				out = append(out, b)
			}
		}
	}
	return out
}

func TestPartitionedFollowerCatchesUp(t *testing.T) {
	t.Parallel() // mostly waits on timeouts; runs beside the other waiting tests
	c := apitest.StartCluster(t, 3)
	ns := newNodeSet(c)
	alice := register(t, ns.urls[0], "alice")
	roomID := createPublicRoom(t, alice, ns.urls[0])
	sendMany(t, []*user{alice}, ns.urls, roomID, "before", 10, 1)
	c.WaitConverged(10 * time.Second)

	// The follower's view just before it drops out.
	follower := c.Followers()[0]
	var majority []*apitest.Server
	for _, s := range c.Nodes {
		if s != follower {
			majority = append(majority, s)
		}
	}
	pre, err := alice.client(t, follower.URL).FullSyncRequest(context.Background(), mautrix.ReqSync{FilterID: bigTimeline})
	if err != nil {
		t.Fatalf("initial sync on %s: %v", follower.ID, err)
	}
	t0 := pre.NextBatch
	follower.Stop()

	// The majority keeps taking writes.
	const missed = 120
	var urls []string
	for _, s := range majority {
		urls = append(urls, s.URL)
	}
	sendMany(t, []*user{alice}, urls, roomID, "missed", missed, 4)
	post, err := alice.client(t, majority[0].URL).FullSyncRequest(context.Background(), mautrix.ReqSync{Since: t0, FilterID: bigTimeline})
	if err != nil {
		t.Fatalf("sync on %s: %v", majority[0].ID, err)
	}
	if got := len(syncBodies(post, roomID)); got != missed {
		t.Fatalf("majority node %s: sync since %s shows %d messages, want %d", majority[0].ID, t0, got, missed)
	}
	t1 := post.NextBatch
	if tokenSeq(t, t1) <= tokenSeq(t, t0) {
		t.Fatalf("token went from %s to %s across %d writes", t0, t1, missed)
	}

	// The follower comes back; clients hit it at once with both tokens.
	follower.Restart()
	behindAt := follower.Node.Machine().Log().Head().Seq
	t.Logf("%s restarted at position %d; tokens: before the writes %s, majority's newest %s", follower.ID, behindAt, t0, t1)

	var wg sync.WaitGroup
	wg.Add(2)
	// An old token: the sync returns the missed events (in as many
	// responses as the catch-up takes, within the 10 s budget), and tokens
	// never go backwards.
	go func() {
		defer wg.Done()
		cli := newClient(t, follower.URL, alice.ID, alice.Token, alice.Device, 15*time.Second)
		seen := map[string]int{}
		since := t0
		start := time.Now()
		rounds := 0
		for len(seen) < missed {
			if time.Since(start) > 10*time.Second {
				t.Errorf("sync since %s on %s: only %d of %d missed messages after %s", t0, follower.ID, len(seen), missed, time.Since(start))
				return
			}
			resp, err := cli.FullSyncRequest(context.Background(), mautrix.ReqSync{Since: since, Timeout: 10000, FilterID: bigTimeline})
			rounds++
			if err != nil {
				t.Errorf("sync since %s on %s: %v", since, follower.ID, err)
				return
			}
			if tokenSeq(t, resp.NextBatch) < tokenSeq(t, since) {
				t.Errorf("sync since %s on %s returned next_batch %s: token went backwards", since, follower.ID, resp.NextBatch)
				return
			}
			for _, b := range syncBodies(resp, roomID) {
				if !strings.HasPrefix(b, "missed-") {
					t.Errorf("sync since %s returned %q from before the token", t0, b)
				}
				seen[b]++
			}
			since = resp.NextBatch
		}
		for b, n := range seen {
			if n != 1 {
				t.Errorf("message %q delivered %d times across the catch-up syncs", b, n)
			}
		}
		t.Logf("sync since %s on the restarted node: %d missed messages in %d response(s), %s", t0, len(seen), rounds, time.Since(start).Round(time.Millisecond))
	}()
	// A token from the majority, ahead of the restarted node: the sync
	// waits and never answers with an older token.
	go func() {
		defer wg.Done()
		cli := newClient(t, follower.URL, alice.ID, alice.Token, alice.Device, 15*time.Second)
		start := time.Now()
		resp, err := cli.FullSyncRequest(context.Background(), mautrix.ReqSync{Since: t1, Timeout: 3000, FilterID: bigTimeline})
		if err != nil {
			t.Errorf("sync since %s on %s: %v", t1, follower.ID, err)
			return
		}
		if tokenSeq(t, resp.NextBatch) < tokenSeq(t, t1) {
			t.Errorf("sync since %s on the restarted node returned next_batch %s: token went backwards", t1, resp.NextBatch)
		}
		if b := syncBodies(resp, roomID); len(b) != 0 {
			t.Errorf("sync since %s returned %d messages from before the token: %v", t1, len(b), b)
		}
		t.Logf("sync since %s on the restarted node answered next_batch %s after %s", t1, resp.NextBatch, time.Since(start).Round(time.Millisecond))
	}()
	wg.Wait()

	st := assertSameState(t, 10*time.Second, c.Nodes...)
	t.Logf("all nodes agree: %s", st)
	tl := roomTimeline(t, alice.client(t, follower.URL), roomID)
	if got := countMessages(tl); got != 10+missed {
		t.Fatalf("restarted node shows %d messages, want %d", got, 10+missed)
	}
}

func countMessages(tl []timelineEvent) int {
	n := 0
	for _, ev := range tl {
		if ev.Type == event.EventMessage.Type {
			n++
		}
	}
	return n
}

func TestWipedNodeRejoinsViaSnapshot(t *testing.T) {
	c := apitest.StartCluster(t, 3)
	ns := newNodeSet(c)
	alice := register(t, ns.urls[0], "alice")
	bob := register(t, ns.urls[1], "bob")
	roomID := createPublicRoom(t, alice, ns.urls[0])
	joinRoom(t, bob, ns.urls[1], roomID)

	const total = 1500
	start := time.Now()
	sendMany(t, []*user{alice, bob}, ns.urls, roomID, "m", total, 6)
	t.Logf("%d messages in %s", total, time.Since(start).Round(time.Millisecond))

	leader := c.Leader()
	status, _, body := httpDo(t, http.MethodPost, leader.URL+"/_chronicle/v1/cluster/snapshot", apitest.Secret, map[string]any{}, 30*time.Second)
	if status != http.StatusOK {
		t.Fatalf("snapshot on leader %s: %d %s", leader.ID, status, body)
	}
	t.Logf("manual snapshot on %s: %s", leader.ID, body)
	c.WaitConverged(10 * time.Second)

	follower := c.Followers()[0]
	// The follower snapshots by itself too (threshold 1024, checked every
	// 0.5-1 s).
	for deadline := time.Now().Add(10 * time.Second); ; {
		if snaps, _ := os.ReadDir(filepath.Join(follower.Dir, "snapshots")); len(snaps) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s took no automatic snapshot within 10 s of %d writes", follower.ID, total)
		}
		time.Sleep(50 * time.Millisecond)
	}

	c.Wipe(follower)
	follower.Restart()
	if !follower.Node.NeedsJoin() {
		t.Fatalf("wiped %s did not start as a joining node", follower.ID)
	}
	c.Join(follower) // already a member with the same address: idempotent
	st := assertSameState(t, 30*time.Second, c.Nodes...)
	t.Logf("wiped %s rejoined; all agree: %s", follower.ID, st)

	tl := roomTimeline(t, alice.client(t, follower.URL), roomID)
	seen := map[string]int{}
	for _, ev := range tl {
		if ev.Type == event.EventMessage.Type {
			seen[ev.Body]++
		}
	}
	for k := 0; k < total; k++ {
		if b := fmt.Sprintf("m-%d", k); seen[b] != 1 {
			t.Errorf("wiped node shows %q %d times", b, seen[b])
		}
	}
	if len(seen) != total {
		t.Errorf("wiped node shows %d distinct messages, want %d", len(seen), total)
	}

	// It takes writes again, and everyone sees them.
	evID, err := sendRetry(bob.client(t, follower.URL), roomID, "after-wipe", "after-wipe")
	if err != nil {
		t.Fatalf("send through the rejoined node: %v", err)
	}
	assertSameState(t, 10*time.Second, c.Nodes...)
	for _, s := range c.Nodes {
		resp, err := alice.client(t, s.URL).Messages(context.Background(), roomID, "", "", mautrix.DirectionBackward, nil, 1)
		if err != nil || len(resp.Chunk) != 1 || resp.Chunk[0].ID != evID {
			t.Errorf("%s: newest event is not %s (err %v)", s.ID, evID, err)
		}
	}
}
