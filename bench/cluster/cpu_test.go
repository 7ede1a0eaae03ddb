package main

import (
	"os"
	"testing"
	"time"
)

// The meter reads /proc the way the kernel writes it: CPU burnt in this
// process shows up in its stat line and in its rusage.
func TestCPUMeterSeesWork(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	m := &cpuMeter{pids: []int{os.Getpid()}}
	m.timed(true)
	deadline := time.Now().Add(200 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	m.timed(false)
	c := m.cost(1000, 2)
	if c == nil {
		t.Fatalf("no cost measured: %v", m.serverErr)
	}
	// 200 ms of work over 1000 sends is 200 us each; allow for ticks and
	// a busy machine.
	if c.ServerUsPerSend < 50 || c.LoadgenUsPerSend < 50 {
		t.Fatalf("200 ms of work measured as %.0f us (proc) and %.0f us (rusage) per send over 1000 sends (x=%d)",
			c.ServerUsPerSend, c.LoadgenUsPerSend, x)
	}
	if c.BoundPerSec <= 0 {
		t.Fatalf("bound %.0f/s", c.BoundPerSec)
	}
}
