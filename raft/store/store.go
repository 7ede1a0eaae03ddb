package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// ErrKeyNotFound is returned by Get and GetUint64 for a missing key. Its text
// must stay exactly "not found": hashicorp/raft compares err.Error() against
// that string to tell a fresh node from a failing store.
var ErrKeyNotFound = errors.New("not found")

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// Store is a raft.LogStore and raft.StableStore backed by a single Pebble
// database. It is safe for concurrent use.
type Store struct {
	db *pebble.DB

	// writeMu serialises log writes with the cache update that follows them,
	// so a DeleteRange recomputing bounds cannot interleave with a StoreLogs
	// and leave first/last describing neither.
	writeMu sync.Mutex
	// first and last cache the lowest and highest stored log index (0 when
	// empty). Raft reads them on hot paths; atomics keep reads lock-free.
	first, last atomic.Uint64

	closed atomic.Bool
}

// Open opens (creating if needed) the Pebble database at dir.
func Open(dir string) (*Store, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		return nil, fmt.Errorf("raft store: open pebble at %s: %w", dir, err)
	}
	s := &Store{db: db}
	if err := s.loadBounds(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("raft store: load log bounds: %w", err)
	}
	return s, nil
}

// quietLogger drops Pebble's routine info chatter (WAL recovery, one line per
// Open) but keeps errors and fatals on Pebble's default logger.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	pebble.DefaultLogger.Errorf(format, args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}

// Close closes the database. Pebble panics on a second Close, so guard it.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return errors.New("raft store: already closed")
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("raft store: close pebble: %w", err)
	}
	return nil
}

// FirstIndex implements raft.LogStore. It returns 0 for an empty log.
func (s *Store) FirstIndex() (uint64, error) { return s.first.Load(), nil }

// LastIndex implements raft.LogStore. It returns 0 for an empty log.
func (s *Store) LastIndex() (uint64, error) { return s.last.Load(), nil }

// GetLog implements raft.LogStore. A missing index yields exactly
// raft.ErrLogNotFound (unwrapped), which raft compares with ==.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	val, closer, err := s.db.Get(logKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("raft store: get log %d: %w", index, err)
	}
	// decodeLog copies, so val is not used after closer.Close.
	err = decodeLog(val, log)
	_ = closer.Close()
	if err != nil {
		return fmt.Errorf("raft store: decode log %d: %w", index, err)
	}
	return nil
}

// StoreLog implements raft.LogStore.
func (s *Store) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs implements raft.LogStore. All entries go in one synced batch, so
// either all of them are durable or none are.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	lo, hi := uint64(math.MaxUint64), uint64(0)
	var buf []byte // Batch.Set copies, so one scratch buffer serves every entry.
	for _, l := range logs {
		buf = encodeLog(buf[:0], l)
		if err := b.Set(logKey(l.Index), buf, nil); err != nil {
			return fmt.Errorf("raft store: batch log %d: %w", l.Index, err)
		}
		lo, hi = min(lo, l.Index), max(hi, l.Index)
	}

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("raft store: commit logs %d-%d: %w", lo, hi, err)
	}
	if first := s.first.Load(); first == 0 || lo < first {
		s.first.Store(lo)
	}
	if hi > s.last.Load() {
		s.last.Store(hi)
	}
	return nil
}

// DeleteRange implements raft.LogStore; both min and max are inclusive. It
// writes a single Pebble range tombstone, so compacting millions of entries
// costs one small write.
func (s *Store) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	end := logUpper // Pebble's end is exclusive; max+1 would overflow here.
	if max < math.MaxUint64 {
		end = logKey(max + 1)
	}

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.db.DeleteRange(logKey(min), end, pebble.Sync); err != nil {
		return fmt.Errorf("raft store: delete logs %d-%d: %w", min, max, err)
	}
	// A hole strictly inside the log leaves both ends in place. Otherwise
	// read the new ends from disk rather than assume the log is contiguous:
	// raft may leave gaps after restoring a snapshot.
	if min > s.first.Load() && max < s.last.Load() {
		return nil
	}
	if err := s.loadBounds(); err != nil {
		return fmt.Errorf("raft store: reload bounds after delete %d-%d: %w", min, max, err)
	}
	return nil
}

// loadBounds sets the first/last cache from the lowest and highest log keys
// on disk. Callers hold writeMu or have exclusive access (Open).
func (s *Store) loadBounds() (err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logLower, UpperBound: logUpper})
	if err != nil {
		return fmt.Errorf("new iterator: %w", err)
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close iterator: %w", cerr)
		}
	}()

	var first, last uint64
	if it.First() {
		var ok bool
		if first, ok = logKeyIndex(it.Key()); !ok {
			return fmt.Errorf("malformed log key %x", it.Key())
		}
		it.Last()
		if last, ok = logKeyIndex(it.Key()); !ok {
			return fmt.Errorf("malformed log key %x", it.Key())
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("iterate logs: %w", err)
	}
	s.first.Store(first)
	s.last.Store(last)
	return nil
}

// Set implements raft.StableStore.
func (s *Store) Set(key, val []byte) error {
	if err := s.db.Set(stableKey(key), val, pebble.Sync); err != nil {
		return fmt.Errorf("raft store: set %q: %w", key, err)
	}
	return nil
}

// Get implements raft.StableStore. A missing key yields ErrKeyNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	val, closer, err := s.db.Get(stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("raft store: get %q: %w", key, err)
	}
	// val is only valid until closer.Close, so hand the caller a copy.
	out := make([]byte, len(val))
	copy(out, val)
	_ = closer.Close()
	return out, nil
}

// SetUint64 implements raft.StableStore. Values are 8 bytes big-endian and
// share the keyspace with Set, as in raft-boltdb.
func (s *Store) SetUint64(key []byte, val uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], val)
	return s.Set(key, b[:])
}

// GetUint64 implements raft.StableStore. A missing key yields 0 and
// ErrKeyNotFound.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	val, err := s.Get(key)
	if err != nil {
		return 0, err // ErrKeyNotFound must reach raft unwrapped.
	}
	if len(val) != 8 {
		return 0, fmt.Errorf("raft store: uint64 %q has %d bytes, want 8", key, len(val))
	}
	return binary.BigEndian.Uint64(val), nil
}
