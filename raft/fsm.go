package raft

import (
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	hraft "github.com/hashicorp/raft"

	"chronicle/raft/machine"
)

// fsm adapts the state machine to hashicorp/raft: a thin shim.
type fsm struct {
	m       *machine.Machine
	logger  *slog.Logger
	metrics *Metrics
	// done is the last entry this FSM has finished (commands and
	// configurations; hashicorp/raft never hands it no-ops or barriers).
	// Raft's own applied index moves when an entry is queued for the FSM,
	// before it runs, so Barrier waits on this.
	done atomic.Uint64
}

var _ hraft.BatchingFSM = (*fsm)(nil)

func (f *fsm) Apply(l *hraft.Log) any { return f.ApplyBatch([]*hraft.Log{l})[0] }

// ApplyBatch applies committed entries in order and wakes readers once.
func (f *fsm) ApplyBatch(logs []*hraft.Log) []any {
	out := make([]any, len(logs))
	for i, l := range logs {
		if l.Type != hraft.LogCommand {
			continue
		}
		cmd, err := machine.DecodeCommand(l.Data)
		if err != nil {
			// Every node would fail the same way, but a node that cannot
			// read an entry must not guess: stop with the index.
			f.logger.Error("undecodable raft entry", "index", l.Index, "err", err)
			panic(fmt.Sprintf("raft entry %d: %v", l.Index, err))
		}
		res, err := f.m.Apply(l.Index, cmd)
		if err != nil {
			f.logger.Error("apply failed", "index", l.Index, "type", cmd.Type, "err", err)
			panic(fmt.Sprintf("apply raft entry %d (%s): %v", l.Index, cmd.Type, err))
		}
		if res != nil {
			out[i] = res
			f.metrics.applied.Inc()
		}
	}
	if len(logs) > 0 {
		f.done.Store(logs[len(logs)-1].Index)
	}
	f.m.Publish()
	return out
}

func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) {
	snap, err := f.m.Snapshot()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{m: f.m, snap: snap}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.m.Restore(rc); err != nil {
		return fmt.Errorf("restore state snapshot: %w", err)
	}
	f.done.Store(f.m.AppliedIndex())
	f.m.Publish()
	return nil
}

type fsmSnapshot struct {
	m    *machine.Machine
	snap *pebble.Snapshot
}

// Persist streams the captured state. Before reporting success it syncs
// the live store, which is at or ahead of the snapshot, so that a node that
// skips snapshot restore on start has its state durable up to this index.
func (s *fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	err := machine.WriteSnapshot(s.snap, sink)
	if err == nil {
		err = s.m.Sync()
	}
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.snap.Close() }
