package machine

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
)

// RestoreBackup loads a state snapshot stream (the format WriteSnapshot
// writes, and GET /_chronicle/v1/backup serves) into a new state store at
// stateDir, prepares it to seed a new Raft cluster and verifies its record
// log's hash chain. It returns the verified log head.
//
// stateDir must not exist or be empty. On any error nothing is left there:
// a half-restored store is removed rather than started.
//
// # Why the applied Raft index is reset
//
// The state store remembers the last Raft index it applied (key 0x04), so
// that after a restart a node skips the log entries whose effects it
// already holds: Apply ignores every index at or below it. That index
// belongs to the Raft log of the cluster the backup was taken from. The
// restored store is not started back into that log: `chronicle serve` on
// the restored data directory finds no Raft state and bootstraps a NEW
// cluster, whose log starts again at index 1. Were the old index kept (say
// 50000), the new cluster's first 50000 commands would all be skipped as
// "already applied": accepted and committed by Raft, yet never decided,
// never recorded and never visible - and every node joining later would
// skip them the same way. So the applied index is deleted, which reads as
// 0: every entry of the new log applies.
//
// Nothing else changes. The record log and the projections are exactly
// as in the backup, so the head, the hash chain and the projection digests
// stay those of the source; the records' own RaftIndex fields keep naming
// the old cluster's indexes, which is history, not state. The cluster
// registry (projection prefix 0x40) is kept too: it is folded from records
// in the log, and dropping it would make the projections disagree with a
// rebuild from the log. The new node announces itself, and Raft's own
// configuration, not the registry, decides who is a member.
func RestoreBackup(stateDir string, r io.Reader) (head rlog.Position, err error) {
	if err := requireEmptyDir(stateDir); err != nil {
		return head, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(stateDir)
		}
	}()
	if err := loadSnapshot(stateDir, r); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return head, fmt.Errorf("backup truncated: %w", err)
		}
		return head, err
	}
	db, err := pebble.Open(stateDir, pebbleOptions())
	if err != nil {
		return head, fmt.Errorf("open restored state store: %w", err)
	}
	head, err = prepareRestored(db)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close restored state store: %w", cerr)
	}
	return head, err
}

// prepareRestored resets the applied index (see RestoreBackup) and verifies
// the hash chain from record 1 to the stored head.
func prepareRestored(db *pebble.DB) (rlog.Position, error) {
	if err := db.Delete(appliedKey, pebble.Sync); err != nil {
		return rlog.Position{}, fmt.Errorf("reset applied index: %w", err)
	}
	head, err := rlog.VerifyChain(db)
	if err != nil {
		return rlog.Position{}, fmt.Errorf("restored record log: %w", err)
	}
	return head, nil
}

// requireEmptyDir accepts a missing or empty directory.
func requireEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty: refusing to restore over an existing state store", dir)
	}
	return nil
}
