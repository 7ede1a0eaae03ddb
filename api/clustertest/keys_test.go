package clustertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"chronicle/api/apitest"
)

// TestConcurrentClaimsOnAllNodesGetDistinctKeys: claims sent at once to
// every node of a cluster (followers forward them) each get a one-time
// key, no key twice: the state machine decides every claim in log order.
func TestConcurrentClaimsOnAllNodesGetDistinctKeys(t *testing.T) {
	t.Parallel()
	c := apitest.StartCluster(t, 3)
	ns := newNodeSet(c)
	alice := register(t, ns.urls[0], "alice")
	bob := register(t, ns.urls[1], "bob")
	const keys = 24
	otks := map[id.KeyID]mautrix.OneTimeKey{}
	for i := range keys {
		otks[id.NewKeyID(id.KeyAlgorithmSignedCurve25519, fmt.Sprintf("K%02d", i))] = mautrix.OneTimeKey{Key: id.Curve25519(fmt.Sprintf("key-%d", i))}
	}
	retrySetup(t, "upload keys", func() error {
		_, err := alice.client(t, ns.urls[2]).UploadKeys(context.Background(), &mautrix.ReqUploadKeys{OneTimeKeys: otks})
		return err
	})

	var mu sync.Mutex
	claimed := map[id.KeyID]int{}
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli := bob.client(t, ns.urls[i%len(ns.urls)])
			resp, err := cli.ClaimKeys(context.Background(), &mautrix.ReqClaimKeys{OneTimeKeys: mautrix.OneTimeKeysRequest{
				alice.ID: {alice.Device: id.KeyAlgorithmSignedCurve25519}}})
			if err != nil {
				t.Errorf("claim %d: %v", i, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for keyID := range resp.OneTimeKeys[alice.ID][alice.Device] {
				claimed[keyID]++
			}
		}()
	}
	wg.Wait()
	if len(claimed) != keys {
		t.Fatalf("%d claims got %d distinct keys: %v", keys, len(claimed), claimed)
	}
	for keyID, n := range claimed {
		if n != 1 {
			t.Fatalf("key %s given out %d times", keyID, n)
		}
	}
	c.WaitConverged(10 * time.Second)
	for _, u := range ns.urls {
		resp, err := alice.client(t, u).UploadKeys(context.Background(), &mautrix.ReqUploadKeys{})
		if err != nil || resp.OneTimeKeyCounts.SignedCurve25519 != 0 {
			t.Fatalf("count on %s after every key was claimed: %+v %v", u, resp, err)
		}
	}
}
