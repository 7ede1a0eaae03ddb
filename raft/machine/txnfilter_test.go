package machine

import (
	"bytes"
	"fmt"
	"testing"
)

// The filter never loses a key, across segment growth, and says "maybe"
// for few keys it never saw.
func TestTxnFilterNoFalseNegatives(t *testing.T) {
	f := newTxnFilter()
	const n = 5 * firstSegmentKeys // three segments
	for i := range n {
		f.add(fmt.Appendf(nil, "added-%d", i))
	}
	if len(f.segs) < 3 {
		t.Fatalf("%d keys in %d segments; want growth", n, len(f.segs))
	}
	for i := range n {
		if !f.mayContain(fmt.Appendf(nil, "added-%d", i)) {
			t.Fatalf("key %d was added but is reported absent", i)
		}
	}
	fp := 0
	for i := range 100_000 {
		if f.mayContain(fmt.Appendf(nil, "never-%d", i)) {
			fp++
		}
	}
	// About 1% per full segment; the last one is partly full.
	if fp > 4000 {
		t.Fatalf("%d of 100000 absent keys reported present", fp)
	}
	if newTxnFilter().mayContain([]byte("x")) {
		t.Fatalf("an empty filter reports a key")
	}
}

// A retried transaction still answers with its first event after the
// machine was restored from a snapshot, which rebuilds the filter from the
// restored store.
func TestTxnRetryAfterRestore(t *testing.T) {
	a := openMachine(t, t.TempDir())
	defer a.Close()
	w := newWorkload(t, a)
	alice, room := aliceWithRoom(w, "r")
	first := w.send(alice, "A", room, "t1", "hello")
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteSnapshot(snap, &buf); err != nil {
		t.Fatal(err)
	}
	snap.Close()

	b := openMachine(t, t.TempDir())
	defer b.Close()
	if err := b.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	wb := newWorkload(t, b)
	wb.idx = w.idx
	head := headOf(t, b)
	again := wb.send(alice, "A", room, "t1", "hello again")
	if again.EventID != first.EventID || headOf(t, b) != head {
		t.Fatalf("retry after restore: %+v (head %d -> %d), first %+v", again, head.Seq, headOf(t, b).Seq, first)
	}
	if other := wb.send(alice, "A", room, "t2", "new"); other.EventID == first.EventID {
		t.Fatalf("a new transaction got the first one's event")
	}
}
