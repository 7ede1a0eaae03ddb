package machine

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// snapshotMagic starts every state snapshot stream (format version 2).
//
// Format: magic, then entries (uvarint key length > 0, key, uvarint value
// length, value), then a trailer: a zero key length, the entry count (8
// bytes BE) and the SHA-256 of every byte before the hash. A stream cut
// anywhere, or altered, fails to restore.
var snapshotMagic = []byte("CHRSNAP2")

// Snapshot captures the state store at this instant. It is cheap (a Pebble
// snapshot); the copying happens in WriteSnapshot, off the FSM goroutine.
func (m *Machine) Snapshot() (*pebble.Snapshot, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.db == nil {
		return nil, errors.New("state store is closed")
	}
	return m.db.NewSnapshot(), nil
}

// WriteSnapshot streams every key and value of snap in the format above.
func WriteSnapshot(snap *pebble.Snapshot, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	h := sha256.New()
	out := io.MultiWriter(bw, h)
	if _, err := out.Write(snapshotMagic); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{0x00}, UpperBound: []byte{0xff}})
	if err != nil {
		return fmt.Errorf("snapshot iterator: %w", err)
	}
	defer it.Close()
	var count uint64
	for it.First(); it.Valid(); it.Next() {
		for _, part := range [][]byte{it.Key(), it.Value()} {
			if err := writePart(out, part); err != nil {
				return err
			}
		}
		count++
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("read state for snapshot: %w", err)
	}
	trailer := binary.BigEndian.AppendUint64([]byte{0}, count)
	if _, err := out.Write(trailer); err != nil {
		return fmt.Errorf("write snapshot trailer: %w", err)
	}
	if _, err := bw.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("write snapshot trailer: %w", err)
	}
	return bw.Flush()
}

func writePart(w io.Writer, part []byte) error {
	var lenBuf [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(lenBuf[:], uint64(len(part)))
	if _, err := w.Write(lenBuf[:n]); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if _, err := w.Write(part); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// Restore replaces the whole state store with a snapshot stream: it loads
// the stream into a fresh store beside the live one, then swaps them, so a
// failed restore leaves the old state intact.
func (m *Machine) Restore(r io.Reader) error {
	tmp := m.dir + ".restore"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("clear restore dir: %w", err)
	}
	if err := loadSnapshot(tmp, r); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.db != nil {
		// With the lock held no new snapshot can start; wait for those
		// already handed out (a backup or Raft snapshot still streaming)
		// rather than close the store under them.
		if err := m.waitSnapshotsClosed(time.Minute); err != nil {
			return err
		}
		if err := m.db.Close(); err != nil {
			return fmt.Errorf("close state store for restore: %w", err)
		}
		m.db = nil
	}
	old := m.dir + ".old"
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("clear old state dir: %w", err)
	}
	if err := os.Rename(m.dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("move old state aside: %w", err)
	}
	if err := os.Rename(tmp, m.dir); err != nil {
		return fmt.Errorf("install restored state: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("remove old state: %w", err)
	}
	return m.open()
}

func loadSnapshot(dir string, r io.Reader) error {
	db, err := pebble.Open(dir, pebbleOptions())
	if err != nil {
		return fmt.Errorf("open restore store: %w", err)
	}
	if err := fillFromSnapshot(db, r); err != nil {
		db.Close()
		return fmt.Errorf("restore snapshot: %w", err)
	}
	return db.Close()
}

// hashingReader hashes every byte it reads.
type hashingReader struct {
	r *bufio.Reader
	h hash.Hash
}

func (hr *hashingReader) ReadByte() (byte, error) {
	b, err := hr.r.ReadByte()
	if err == nil {
		hr.h.Write([]byte{b})
	}
	return b, err
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	return n, err
}

func fillFromSnapshot(db *pebble.DB, r io.Reader) error {
	hr := &hashingReader{r: bufio.NewReaderSize(r, 1<<20), h: sha256.New()}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(hr, magic); err != nil || !bytes.Equal(magic, snapshotMagic) {
		return errors.New("not a Chronicle state snapshot")
	}
	b := db.NewBatch()
	var count uint64
	for {
		key, err := readPart(hr)
		if err != nil {
			return fmt.Errorf("entry %d key: %w", count, err)
		}
		if len(key) == 0 {
			break // trailer
		}
		val, err := readPart(hr)
		if err != nil {
			return fmt.Errorf("entry %d value: %w", count, err)
		}
		if err := b.Set(key, val, nil); err != nil {
			return fmt.Errorf("load entry %d: %w", count, err)
		}
		count++
		if b.Len() > 16<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("load snapshot: %w", err)
			}
			b = db.NewBatch()
		}
	}
	var want [8]byte
	if _, err := io.ReadFull(hr, want[:]); err != nil {
		return fmt.Errorf("trailer: %w", unexpectedEOF(err))
	}
	if n := binary.BigEndian.Uint64(want[:]); n != count {
		return fmt.Errorf("trailer says %d entries, stream held %d", n, count)
	}
	sum := hr.h.Sum(nil)
	var got [sha256.Size]byte
	if _, err := io.ReadFull(hr.r, got[:]); err != nil {
		return fmt.Errorf("trailer hash: %w", unexpectedEOF(err))
	}
	if !bytes.Equal(sum, got[:]) {
		return errors.New("snapshot checksum mismatch")
	}
	if _, err := hr.r.ReadByte(); err != io.EOF {
		return errors.New("bytes after the snapshot trailer")
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("load snapshot: %w", err)
	}
	return nil
}

// readPart reads one length-prefixed part; any end of stream inside it is
// a truncation.
func readPart(hr *hashingReader) ([]byte, error) {
	n, err := binary.ReadUvarint(hr)
	if err != nil {
		return nil, unexpectedEOF(err)
	}
	if n > 1<<30 {
		return nil, fmt.Errorf("entry of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(hr, buf); err != nil {
		return nil, unexpectedEOF(err)
	}
	return buf, nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("snapshot truncated: %w", io.ErrUnexpectedEOF)
	}
	return err
}

// pebbleOptions are the live state store's options.
//
//   - 64 MiB memtables (Pebble's default is 4 MiB). A command writes under
//     many projections' prefixes, so every flush spans most of the key
//     space and each compaction of L0 rewrites most of the base level: the
//     compaction work per command falls with the flush size. Measured:
//     BenchmarkApplySend (60,000 sends) uses 15% less CPU; on a 3-node
//     cluster under the load benchmark compaction fell from 12% to 5% of
//     each node's CPU, but point reads into the larger memtable cost
//     about as much more, so the cluster's CPU per send moved by less
//     than its noise. Pebble grows a memtable to this size only as it
//     fills, so an idle server does not hold it; the WAL replayed on
//     restart is at most this long.
//   - Bloom filters on every level: deciding reads keys that are usually
//     absent (a transaction ID not seen before), and without a filter each
//     such read searches every L0 file and level's index.
func pebbleOptions() *pebble.Options {
	opts := &pebble.Options{Logger: quietLogger{}, MemTableSize: 64 << 20}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return opts
}

// quietLogger drops Pebble's informational chatter but keeps errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
	os.Exit(1)
}

// waitSnapshotsClosed waits until no Pebble snapshot of the store is open.
// It polls: a restore is rare and snapshots have no close hook to wait on.
func (m *Machine) waitSnapshotsClosed(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for m.db.Metrics().Snapshots.Count > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("restore: %d snapshots of the state store still open after %s", m.db.Metrics().Snapshots.Count, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
