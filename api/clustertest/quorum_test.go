package clustertest

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"chronicle/api/apitest"
)

func TestQuorumLostFailsClearlyAndReadsWork(t *testing.T) {
	t.Parallel() // mostly waits on timeouts; runs beside the other waiting tests
	c := apitest.StartCluster(t, 3)
	ns := newNodeSet(c)
	alice := register(t, ns.urls[0], "alice")
	roomID := createPublicRoom(t, alice, ns.urls[0])
	sendMany(t, []*user{alice}, ns.urls, roomID, "ok", 5, 1)
	c.WaitConverged(10 * time.Second)

	survivor := c.Leader()
	stopped := c.Followers()
	for _, s := range stopped {
		s.Stop()
	}
	t.Logf("stopped %s and %s; %s is alone", stopped[0].ID, stopped[1].ID, survivor.ID)

	// Writes fail clearly: 503 M_UNAVAILABLE with Retry-After, in bounded
	// time. Two of them: one sent at once (the survivor may still think it
	// leads and append it), one after it surely knows it does not.
	sendAlone := func(txn string) {
		start := time.Now()
		status, hdr, body := httpDo(t, http.MethodPut, sendURL(survivor.URL, roomID, txn), alice.Token,
			map[string]any{"msgtype": "m.text", "body": txn}, 15*time.Second)
		took := time.Since(start)
		t.Logf("send %s without quorum: HTTP %d %s after %s (Retry-After %q)", txn, status, errcode(body), took.Round(time.Millisecond), hdr.Get("Retry-After"))
		if status != http.StatusServiceUnavailable || errcode(body) != "M_UNAVAILABLE" {
			t.Errorf("send %s without quorum: HTTP %d %s, want 503 M_UNAVAILABLE", txn, status, body)
		}
		if ra, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || ra <= 0 {
			t.Errorf("503 without a usable Retry-After header: %q", hdr.Get("Retry-After"))
		}
		if took > 12*time.Second {
			t.Errorf("send %s took %s to fail", txn, took)
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sendAlone("lost-1") }()
	// The second once the survivor knows it has no leader; both fail
	// while the reads below go on.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if v := clusterView(t, survivor); v.Role != "leader" && v.Leader.ID == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still names a leader 5 s after losing quorum", survivor.ID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	go func() { defer wg.Done(); sendAlone("lost-2") }()

	// Reads of applied data still work on the lone node, at once, even
	// with writes pending.
	cli := alice.client(t, survivor.URL)
	ctx := context.Background()
	readStart := time.Now()
	msgs, err := cli.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 10)
	if err != nil {
		t.Errorf("/messages without quorum: %v", err)
	} else if b := messageBodiesOf(msgs); !slices.Equal(b, []string{"ok-4", "ok-3", "ok-2", "ok-1", "ok-0"}) {
		t.Errorf("/messages without quorum shows %v, want the 5 applied messages newest first", b)
	}
	if resp, err := cli.FullSyncRequest(ctx, mautrix.ReqSync{}); err != nil {
		t.Errorf("/sync without quorum: %v", err)
	} else if _, ok := resp.Rooms.Join[roomID]; !ok {
		t.Errorf("/sync without quorum does not show room %s", roomID)
	}
	if jr, err := cli.JoinedRooms(ctx); err != nil {
		t.Errorf("/joined_rooms without quorum: %v", err)
	} else if len(jr.JoinedRooms) != 1 || jr.JoinedRooms[0] != roomID {
		t.Errorf("/joined_rooms without quorum: %v", jr.JoinedRooms)
	}
	if who, err := cli.Whoami(ctx); err != nil {
		t.Errorf("/account/whoami without quorum: %v", err)
	} else if who.UserID != alice.ID {
		t.Errorf("whoami says %s", who.UserID)
	}
	t.Logf("reads without quorum answered in %s", time.Since(readStart).Round(time.Millisecond))
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// One node returns: a majority again. The same transaction IDs now
	// succeed, and each event exists exactly once.
	recoverStart := time.Now()
	stopped[0].Restart()
	c.WaitForLeader(15*time.Second, nil)
	t.Logf("%s restarted; a leader within %s", stopped[0].ID, time.Since(recoverStart).Round(time.Millisecond))
	evIDs := map[string]string{}
	for _, txn := range []string{"lost-1", "lost-2"} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			evID, err := sendOnce(ctx, alice.client(t, survivor.URL), roomID, txn, txn)
			if err == nil {
				evIDs[txn] = string(evID)
				break
			}
			if !retriable(err) || time.Now().After(deadline) {
				t.Fatalf("retry of %s after recovery: %v", txn, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// And through the other node: the same event.
		evID, err := sendRetry(alice.client(t, stopped[0].URL), roomID, txn, txn)
		if err != nil || string(evID) != evIDs[txn] {
			t.Errorf("retry of %s via %s: %s, %v; want %s", txn, stopped[0].ID, evID, err, evIDs[txn])
		}
	}
	t.Logf("retried txns got 200 %s after the restart", time.Since(recoverStart).Round(time.Millisecond))
	up := []*apitest.Server{survivor, stopped[0]}
	st := assertSameState(t, 10*time.Second, up...)
	t.Logf("after recovery %s and %s agree: %s", survivor.ID, stopped[0].ID, st)
	for _, s := range up {
		tl := roomTimeline(t, alice.client(t, s.URL), roomID)
		n := map[string]int{}
		for _, ev := range tl {
			n[ev.Body]++
			if ev.Body == "lost-1" || ev.Body == "lost-2" {
				if string(ev.EventID) != evIDs[ev.Body] {
					t.Errorf("%s: %s has event ID %s, the retry was told %s", s.ID, ev.Body, ev.EventID, evIDs[ev.Body])
				}
			}
		}
		for _, b := range []string{"lost-1", "lost-2", "ok-0", "ok-4"} {
			if n[b] != 1 {
				t.Errorf("%s: %q appears %d times, want once", s.ID, b, n[b])
			}
		}
	}
	stopped[1].Restart()
	st = assertSameState(t, 15*time.Second, c.Nodes...)
	t.Logf("all three agree: %s", st)
}

func messageBodiesOf(resp *mautrix.RespMessages) []string {
	var out []string
	for _, ev := range resp.Chunk {
		if b, ok := ev.Content.Raw["body"].(string); ok {
			out = append(out, b)
		}
	}
	return out
}
