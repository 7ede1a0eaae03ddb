package raft

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	hraft "github.com/hashicorp/raft"

	rlog "chronicle/log"
	"chronicle/projections/accounts"
	"chronicle/raft/machine"
	"chronicle/raft/store"
)

var quiet = slog.New(slog.DiscardHandler)

func openNode(t *testing.T, dir string) *Node {
	t.Helper()
	n, err := Open(Config{NodeID: "n1", DataDir: dir, RaftAddr: "127.0.0.1:0", ServerName: "localhost", Logger: quiet, Fast: true})
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.WaitLeader(ctx); err != nil {
		n.Close()
		t.Fatal(err)
	}
	return n
}

// submitter builds commands with increasing timestamps.
type submitter struct {
	t  *testing.T
	n  *Node
	ts int64
}

func (s *submitter) submit(typ, actor, device string, payload any) (*machine.Result, error) {
	s.t.Helper()
	s.ts++
	cmd, err := machine.NewCommand(typ, 1_700_000_000_000+s.ts, actor, device, payload)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.n.Submit(ctx, cmd)
}

func (s *submitter) ok(typ, actor, device string, payload any) *machine.Result {
	s.t.Helper()
	res, err := s.submit(typ, actor, device, payload)
	if err != nil {
		s.t.Fatalf("submit %s by %s: %v", typ, actor, err)
	}
	return res
}

// workload submits count commands: registrations, a room, joins and messages.
func (s *submitter) workload(prefix string, count int) {
	s.t.Helper()
	users := []string{"@" + prefix + "a:localhost", "@" + prefix + "b:localhost", "@" + prefix + "c:localhost"}
	for _, u := range users {
		s.ok(machine.CmdRegister, "", "", &machine.Register{UserID: u, DeviceID: "D"})
	}
	room := s.ok(machine.CmdCreateRoom, users[0], "D", &machine.CreateRoom{Preset: "public_chat", Topic: &prefix}).RoomID
	for _, u := range users[1:] {
		s.ok(machine.CmdMembership, u, "D", &machine.Membership{RoomID: room, Target: u, Membership: "join"})
	}
	// Messages go in concurrently, eight at a time, so that Raft batches
	// them (one fsync per batch keeps the test fast).
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range count - 6 {
		s.ts++
		cmd, err := machine.NewCommand(machine.CmdSendEvent, 1_700_000_000_000+s.ts, users[i%3], "D", &machine.SendEvent{RoomID: room, Type: "m.room.message",
			Content: json.RawMessage(fmt.Sprintf(`{"body":"%s %d"}`, prefix, i)), TxnID: fmt.Sprint(prefix, i)})
		if err != nil {
			s.t.Fatal(err)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if res, err := s.n.Submit(ctx, cmd); err != nil || res.EventID == "" {
				s.t.Errorf("send %d: %+v %v", i, res, err)
			}
		})
	}
	wg.Wait()
	if s.t.Failed() {
		s.t.FailNow()
	}
}

type nodeState struct {
	head    rlog.Position
	applied uint64
	digests map[string][32]byte
}

func stateOf(t *testing.T, n *Node) nodeState {
	t.Helper()
	m := n.Machine()
	var s nodeState
	if err := m.View(func(r pebble.Reader) error {
		var err error
		if s.head, err = rlog.VerifyChain(r); err != nil {
			return err
		}
		s.digests, err = m.Engine().Digests(r)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.applied = m.AppliedIndex()
	return s
}

// waitApplied waits until the FSM has been handed every entry up to index
// (on restart: the replayed log). A barrier returns once everything before
// it has been applied by the FSM, not just dispatched to it.
func waitApplied(t *testing.T, n *Node, index uint64) {
	t.Helper()
	if err := n.raft.Barrier(10 * time.Second).Error(); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	if got := n.raft.AppliedIndex(); got < index {
		t.Fatalf("raft applied %d, want at least %d", got, index)
	}
}

// restartAndCompare closes n, reopens it on its data dir, waits for the
// replay and checks that the state is exactly as before.
func restartAndCompare(t *testing.T, n *Node, dir string) *Node {
	t.Helper()
	before := stateOf(t, n)
	last := n.raft.LastIndex()
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	n = openNode(t, dir)
	waitApplied(t, n, last)
	after := stateOf(t, n)
	if after.head != before.head {
		t.Errorf("head after restart %d/%s, before %d/%s", after.head.Seq, after.head.Hash, before.head.Seq, before.head.Hash)
	}
	if !reflect.DeepEqual(after.digests, before.digests) {
		t.Errorf("digests changed across restart")
	}
	// Raft appends entries of its own on election; the machine's applied
	// index may only move past the old one through those.
	if after.applied < before.applied {
		t.Errorf("applied index went back from %d to %d", before.applied, after.applied)
	}
	return n
}

func TestNodeRestartReplaysWithoutDoubleApply(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir)
	s := &submitter{t: t, n: n}
	s.workload("x", 50)
	if st := stateOf(t, n); st.head.Seq < 50 {
		t.Fatalf("workload wrote %d records", st.head.Seq)
	}

	n = restartAndCompare(t, n, dir)
	defer func() { n.Close() }()
	before := stateOf(t, n)
	s.n = n
	// Two records: the account and its default displayname.
	res := s.ok(machine.CmdRegister, "", "", &machine.Register{UserID: "@late:localhost", InhibitLogin: true})
	if res.Seq != before.head.Seq+2 {
		t.Fatalf("submit after restart: seq %d, want %d", res.Seq, before.head.Seq+2)
	}
	if h := n.Machine().Log().Head(); h.Seq != res.Seq {
		t.Fatalf("published head %d after submit, want %d", h.Seq, res.Seq)
	}
	// A second restart, with nothing new since, changes nothing either.
	n = restartAndCompare(t, n, dir)
	final := stateOf(t, n)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	// What a restart does, step by step: hand every entry of the Raft log
	// to the FSM shim again, in batches. Every command result is nil.
	rs, err := store.Open(filepath.Join(dir, "raft"))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	m, err := machine.Open(filepath.Join(dir, "state"), machine.Config{ServerName: "localhost", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	first, _ := rs.FirstIndex()
	last, _ := rs.LastIndex()
	f := &fsm{m: m, logger: quiet}
	commands := 0
	for lo := first; lo <= last; lo += 16 {
		var batch []*hraft.Log
		for i := lo; i < lo+16 && i <= last; i++ {
			l := new(hraft.Log)
			if err := rs.GetLog(i, l); err != nil {
				t.Fatalf("raft log %d: %v", i, err)
			}
			if l.Type == hraft.LogCommand {
				commands++
			}
			batch = append(batch, l)
		}
		for i, out := range f.ApplyBatch(batch) {
			if out != nil {
				t.Fatalf("replayed raft entry %d produced %+v", batch[i].Index, out)
			}
		}
	}
	if commands < 51 {
		t.Fatalf("raft log holds %d commands", commands)
	}
	var head rlog.Position
	if err := m.View(func(r pebble.Reader) error { head, err = rlog.ReadHead(r); return err }); err != nil || head != final.head {
		t.Fatalf("head after replaying the raft log through the FSM: %d (%v), want %d", head.Seq, err, final.head.Seq)
	}
}

func TestSnapshotThenRestart(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir)
	s := &submitter{t: t, n: n}
	s.workload("a", 20)
	if err := n.Snapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	s.workload("b", 20)

	n = restartAndCompare(t, n, dir)
	s.n = n
	// Entries after the snapshot were replayed onto the state store; the
	// ones before it were not (NoSnapshotRestoreOnStart), and nothing is
	// missing or doubled.
	if err := n.Machine().View(func(r pebble.Reader) error {
		for _, u := range []string{"@aa:localhost", "@bc:localhost"} {
			if usr, err := accounts.GetUser(r, u); err != nil || usr == nil {
				t.Errorf("user %s missing after restart (%v)", u, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Snapshot again after the restart, write more, restart again.
	if err := n.Snapshot(); err != nil {
		t.Fatalf("snapshot after restart: %v", err)
	}
	s.workload("c", 10)
	n = restartAndCompare(t, n, dir)
	defer func() { n.Close() }()
	s.n = n
	before := stateOf(t, n)
	// Two records: the account and its default displayname.
	if res := s.ok(machine.CmdRegister, "", "", &machine.Register{UserID: "@late:localhost", InhibitLogin: true}); res.Seq != before.head.Seq+2 {
		t.Fatalf("submit after restart: seq %d, want %d", res.Seq, before.head.Seq+2)
	}
}

func TestSubmitReturnsTypedRejection(t *testing.T) {
	n := openNode(t, t.TempDir())
	defer n.Close()
	s := &submitter{t: t, n: n}
	first := s.ok(machine.CmdRegister, "", "", &machine.Register{UserID: "@dup:localhost", DeviceID: "D"})
	res, err := s.submit(machine.CmdRegister, "", "", &machine.Register{UserID: "@dup:localhost", DeviceID: "E"})
	var rej *machine.Rejection
	if !errors.As(err, &rej) {
		t.Fatalf("duplicate registration: error %v (%T), want *machine.Rejection", err, err)
	}
	if rej.Kind != machine.KindUserInUse {
		t.Fatalf("rejection kind %d (%s), want KindUserInUse", rej.Kind, rej.Msg)
	}
	if res == nil || res.Err != rej || res.Seq != first.Seq {
		t.Fatalf("rejection result %+v, want the rejection at seq %d", res, first.Seq)
	}
	// Other kinds come through the same way.
	_, err = s.submit(machine.CmdSendEvent, "@dup:localhost", "D", &machine.SendEvent{RoomID: "!nope:localhost", Type: "m.room.message", Content: json.RawMessage(`{}`)})
	if !errors.As(err, &rej) || rej.Kind != machine.KindForbidden {
		t.Fatalf("send to unknown room: %v", err)
	}
	_, err = s.submit("no_such_command", "", "", struct{}{})
	if !errors.As(err, &rej) || rej.Kind != machine.KindBadJSON {
		t.Fatalf("unknown command: %v", err)
	}
	// A rejection is not a failure: the node keeps serving.
	if res := s.ok(machine.CmdLogin, "@dup:localhost", "", &machine.Login{DeviceID: "F"}); res.Seq != first.Seq+1 {
		t.Fatalf("login after rejections: seq %d, want %d", res.Seq, first.Seq+1)
	}
}

func TestSubmitHonoursContext(t *testing.T) {
	n := openNode(t, t.TempDir())
	defer n.Close()
	cmd, _ := machine.NewCommand(machine.CmdRegister, 1, "", "", &machine.Register{UserID: "@ctx:localhost"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := n.Submit(ctx, cmd); !errors.Is(err, context.Canceled) {
		// The entry may still commit; only the wait is abandoned.
		t.Logf("submit with a cancelled context: %v", err)
	}
}

// After a restart that skips restoring the latest snapshot, entries at or
// below it are never handed to the state machine again; a read index
// must not wait for them (here the bootstrap configuration).
func TestBarrierAfterSnapshotRestart(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir)
	if err := n.Snapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	n.Close()
	n = openNode(t, dir)
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := n.Barrier(ctx); err != nil {
		t.Fatalf("barrier on an idle node after restart: %v", err)
	}
}
