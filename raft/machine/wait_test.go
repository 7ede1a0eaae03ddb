package machine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"chronicle/raft/machine/machinetest"
)

// WaitApplied callers wake when their own index is applied, not before,
// and one that gives up leaves no waiter behind.
func TestWaitAppliedWakesByIndex(t *testing.T) {
	d := machinetest.New(t)
	d.Register("@a:localhost")
	base := d.Idx
	woke := make(chan uint64, 3)
	for _, ahead := range []uint64{1, 2, 3} {
		go func() {
			if err := d.M.WaitApplied(context.Background(), base+ahead); err == nil {
				woke <- base + ahead
			}
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- d.M.WaitApplied(ctx, base+100) }()
	for i := 1; i <= 3; i++ {
		// Let the waiters register before the index moves.
		time.Sleep(20 * time.Millisecond)
		d.Register(fmt.Sprintf("@u%d:localhost", i))
		d.M.Publish()
		select {
		case got := <-woke:
			if got != base+uint64(i) {
				t.Fatalf("applied %d: woke the waiter for %d", base+uint64(i), got)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("applied %d: its waiter did not wake", base+uint64(i))
		}
	}
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	if n := d.M.WaitersForTest(); n != 0 {
		t.Fatalf("%d waiters left behind", n)
	}
}
