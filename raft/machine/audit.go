package machine

import (
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Checkpoints and fold hashes (what auditors check; see
// projections/fold.go and facts.TypeCheckpoint).
//
// Every record is folded through projections.Folds, which keeps each
// projection's fold hash in the same batch as the projection's writes.
// After a command's records, if the command carries a checkpoint interval
// N (Command.CheckpointEvery) and its records crossed a multiple of N, the
// machine appends one log.checkpoint record holding the head and every
// fold hash. The decision depends only on the command and the log
// position, so every node writes the same checkpoint at the same seq.
//
// Why the interval travels in the command rather than in the machine's
// config: a node-local setting that decides records would let two nodes
// with different settings write different logs. The node that builds a
// command stamps its configured interval into it (raft.Node.Submit); the
// value is then part of the replicated entry, so every node decides alike
// even while an operator changes the setting node by node. 0 (and every
// command from before this field existed) means no checkpoint.

// DefaultCheckpointEvery is the interval `chronicle serve` uses unless the
// config says otherwise.
const DefaultCheckpointEvery = 10000

// auditState is the machine's part of checkpointing.
type auditState struct {
	folds *projections.Folds
	// startSeq is the log head before the command being applied.
	startSeq uint64
}

// begin starts a command at log head seq, dropping whatever an aborted
// command folded.
func (a *auditState) begin(seq uint64) {
	a.folds.Discard()
	a.startSeq = seq
}

// committed records that the command's batch committed.
func (a *auditState) committed() { a.folds.Commit() }

// staleProjections is Engine.Stale, plus every projection when the store
// holds records but no fold hashes (it predates them): a rebuild from
// record 1 computes them.
func (m *Machine) staleProjections(db *pebble.DB) ([]string, error) {
	stale, err := m.engine.Stale(db)
	if err != nil || len(stale) > 0 {
		return stale, err
	}
	ok, err := projections.HasFoldMarker(db)
	if err != nil || ok {
		return nil, err
	}
	head, err := rlog.ReadHead(db)
	if err != nil {
		return nil, err
	}
	if head.Seq == 0 {
		// An empty store: nothing to recompute, just mark it.
		return nil, projections.WriteFoldMarker(db)
	}
	for _, p := range m.engine.Projections() {
		stale = append(stale, p.Name()+" (fold hash)")
	}
	return stale, nil
}

// rebuildProjections rebuilds every projection and fold hash in place.
func (m *Machine) rebuildProjections(db *pebble.DB) error {
	return projections.RebuildAll(db, m.engine, m.cfg.Logger)
}

// loadAudit loads the fold hashes of the store just opened.
func (m *Machine) loadAudit(db *pebble.DB) error {
	if m.audit.folds == nil {
		m.audit.folds = projections.NewFolds(m.engine)
	}
	return m.audit.folds.Load(db)
}

// sealCommand ends a decided command: it appends a checkpoint when one is
// due and writes the fold hashes into the command's batch. A rejected
// command's folds are dropped with its batch.
func (x *applyCtx) sealCommand(res *Result) error {
	a := &x.m.audit
	if res.Err != nil {
		a.folds.Discard()
		return nil
	}
	end := x.m.log.Pending().Seq
	if n := x.cmd.CheckpointEvery; n > 0 && end > a.startSeq && end/n > a.startSeq/n {
		if err := x.appendCheckpoint(n); err != nil {
			return err
		}
	}
	return a.folds.Save(x.b)
}

// appendCheckpoint appends a log.checkpoint record for the current head.
func (x *applyCtx) appendCheckpoint(every uint64) error {
	head := x.m.log.Pending()
	cp := facts.Checkpoint{Head: head.Seq, HeadHash: head.Hash, Every: every}
	for _, h := range x.m.audit.folds.Hashes() {
		cp.Projections = append(cp.Projections, facts.CheckpointProjection{Name: h.Name, Version: h.Version, Fold: h.Hash})
	}
	enc, err := facts.Encode(&cp)
	if err != nil {
		return err
	}
	rec := &rlog.Record{RaftIndex: x.index, Time: x.cmd.Time, Type: facts.TypeCheckpoint, Body: enc}
	if _, err := x.m.log.Append(x.b, rec); err != nil {
		return fmt.Errorf("append checkpoint: %w", err)
	}
	return x.m.audit.folds.Apply(x.b, rec)
}

// OpenStateReadOnly opens a state store (a data directory's "state")
// read-only with the machine's options, for offline audits. It fails if a
// running server holds the store.
func OpenStateReadOnly(dir string) (*pebble.DB, error) {
	opts := pebbleOptions()
	opts.ReadOnly = true
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open state store %s read-only: %w", dir, err)
	}
	return db, nil
}

// OpenStateWritable opens a state store read-write without a Machine (no
// rebuild on open), for offline maintenance such as chronicle rebuild,
// with the bulk-load options (StoreOptions). It fails if a running server
// holds the store.
func OpenStateWritable(dir string) (*pebble.DB, error) {
	opts := StoreOptions()
	opts.ErrorIfNotExists = true
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open state store %s: %w", dir, err)
	}
	return db, nil
}

// StoreOptions are the state store's Pebble options for a bulk load: a
// verifier's scratch replay, and chronicle rebuild (OpenStateWritable).
// Such a store is written by one replay and read by nothing else while it
// runs, so on top of the live store's 64 MiB memtables and bloom filters
// (pebbleOptions) it trades memory and read amplification for less
// compaction:
//
//   - A 256 MiB block cache (Pebble's default is 8 MiB): folds read as they
//     write (a room's member list, a thread's totals), and with bulk-load
//     sublevels each such point read otherwise walks every L0 file's index.
//     With the bloom filters they raised the full rebuild of 1M records
//     from 24k to 48k records/s.
//   - L0 is compacted at 8 sublevels, not 4 (and writes stall at 24, not
//     12), so that each compaction into the base level carries twice the
//     data.
//
// Measured on a full rebuild of 1M records (bench/audit): the store wrote
// 2.1 GB for 250 MB flushed with Pebble's defaults, 0.94 GB with the
// larger memtables and 0.71 GB with both, in 11 compactions instead of 72,
// and the rebuild ran twice as fast. A live store keeps Pebble's L0
// thresholds: its readers would pay for every extra sublevel.
func StoreOptions() *pebble.Options {
	opts := pebbleOptions()
	opts.Cache = bulkCache()
	opts.L0CompactionThreshold = 8
	opts.L0StopWritesThreshold = 24
	return opts
}

// bulkCache is the block cache of bulk-load stores, one per process: a
// Pebble cache is manually managed memory, and sharing one bounds it
// however many scratch stores a process opens (an online verify runs in
// the server).
var bulkCache = sync.OnceValue(func() *pebble.Cache { return pebble.NewCache(256 << 20) })
