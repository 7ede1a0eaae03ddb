package projections_test

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	rlog "chronicle/log"
	"chronicle/projections"
)

// write is one scripted write.
type write struct {
	op       byte // 'S', 'D', 'R'
	key, val string
}

// foldOf folds one record whose projection makes the given writes and
// returns the fold hash.
func foldOf(t *testing.T, writes []write) [32]byte {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := fake{name: "f", prefix: 0x30, apply: func(w projections.Writer, rec *rlog.Record) error {
		for _, x := range writes {
			k := append([]byte{0x30}, x.key...)
			var err error
			switch x.op {
			case 'S':
				err = w.Set(k, []byte(x.val), nil)
			case 'D':
				err = w.Delete(k, nil)
			case 'R':
				err = w.DeleteRange(k, append([]byte{0x30}, x.val...), nil)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}}
	e, err := projections.NewEngine(p)
	if err != nil {
		t.Fatal(err)
	}
	f := projections.NewFolds(e)
	b := db.NewIndexedBatch()
	defer b.Close()
	if err := f.Apply(b, &rlog.Record{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	return f.Hashes()[0].Hash
}

func TestFoldIsCanonical(t *testing.T) {
	base := foldOf(t, []write{{'S', "a", "1"}, {'S', "b", "2"}, {'D', "c", ""}})
	same := map[string][]write{
		"independent writes reordered": {{'D', "c", ""}, {'S', "b", "2"}, {'S', "a", "1"}},
		"a key overwritten":            {{'S', "a", "0"}, {'S', "b", "2"}, {'S', "a", "1"}, {'D', "c", ""}},
		"a key deleted then set":       {{'D', "a", ""}, {'S', "a", "1"}, {'S', "b", "2"}, {'D', "c", ""}},
	}
	for name, ws := range same {
		if foldOf(t, ws) != base {
			t.Errorf("%s: fold differs", name)
		}
	}
	differ := map[string][]write{
		"another value":           {{'S', "a", "9"}, {'S', "b", "2"}, {'D', "c", ""}},
		"set then deleted":        {{'S', "a", "1"}, {'S', "b", "2"}, {'D', "c", ""}, {'D', "a", ""}},
		"a delete left out":       {{'S', "a", "1"}, {'S', "b", "2"}},
		"a range deleting a set":  {{'S', "a", "1"}, {'S', "b", "2"}, {'D', "c", ""}, {'R', "a", "b"}},
		"a range before the sets": {{'R', "a", "z"}, {'S', "a", "1"}, {'S', "b", "2"}, {'D', "c", ""}},
	}
	for name, ws := range differ {
		if foldOf(t, ws) == base {
			t.Errorf("%s: fold unchanged", name)
		}
	}
	// A range covering earlier writes is their net effect, whatever they were.
	r1 := foldOf(t, []write{{'S', "a", "1"}, {'R', "a", "b"}})
	r2 := foldOf(t, []write{{'D', "a", ""}, {'R', "a", "b"}})
	if r1 != r2 {
		t.Error("writes a later range covers still count")
	}
	if foldOf(t, nil) != ([32]byte{}) {
		t.Error("a record without writes changed the fold")
	}
}
