package apitest

import (
	"testing"
	"time"
)

// StartCheckpointing is Start with the state machine writing a checkpoint
// record every `every` records (chronicle verify's tests).
func StartCheckpointing(t testing.TB, dir string, every uint64) *Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s := &Server{t: t, ID: "n1", Dir: dir, RaftAddr: "127.0.0.1:0", CheckpointEvery: every}
	s.start()
	if err := waitLeader(s.Node, 10*time.Second); err != nil {
		t.Fatalf("wait for leader: %v", err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}
