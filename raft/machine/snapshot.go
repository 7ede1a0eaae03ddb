package machine

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2"
)

// snapshotMagic starts every state snapshot stream (format version 1).
var snapshotMagic = []byte("CHRSNAP1")

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

// WriteSnapshot streams every key and value of snap as
// (uvarint len, key, uvarint len, value)*, after the magic.
func WriteSnapshot(snap *pebble.Snapshot, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.Write(snapshotMagic); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{0x00}, UpperBound: []byte{0xff}})
	if err != nil {
		return fmt.Errorf("snapshot iterator: %w", err)
	}
	defer it.Close()
	var lenBuf [binary.MaxVarintLen64]byte
	for it.First(); it.Valid(); it.Next() {
		for _, part := range [][]byte{it.Key(), it.Value()} {
			n := binary.PutUvarint(lenBuf[:], uint64(len(part)))
			if _, err := bw.Write(lenBuf[:n]); err != nil {
				return fmt.Errorf("write snapshot: %w", err)
			}
			if _, err := bw.Write(part); err != nil {
				return fmt.Errorf("write snapshot: %w", err)
			}
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("read state for snapshot: %w", err)
	}
	return bw.Flush()
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
	prevLog := m.log
	if err := m.open(); err != nil {
		return err
	}
	// Keep the Log value that readers already hold, so their waits see
	// the restored head.
	if prevLog != nil {
		if err := prevLog.Reset(m.db); err != nil {
			return err
		}
		m.log = prevLog
	}
	return nil
}

func loadSnapshot(dir string, r io.Reader) error {
	db, err := pebble.Open(dir, pebbleOptions())
	if err != nil {
		return fmt.Errorf("open restore store: %w", err)
	}
	br := bufio.NewReaderSize(r, 1<<20)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != string(snapshotMagic) {
		db.Close()
		return fmt.Errorf("not a Chronicle state snapshot")
	}
	b := db.NewBatch()
	for {
		key, err := readPart(br)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			db.Close()
			return err
		}
		val, err := readPart(br)
		if err != nil {
			db.Close()
			return fmt.Errorf("snapshot value: %w", err)
		}
		if err := b.Set(key, val, nil); err != nil {
			db.Close()
			return fmt.Errorf("load snapshot: %w", err)
		}
		if b.Len() > 16<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				db.Close()
				return fmt.Errorf("load snapshot: %w", err)
			}
			b = db.NewBatch()
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		db.Close()
		return fmt.Errorf("load snapshot: %w", err)
	}
	return db.Close()
}

func readPart(br *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, err
	}
	if n > 1<<30 {
		return nil, fmt.Errorf("snapshot entry of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(br, buf); err != nil {
		return nil, fmt.Errorf("snapshot truncated: %w", err)
	}
	return buf, nil
}

// pebbleOptions are the state store's options.
func pebbleOptions() *pebble.Options {
	return &pebble.Options{Logger: quietLogger{}}
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
