package store

import (
	"bytes"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// logStableStore is what both raft.InmemStore and *Store provide.
type logStableStore interface {
	raft.LogStore
	raft.StableStore
}

func openTestStore(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// testLog builds a deterministic entry that exercises every raft.Log field,
// including nil payloads and a zero AppendedAt.
func testLog(i uint64) *raft.Log {
	l := &raft.Log{
		Index:      i,
		Term:       i/4 + 1,
		Type:       raft.LogType(i % 6),
		AppendedAt: time.Unix(1_700_000_000+int64(i), int64(i)*7919).In(time.FixedZone("X", 3600)),
	}
	if i%5 != 0 {
		l.Data = fmt.Appendf(nil, "command-%d", i)
	}
	if i%3 == 0 {
		l.Extensions = []byte{byte(i), 0, 0xff}
	}
	if i%7 == 0 {
		l.AppendedAt = time.Time{}
	}
	return l
}

func testLogs(from, to uint64) []*raft.Log {
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, testLog(i))
	}
	return logs
}

// result captures everything a call can return so the two stores can be
// compared uniformly.
type result struct {
	log *raft.Log
	n   uint64
	val []byte
	err error
}

// contractErr names the sentinel a step must return on both stores.
type contractErr int

const (
	noErr             contractErr = iota
	errLogNotFound                // err == raft.ErrLogNotFound
	errNotFound                   // err.Error() == "not found"
	errNotFoundUint64             // ours: "not found"; InmemStore: nil (see below)
)

type step struct {
	name string
	want contractErr
	run  func(s logStableStore) result
}

func storeLogs(from, to uint64) step {
	return step{fmt.Sprintf("StoreLogs(%d..%d)", from, to), noErr, func(s logStableStore) result {
		return result{err: s.StoreLogs(testLogs(from, to))}
	}}
}

func storeLog(i uint64) step {
	return step{fmt.Sprintf("StoreLog(%d)", i), noErr, func(s logStableStore) result {
		return result{err: s.StoreLog(testLog(i))}
	}}
}

func getLog(i uint64, want contractErr) step {
	return step{fmt.Sprintf("GetLog(%d)", i), want, func(s logStableStore) result {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			return result{err: err}
		}
		return result{log: &l}
	}}
}

func deleteRange(lo, hi uint64) step {
	return step{fmt.Sprintf("DeleteRange(%d,%d)", lo, hi), noErr, func(s logStableStore) result {
		return result{err: s.DeleteRange(lo, hi)}
	}}
}

func firstIndex() step {
	return step{"FirstIndex", noErr, func(s logStableStore) result {
		n, err := s.FirstIndex()
		return result{n: n, err: err}
	}}
}

func lastIndex() step {
	return step{"LastIndex", noErr, func(s logStableStore) result {
		n, err := s.LastIndex()
		return result{n: n, err: err}
	}}
}

func set(k, v string) step {
	return step{fmt.Sprintf("Set(%q,%q)", k, v), noErr, func(s logStableStore) result {
		return result{err: s.Set([]byte(k), []byte(v))}
	}}
}

func get(k string, want contractErr) step {
	return step{fmt.Sprintf("Get(%q)", k), want, func(s logStableStore) result {
		v, err := s.Get([]byte(k))
		return result{val: v, err: err}
	}}
}

func setUint64(k string, v uint64) step {
	return step{fmt.Sprintf("SetUint64(%q,%d)", k, v), noErr, func(s logStableStore) result {
		return result{err: s.SetUint64([]byte(k), v)}
	}}
}

func getUint64(k string, want contractErr) step {
	return step{fmt.Sprintf("GetUint64(%q)", k), want, func(s logStableStore) result {
		n, err := s.GetUint64([]byte(k))
		return result{n: n, err: err}
	}}
}

// TestContractMatchesInmemStore runs one sequence against raft.InmemStore
// (the reference raft's own tests use) and against Store, requiring
// identical results from every call and identical First/LastIndex after it.
func TestContractMatchesInmemStore(t *testing.T) {
	// A stable key that starts with the log prefix and encodes index 13 must
	// not collide with log entry 13.
	lookalike := string(append([]byte{'l'}, 0, 0, 0, 0, 0, 0, 0, 13))

	steps := []step{
		// Empty store.
		firstIndex(), lastIndex(),
		getLog(0, errLogNotFound), getLog(1, errLogNotFound),
		deleteRange(1, 5), firstIndex(), lastIndex(),

		// Non-empty: one batch plus a single append.
		storeLogs(1, 10), storeLog(11),
		firstIndex(), lastIndex(),
		getLog(1, noErr), getLog(5, noErr), getLog(7, noErr), getLog(11, noErr),
		getLog(0, errLogNotFound), getLog(12, errLogNotFound),
		storeLog(11), getLog(11, noErr), lastIndex(), // idempotent overwrite

		// Head (snapshot compaction).
		deleteRange(1, 3), firstIndex(), lastIndex(),
		getLog(3, errLogNotFound), getLog(4, noErr),
		// Tail (follower conflict truncation).
		deleteRange(10, 11), firstIndex(), lastIndex(),
		getLog(10, errLogNotFound), getLog(9, noErr),
		// Middle: a hole leaves both ends alone.
		deleteRange(6, 7), firstIndex(), lastIndex(),
		getLog(6, errLogNotFound), getLog(7, errLogNotFound), getLog(5, noErr), getLog(8, noErr),
		// Re-append after truncation.
		storeLogs(10, 12), firstIndex(), lastIndex(), getLog(12, noErr),
		// Everything, then start again.
		deleteRange(4, 12), firstIndex(), lastIndex(), getLog(8, errLogNotFound),
		storeLogs(13, 15), firstIndex(), lastIndex(), getLog(13, noErr),

		// StableStore.
		get("k", errNotFound), getUint64("CurrentTerm", errNotFoundUint64),
		set("k", "v1"), get("k", noErr),
		set("k", "v2"), get("k", noErr), // overwrite
		setUint64("CurrentTerm", 5), getUint64("CurrentTerm", noErr),
		setUint64("CurrentTerm", 7), getUint64("CurrentTerm", noErr),
		set("", "empty-key"), get("", noErr),
		set(lookalike, "stable"), get(lookalike, noErr), getLog(13, noErr),
		get("missing", errNotFound), getUint64("missing", errNotFoundUint64),
	}

	ref := raft.NewInmemStore()
	ours := openTestStore(t, t.TempDir())
	defer ours.Close()

	for i, st := range steps {
		want, got := st.run(ref), st.run(ours)
		where := fmt.Sprintf("step %d %s", i, st.name)
		checkContract(t, where, st.want, want, got)

		if want.log != nil || got.log != nil {
			if want.log == nil || got.log == nil || !logsEqual(want.log, got.log) {
				t.Errorf("%s: log = %+v, InmemStore = %+v", where, got.log, want.log)
			}
		}
		if got.n != want.n || !bytes.Equal(got.val, want.val) {
			t.Errorf("%s: got (%d, %q), InmemStore (%d, %q)", where, got.n, got.val, want.n, want.val)
		}

		// Every step must leave both stores agreeing on the bounds.
		rf, _ := ref.FirstIndex()
		rl, _ := ref.LastIndex()
		of, _ := ours.FirstIndex()
		ol, _ := ours.LastIndex()
		if rf != of || rl != ol {
			t.Errorf("%s: bounds [%d,%d], InmemStore [%d,%d]", where, of, ol, rf, rl)
		}
	}
}

func checkContract(t *testing.T, where string, c contractErr, want, got result) {
	t.Helper()
	switch c {
	case noErr:
		if want.err != nil || got.err != nil {
			t.Errorf("%s: err = %v, InmemStore err = %v; want both nil", where, got.err, want.err)
		}
	case errLogNotFound:
		if want.err != raft.ErrLogNotFound || got.err != raft.ErrLogNotFound {
			t.Errorf("%s: err = %v, InmemStore err = %v; want both == raft.ErrLogNotFound", where, got.err, want.err)
		}
	case errNotFound:
		if want.err == nil || want.err.Error() != "not found" || got.err == nil || got.err.Error() != "not found" {
			t.Errorf(`%s: err = %v, InmemStore err = %v; want both "not found"`, where, got.err, want.err)
		}
	case errNotFoundUint64:
		// InmemStore.GetUint64 reports a missing key as (0, nil); raft treats
		// that exactly like (0, "not found"), which is what raft-boltdb and
		// this store return. Both must still return 0.
		if want.err != nil || got.err == nil || got.err.Error() != "not found" {
			t.Errorf(`%s: err = %v, InmemStore err = %v; want "not found" and nil`, where, got.err, want.err)
		}
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	if err := s.StoreLogs(testLogs(1, 100)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-2")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err == nil {
		t.Fatal("second Close: want error, got nil")
	}

	s = openTestStore(t, dir)
	defer s.Close()
	if first, _ := s.FirstIndex(); first != 11 {
		t.Errorf("FirstIndex = %d, want 11", first)
	}
	if last, _ := s.LastIndex(); last != 100 {
		t.Errorf("LastIndex = %d, want 100", last)
	}
	var l raft.Log
	if err := s.GetLog(50, &l); err != nil || !logsEqual(&l, testLog(50)) {
		t.Errorf("GetLog(50) = %+v, %v; want %+v", l, err, testLog(50))
	}
	if err := s.GetLog(10, &l); err != raft.ErrLogNotFound {
		t.Errorf("GetLog(10) err = %v, want raft.ErrLogNotFound", err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-2" {
		t.Errorf("Get(LastVoteCand) = %q, %v", v, err)
	}
	if n, err := s.GetUint64([]byte("CurrentTerm")); err != nil || n != 42 {
		t.Errorf("GetUint64(CurrentTerm) = %d, %v", n, err)
	}
}

// countingFSM counts applied commands; snapshots carry nothing.
type countingFSM struct{ n atomic.Int64 }

func (f *countingFSM) Apply(*raft.Log) any                 { return f.n.Add(1) }
func (f *countingFSM) Snapshot() (raft.FSMSnapshot, error) { return emptySnapshot{}, nil }
func (f *countingFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type emptySnapshot struct{}

func (emptySnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (emptySnapshot) Release()                             {}

// TestSingleNodeRaft drives a real hashicorp/raft node on Store to check the
// store satisfies raft itself, not just our reading of the interface.
func TestSingleNodeRaft(t *testing.T) {
	dir := t.TempDir()
	st := openTestStore(t, dir)

	conf := raft.DefaultConfig()
	conf.LocalID = "node-1"
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.Logger = hclog.NewNullLogger()

	addr, trans := raft.NewInmemTransport("")
	snaps := raft.NewInmemSnapshotStore()
	boot := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: addr}}}
	if err := raft.BootstrapCluster(conf, st, st, snaps, trans, boot); err != nil {
		t.Fatalf("BootstrapCluster: %v", err)
	}
	fsm := &countingFSM{}
	r, err := raft.NewRaft(conf, fsm, st, st, snaps, trans)
	if err != nil {
		t.Fatalf("NewRaft: %v", err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for r.State() != raft.Leader {
		if time.Now().After(deadline) {
			t.Fatalf("no leader after 10s; state %v", r.State())
		}
		time.Sleep(10 * time.Millisecond)
	}

	const n = 100
	futures := make([]raft.ApplyFuture, n)
	for i := range futures {
		futures[i] = r.Apply(fmt.Appendf(nil, "cmd-%d", i), 5*time.Second)
	}
	for i, f := range futures {
		if err := f.Error(); err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
	}
	if got := fsm.n.Load(); got != n {
		t.Fatalf("FSM applied %d commands, want %d", got, n)
	}

	if err := r.Shutdown().Error(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	st = openTestStore(t, dir)
	defer st.Close()
	last, _ := st.LastIndex()
	if last < n {
		t.Fatalf("LastIndex after reopen = %d, want >= %d", last, n)
	}
	var l raft.Log
	if err := st.GetLog(last, &l); err != nil || l.Type != raft.LogCommand || string(l.Data) != fmt.Sprintf("cmd-%d", n-1) {
		t.Fatalf("GetLog(%d) = %+v, %v; want the last command", last, l, err)
	}
	if term, err := st.GetUint64([]byte("CurrentTerm")); err != nil || term < 1 {
		t.Fatalf("CurrentTerm = %d, %v; want >= 1", term, err)
	}
}
