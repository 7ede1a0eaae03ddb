package projections

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	rlog "chronicle/log"
)

// scripted makes random writes, reads and deletes over a small key space,
// the same ones for the same record, so that keys are written, replaced,
// deleted and written again within one batch.
type scripted struct{}

func (scripted) Name() string    { return "scripted" }
func (scripted) Version() uint32 { return 1 }
func (scripted) Prefix() byte    { return 0x30 }
func (scripted) Apply(w Writer, rec *rlog.Record) error {
	rng := rand.New(rand.NewPCG(rec.Seq, 7))
	key := func() []byte { return fmt.Appendf(nil, "\x30k%02d", rng.IntN(40)) }
	for range 1 + rng.IntN(6) {
		var err error
		switch n := rng.IntN(10); {
		case n < 6:
			err = w.Set(key(), fmt.Appendf(nil, "v%d", rec.Seq), nil)
		case n < 8:
			err = w.Delete(key(), nil)
		case n < 9:
			a, b := key(), key()
			if bytes.Compare(a, b) > 0 {
				a, b = b, a
			}
			err = w.DeleteRange(a, b, nil)
		default:
			// A read of the batch's own writes, as folds do.
			v, closer, gerr := w.Get(key())
			if gerr == nil {
				_ = len(v)
				closer.Close()
			} else if gerr != pebble.ErrNotFound {
				err = gerr
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func contents(t *testing.T, db *pebble.DB) string {
	t.Helper()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out bytes.Buffer
	for it.First(); it.Valid(); it.Next() {
		fmt.Fprintf(&out, "%q=%q ", it.Key(), it.Value())
	}
	return out.String()
}

// A batch committed in key order leaves the store exactly as committing
// the batch itself does, whatever mix of sets, deletes and range deletes
// it holds, over a store that already holds keys.
func TestCommitSortedEqualsCommit(t *testing.T) {
	open := func() *pebble.DB {
		db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		for i := range 40 {
			if i%3 != 0 {
				if err := db.Set(fmt.Appendf(nil, "\x30k%02d", i), []byte("old"), nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		return db
	}
	e, err := NewEngine(scripted{})
	if err != nil {
		t.Fatal(err)
	}
	sortedDB, plainDB := open(), open()
	sortedF, plainF := NewFolds(e), NewFolds(e)
	sorted := sortedDB.NewBatch(pebble.WithMaxRetainedSizeBytes(1 << 20)) // reused, as Replay does
	defer sorted.Close()
	seq := uint64(0)
	for batch := range 200 {
		sb, pb := sortedDB.NewIndexedBatch(), plainDB.NewIndexedBatch()
		for range 1 + batch%9 {
			seq++
			rec := &rlog.Record{Seq: seq}
			if err := sortedF.Apply(sb, rec); err != nil {
				t.Fatal(err)
			}
			if err := plainF.Apply(pb, rec); err != nil {
				t.Fatal(err)
			}
		}
		if err := sortedF.commitSorted(sb, sorted, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		sortedF.Commit()
		if err := pb.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		plainF.Commit()
		sb.Close()
		pb.Close()
		if got, want := contents(t, sortedDB), contents(t, plainDB); got != want {
			t.Fatalf("after batch %d (record %d):\nsorted %s\nplain  %s", batch, seq, got, want)
		}
	}
}
