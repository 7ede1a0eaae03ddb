package clustertest

import (
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// setupRoom starts a cluster, registers alice (the reader) and n senders,
// alice creates a public room and every sender joins it through its home
// node.
func setupRoom(t *testing.T, c *apitest.Cluster, senders int) (*user, []*user, *nodeSet, id.RoomID) {
	t.Helper()
	ns := newNodeSet(c)
	alice := register(t, ns.urls[0], "alice")
	roomID := createPublicRoom(t, alice, ns.urls[0])
	var users []*user
	for i := 0; i < senders; i++ {
		home := ns.urls[i%len(ns.urls)]
		u := register(t, home, fmt.Sprintf("sender%d", i))
		joinRoom(t, u, home, roomID)
		users = append(users, u)
	}
	return alice, users, ns, roomID
}

func TestLeaderKilledWhileClientsSend(t *testing.T) {
	c := apitest.StartCluster(t, 3)
	alice, users, ns, room := setupRoom(t, c, 8)
	l := newLoad(t, ns, room, users)
	l.start()
	defer l.stopAndWait()

	time.Sleep(time.Second) // let the load run against a healthy cluster
	old := c.Leader()
	if old == nil {
		t.Fatal("no leader before the kill")
	}
	oldIdx := indexOf(c, old)
	beforeKill := l.total()
	ns.down[oldIdx].Store(true)
	killStart := time.Now()
	old.Stop()
	killDone := time.Now()
	newLeader := c.WaitForLeader(10*time.Second, old)
	elected := time.Now()
	t.Logf("killed leader %s after %d acks (stop took %s); %s leads %s after the stop returned",
		old.ID, beforeKill, killDone.Sub(killStart).Round(time.Millisecond), newLeader.ID, elected.Sub(killDone).Round(time.Millisecond))

	// Keep the load going for a second under the new leader.
	afterElection := l.total()
	time.Sleep(time.Second)
	l.stopAndWait()
	if got := l.total() - afterElection; got == 0 {
		t.Fatalf("no send succeeded in the second after %s was elected", newLeader.ID)
	}

	// Failover: last 200 before the kill started to the first 200, for a
	// request started after the old leader was gone.
	var lastBefore, firstAfter time.Time
	l.mu.Lock()
	for _, a := range l.acks {
		if a.At.Before(killStart) && a.At.After(lastBefore) {
			lastBefore = a.At
		}
		if a.Start.After(killDone) && (firstAfter.IsZero() || a.At.Before(firstAfter)) {
			firstAfter = a.At
		}
	}
	l.mu.Unlock()
	if lastBefore.IsZero() || firstAfter.IsZero() {
		t.Fatalf("cannot measure failover: last ack before kill %v, first after %v", lastBefore, firstAfter)
	}
	t.Logf("FAILOVER: %s from the last 200 before the kill to the first 200 after it (kill itself took %s); attempt errors by kind: %v",
		firstAfter.Sub(lastBefore).Round(time.Millisecond), killDone.Sub(killStart).Round(time.Millisecond), l.errorSummary())

	survivors := c.Running()
	if len(survivors) != 2 {
		t.Fatalf("%d nodes running, want 2", len(survivors))
	}
	st := assertSameState(t, 10*time.Second, survivors...)
	t.Logf("survivors agree: %s", st)
	l.check(t, alice, survivors)

	// The killed node comes back and converges on the same log.
	old.Restart()
	ns.down[oldIdx].Store(false)
	st = assertSameState(t, 15*time.Second, c.Nodes...)
	t.Logf("all three agree after %s restarted: %s", old.ID, st)
	l.check(t, alice, []*apitest.Server{old})
}
