package projections

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
)

// ReplayOptions shape a Replay.
type ReplayOptions struct {
	// From and To bound the records folded: From 0 is record 1, To 0 the
	// head of the source log.
	From, To uint64
	// BatchBytes commits the batch once it holds this much (default 4 MiB).
	BatchBytes int
	// Before, when set, is called before each record is folded. flush
	// commits everything folded so far, so that the destination then holds
	// the state after the previous record.
	Before func(rec *rlog.Record, flush func() error) error
	// Progress, when set, is called with the number of records folded so
	// far, about every 4096 records.
	Progress func(done uint64)
	// Sync commits the last batch with pebble.Sync.
	Sync bool
}

// Replay folds the records of src's log into dst's projections through
// f, in bounded batches, saving the fold hashes with each batch. src may
// be dst itself (a rebuild in place) or any reader holding a log (a live
// store's snapshot, when dst is a scratch store). It returns the number
// of records folded.
func (f *Folds) Replay(dst *pebble.DB, src pebble.Reader, o ReplayOptions) (uint64, error) {
	if o.BatchBytes <= 0 {
		// Measured (bench/audit, 1M records): with commitSorted, 4 MiB
		// batches fold as fast as larger ones and keep the batch's index
		// small enough to stay in cache.
		o.BatchBytes = 4 << 20
	}
	from := max(o.From, 1)
	// Each batch gets its buffer whole (growing it by doubling copied it
	// twice over), and the sorted copy reuses one.
	size := o.BatchBytes + o.BatchBytes/4
	b := dst.NewIndexedBatchWithSize(size)
	sorted := dst.NewBatchWithSize(size, pebble.WithMaxRetainedSizeBytes(2*size))
	defer func() { b.Close(); sorted.Close() }()
	commit := func(opts *pebble.WriteOptions) error {
		if err := f.Save(b); err != nil {
			return err
		}
		if err := f.commitSorted(b, sorted, opts); err != nil {
			return fmt.Errorf("commit replay batch: %w", err)
		}
		f.Commit()
		b.Close()
		b = dst.NewIndexedBatchWithSize(size)
		return nil
	}
	flush := func() error { return commit(pebble.NoSync) }
	var n uint64
	err := scanAhead(src, from, o.To, f.e.prepare, func(rec *rlog.Record) error {
		if o.Before != nil {
			if err := o.Before(rec, flush); err != nil {
				return err
			}
		}
		if err := f.Apply(b, rec); err != nil {
			return err
		}
		n++
		if b.Len() > o.BatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		if o.Progress != nil && n%4096 == 0 {
			o.Progress(n)
		}
		return nil
	})
	if err != nil {
		f.Discard()
		return n, err
	}
	opts := pebble.NoSync
	if o.Sync {
		opts = pebble.Sync
	}
	if err := commit(opts); err != nil {
		return n, err
	}
	if o.Progress != nil {
		o.Progress(n)
	}
	return n, nil
}

// commitSorted commits the writes of the indexed batch b through sorted,
// an empty batch of the same store, holding them in key order, each key
// once; sorted is empty again afterwards.
//
// Committing b itself inserts every write into the memtable's skiplist in
// the order the fold made them: a projection writes to a few places of its
// key space for every record (an event under its room, an index entry
// under a random event ID, the room's summary), so each insert searched the
// skiplist from the top, missing the cache, and that was the largest part
// of a rebuild's fold. b's own index already holds the writes sorted;
// reading it in order and committing the copy makes each insert land next
// to the previous one, and leaves out the writes a later one in the same
// batch replaced (the room summary, rewritten for every event), which
// also makes the memtable fill and flush less often.
//
// The batch-only iterator shows the last Set of each key and hides what is
// deleted, so the deletes folded since the last commit (kept by Apply) are
// written too: every DeleteRange first, in the order made, so that they
// cover what the store held but no write that followed them; then every
// visible key, and a Delete for each deleted key not set again.
func (f *Folds) commitSorted(b, sorted *pebble.Batch, opts *pebble.WriteOptions) error {
	defer sorted.Reset()
	for _, r := range f.ranges {
		if err := sorted.DeleteRange(r[0], r[1], nil); err != nil {
			return err
		}
	}
	slices.SortFunc(f.dels, bytes.Compare)
	dels := slices.CompactFunc(f.dels, bytes.Equal)
	it, err := b.NewBatchOnlyIter(context.Background(), nil)
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		for ; len(dels) > 0 && bytes.Compare(dels[0], k) <= 0; dels = dels[1:] {
			if !bytes.Equal(dels[0], k) { // else set again after its delete
				if err := sorted.Delete(dels[0], nil); err != nil {
					it.Close()
					return err
				}
			}
		}
		if err := sorted.Set(k, it.Value(), nil); err != nil {
			it.Close()
			return err
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	for _, k := range dels {
		if err := sorted.Delete(k, nil); err != nil {
			return err
		}
	}
	return sorted.Commit(opts)
}

// Rebuild clears f's projections and their fold hashes in db, folds the
// whole log again and stores the projections' code versions; with marker
// it also stores the fold marker (only right when f folds every
// projection of the machine). It is Engine.Rebuild keeping fold hashes.
func (f *Folds) Rebuild(db *pebble.DB, o ReplayOptions, marker bool) (uint64, error) {
	for _, p := range f.e.list {
		if err := db.DeleteRange([]byte{p.Prefix()}, []byte{p.Prefix() + 1}, pebble.NoSync); err != nil {
			return 0, fmt.Errorf("clear projection %s: %w", p.Name(), err)
		}
	}
	f.reset()
	o.From, o.To = 1, 0
	sync := o.Sync
	o.Sync = false
	n, err := f.Replay(db, db, o)
	if err != nil {
		return n, err
	}
	b := db.NewBatch()
	defer b.Close()
	if err := f.e.WriteVersions(b); err != nil {
		return n, err
	}
	if marker {
		if err := WriteFoldMarker(b); err != nil {
			return n, err
		}
	}
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	if err := b.Commit(opts); err != nil {
		return n, fmt.Errorf("commit rebuild: %w", err)
	}
	return n, nil
}

// RebuildAll rebuilds every projection of e in place with fold hashes,
// durably, logging like Engine.Rebuild. The state machine calls it on open
// when a projection's version changed or the store predates fold hashes.
func RebuildAll(db *pebble.DB, e *Engine, logger *slog.Logger) error {
	start := time.Now()
	n, err := NewFolds(e).Rebuild(db, ReplayOptions{Sync: true}, true)
	if err != nil {
		return err
	}
	if n > 0 && logger != nil {
		logger.Info("projections rebuilt", "records", n, "took", time.Since(start))
	}
	return nil
}

// Sub returns an engine of the first k projections of e (those a rebuild
// of the k-th needs: a projection reads only those before it).
func (e *Engine) Sub(k int) *Engine {
	sub, err := NewEngine(e.list[:k:k]...)
	if err != nil {
		panic(err) // a subset of a valid engine is valid
	}
	return sub
}

// errStopped ends a read-ahead whose consumer stopped.
var errStopped = errors.New("replay stopped")

// scanAhead is rlog.Scan with the reading and decoding of records, and
// prepare, on a second goroutine, a few hundred records ahead of fn: on a
// rebuild the fold keeps one core busy and the log read another. A record
// passes from one goroutine to the other once, through the channel.
func scanAhead(src pebble.Reader, from, to uint64, prepare func(*rlog.Record), fn func(*rlog.Record) error) error {
	const chunk = 256
	ch := make(chan []*rlog.Record, 8)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		defer close(ch)
		buf := make([]*rlog.Record, 0, chunk)
		send := func() error {
			select {
			case ch <- buf:
				buf = make([]*rlog.Record, 0, chunk)
				return nil
			case <-stop:
				return errStopped
			}
		}
		err := rlog.Scan(src, from, to, func(rec *rlog.Record, _ []byte) error {
			prepare(rec)
			buf = append(buf, rec)
			if len(buf) == chunk {
				return send()
			}
			return nil
		})
		if err == nil && len(buf) > 0 {
			err = send()
		}
		done <- err
	}()
	var ferr error
	for recs := range ch {
		for _, rec := range recs {
			if ferr = fn(rec); ferr != nil {
				break
			}
		}
		if ferr != nil {
			break
		}
	}
	close(stop)
	for range ch { // let the reader finish before src may be closed
	}
	if err := <-done; ferr == nil && err != errStopped {
		return err
	}
	return ferr
}
