package log

import (
	"bytes"
	"errors"
	"fmt"
	stdlog "log"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// openDB opens a real Pebble instance in a temp dir and closes it at the end
// of the test.
func openDB(tb testing.TB) *pebble.DB {
	tb.Helper()
	db, _ := openDBAt(tb, tb.TempDir())
	return db
}

// openDBAt opens dir and returns the DB and an idempotent close; the DB is
// closed at the end of the test unless closed earlier.
func openDBAt(tb testing.TB, dir string) (*pebble.DB, func() error) {
	tb.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		tb.Fatalf("pebble.Open: %v", err)
	}
	var once sync.Once
	var cerr error
	closeDB := func() error {
		once.Do(func() { cerr = db.Close() })
		return cerr
	}
	tb.Cleanup(func() {
		if err := closeDB(); err != nil {
			tb.Errorf("close pebble: %v", err)
		}
	})
	return db, closeDB
}

// quietLogger drops Pebble's info chatter ("Found 0 WALs" on every open),
// which otherwise lands in the middle of benchmark result lines; errors
// still reach stderr.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)              {}
func (quietLogger) Errorf(format string, args ...any) { stdlog.Printf(format, args...) }
func (quietLogger) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func openLog(tb testing.TB, r pebble.Reader) *Log {
	tb.Helper()
	l, err := Open(r)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return l
}

// testRecord builds the i-th record of a deterministic test stream. Seq and
// PrevHash are left zero: Append assigns them.
func testRecord(i int) *Record {
	return &Record{
		RaftIndex: uint64(1000 + i),
		Time:      1_700_000_000_000 + int64(i),
		Type:      "m.room.message",
		Actor:     fmt.Sprintf("@user%d:example.org", i%7),
		Body:      []byte(fmt.Sprintf(`{"body":"message %d","n":%d}`, i, i)),
	}
}

// appendRecords appends testRecord(first..first+n-1) in batches of perBatch,
// committing each batch with wo, then calling Committed and Publish. It
// returns the positions Append returned, in order.
func appendRecords(tb testing.TB, db *pebble.DB, l *Log, first, n, perBatch int, wo *pebble.WriteOptions) []Position {
	tb.Helper()
	var out []Position
	for i := 0; i < n; {
		b := db.NewBatch()
		for j := 0; j < perBatch && i < n; j, i = j+1, i+1 {
			pos, err := l.Append(b, testRecord(first+i))
			if err != nil {
				b.Close()
				tb.Fatalf("Append: %v", err)
			}
			out = append(out, pos)
		}
		if err := b.Commit(wo); err != nil {
			tb.Fatalf("Commit: %v", err)
		}
		b.Close()
		l.Committed()
		l.Publish()
	}
	return out
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestOpenEmpty(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)
	if h := l.Head(); h != (Position{}) {
		t.Fatalf("empty log head = %+v, want zero", h)
	}
	if p := l.Pending(); p != (Position{}) {
		t.Fatalf("empty log pending = %+v, want zero", p)
	}
	if _, err := Get(db, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(1) on empty log: err = %v, want ErrNotFound", err)
	}
	n := 0
	if err := Scan(db, 1, 0, func(*Record, []byte) error { n++; return nil }); err != nil {
		t.Fatalf("Scan empty: %v", err)
	}
	if n != 0 {
		t.Fatalf("Scan on empty log visited %d records", n)
	}
}

func TestAppendDenseSeqsAndChain(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)

	const n = 60
	// Mixed batch sizes: 1, 2, 3, ... so records both share and straddle
	// batches.
	var pos []Position
	for i, size := 0, 1; i < n; size++ {
		if size > n-i {
			size = n - i
		}
		pos = append(pos, appendRecords(t, db, l, i, size, size, pebble.Sync)...)
		i += size
		if h := l.Head(); h != pos[len(pos)-1] {
			t.Fatalf("after %d records Head = %+v, want %+v", i, h, pos[len(pos)-1])
		}
	}
	if len(pos) != n {
		t.Fatalf("got %d positions, want %d", len(pos), n)
	}

	for i, p := range pos {
		seq := uint64(i + 1)
		if p.Seq != seq {
			t.Fatalf("position %d has seq %d, want %d", i, p.Seq, seq)
		}
		rec, err := Get(db, seq)
		if err != nil {
			t.Fatalf("Get(%d): %v", seq, err)
		}
		want := testRecord(i)
		if rec.Seq != seq || rec.RaftIndex != want.RaftIndex || rec.Time != want.Time ||
			rec.Type != want.Type || rec.Actor != want.Actor || !bytes.Equal(rec.Body, want.Body) {
			t.Fatalf("Get(%d) = %+v, want fields of %+v", seq, rec, want)
		}
		var wantPrev Hash // zero for record 1
		if i > 0 {
			wantPrev = pos[i-1].Hash
		}
		if rec.PrevHash != wantPrev {
			t.Fatalf("record %d PrevHash = %s, want %s", seq, rec.PrevHash, wantPrev)
		}
		h, err := rec.Hash()
		if err != nil {
			t.Fatalf("Hash: %v", err)
		}
		if h != p.Hash {
			t.Fatalf("record %d hash = %s, Append returned %s", seq, h, p.Hash)
		}
	}
	if pos[0].Hash == (Hash{}) {
		t.Fatal("record 1 has zero hash")
	}

	head := pos[n-1]
	if h := l.Head(); h != head {
		t.Fatalf("Head = %+v, want %+v", h, head)
	}
	if p := l.Pending(); p != head {
		t.Fatalf("Pending = %+v, want %+v", p, head)
	}
	stored, err := ReadHead(db)
	if err != nil {
		t.Fatalf("ReadHead: %v", err)
	}
	if stored != head {
		t.Fatalf("stored head = %+v, want %+v", stored, head)
	}
	if _, err := Get(db, n+1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(head+1): err = %v, want ErrNotFound", err)
	}
	if _, err := Get(db, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(0): err = %v, want ErrNotFound", err)
	}
	if got, err := VerifyChain(db); err != nil || got != head {
		t.Fatalf("VerifyChain = %+v, %v; want %+v, nil", got, err, head)
	}
}

// TestAppendAssignsSeqAndPrevHash checks Append overwrites whatever Seq and
// PrevHash the caller left in the record.
func TestAppendAssignsSeqAndPrevHash(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)
	b := db.NewBatch()
	defer b.Close()
	rec := testRecord(0)
	rec.Seq = 42
	rec.PrevHash = Hash{1, 2, 3}
	p1, err := l.Append(b, rec)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Seq != 1 || rec.PrevHash != (Hash{}) || p1.Seq != 1 {
		t.Fatalf("after Append: rec.Seq=%d rec.PrevHash=%s pos=%+v", rec.Seq, rec.PrevHash, p1)
	}
	rec2 := testRecord(1)
	p2, err := l.Append(b, rec2)
	if err != nil {
		t.Fatal(err)
	}
	if rec2.Seq != 2 || rec2.PrevHash != p1.Hash || p2.Seq != 2 {
		t.Fatalf("second Append: rec.Seq=%d rec.PrevHash=%s pos=%+v", rec2.Seq, rec2.PrevHash, p2)
	}
}

// TestHeadNotVisibleBeforePublish checks that neither Append, Commit nor
// Committed moves Head; only Publish after Committed does.
func TestHeadNotVisibleBeforePublish(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)
	first := appendRecords(t, db, l, 0, 3, 3, pebble.Sync)
	committed := first[2]

	b := db.NewBatch()
	defer b.Close()
	p, err := l.Append(b, testRecord(3))
	if err != nil {
		t.Fatal(err)
	}
	if h := l.Head(); h != committed {
		t.Fatalf("Head after Append = %+v, want %+v", h, committed)
	}
	if pd := l.Pending(); pd != p {
		t.Fatalf("Pending after Append = %+v, want %+v", pd, p)
	}
	l.Publish() // appended but not committed: nothing to publish
	if h := l.Head(); h != committed {
		t.Fatalf("Head after Publish of an uncommitted append = %+v, want %+v", h, committed)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if h := l.Head(); h != committed {
		t.Fatalf("Head after Commit = %+v, want %+v", h, committed)
	}
	l.Publish() // committed to Pebble but Committed not called yet
	if h := l.Head(); h != committed {
		t.Fatalf("Head after Publish without Committed = %+v, want %+v", h, committed)
	}
	l.Committed()
	if h := l.Head(); h != committed {
		t.Fatalf("Head after Committed, before Publish = %+v, want %+v", h, committed)
	}
	l.Publish()
	if h := l.Head(); h != p {
		t.Fatalf("Head after Publish = %+v, want %+v", h, p)
	}
}

func TestScanBounds(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)
	const n = 20
	pos := appendRecords(t, db, l, 0, n, 7, pebble.Sync)

	seqRange := func(lo, hi uint64) []uint64 {
		var s []uint64
		for q := lo; q <= hi; q++ {
			s = append(s, q)
		}
		return s
	}
	cases := []struct {
		name     string
		from, to uint64
		want     []uint64
	}{
		{"all to=0", 1, 0, seqRange(1, n)},
		{"from 0 to=0", 0, 0, seqRange(1, n)},
		{"all explicit", 1, n, seqRange(1, n)},
		{"first only", 1, 1, []uint64{1}},
		{"last only", n, n, []uint64{n}},
		{"last to=0", n, 0, []uint64{n}},
		{"middle", 5, 9, seqRange(5, 9)},
		{"to beyond head", 15, n + 100, seqRange(15, n)},
		{"to max uint64", 18, math.MaxUint64, seqRange(18, n)},
		{"from beyond head", n + 1, 0, nil},
		{"from beyond head, explicit to", n + 1, n + 5, nil},
		{"empty from=to+1", 7, 6, nil},
		{"from 0 to 0-record only", 0, 1, []uint64{1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []uint64
			err := Scan(db, tc.from, tc.to, func(rec *Record, raw []byte) error {
				got = append(got, rec.Seq)
				// raw is exactly the canonical encoding: its hash is the
				// chain hash Append returned.
				if h := hashBytes(raw); h != pos[rec.Seq-1].Hash {
					t.Errorf("record %d: hash(raw) = %s, want %s", rec.Seq, h, pos[rec.Seq-1].Hash)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("Scan(%d, %d): %v", tc.from, tc.to, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("Scan(%d, %d) visited %v, want %v", tc.from, tc.to, got, tc.want)
			}
		})
	}
}

// TestScanFromAfterTo checks an inverted range (from > to+1) visits nothing
// rather than erroring or panicking.
func TestScanFromAfterTo(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)
	appendRecords(t, db, l, 0, 10, 10, pebble.Sync)
	var got []uint64
	err := Scan(db, 8, 3, func(rec *Record, _ []byte) error {
		got = append(got, rec.Seq)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(8, 3): %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("Scan(8, 3) visited %v, want nothing", got)
	}
}

// TestScanRecordsOutliveIterator checks decoded records (including Body) do
// not alias iterator memory: they stay intact after Scan returns.
func TestScanRecordsOutliveIterator(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)
	const n = 50
	appendRecords(t, db, l, 0, n, 10, pebble.Sync)
	if err := db.Flush(); err != nil { // read from sstables, not the memtable
		t.Fatal(err)
	}
	var recs []*Record
	if err := Scan(db, 1, 0, func(rec *Record, _ []byte) error {
		recs = append(recs, rec)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("got %d records, want %d", len(recs), n)
	}
	for i, rec := range recs {
		if want := testRecord(i); !bytes.Equal(rec.Body, want.Body) || rec.Actor != want.Actor {
			t.Fatalf("record %d changed after Scan returned: %+v", i+1, rec)
		}
	}
}

func TestScanStopsOnCallbackError(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)
	appendRecords(t, db, l, 0, 10, 10, pebble.Sync)
	stop := errors.New("stop")
	var got []uint64
	err := Scan(db, 1, 0, func(rec *Record, _ []byte) error {
		got = append(got, rec.Seq)
		if rec.Seq == 4 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Scan err = %v, want the callback's error", err)
	}
	if fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("Scan visited %v after the callback failed at 4", got)
	}
}

// TestScanSnapshot checks Get/Scan honour the reader they are given: a
// snapshot taken before later appends does not see them.
func TestScanSnapshot(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)
	appendRecords(t, db, l, 0, 5, 5, pebble.Sync)
	snap := db.NewSnapshot()
	defer snap.Close()
	appendRecords(t, db, l, 5, 5, 5, pebble.Sync)

	n := 0
	if err := Scan(snap, 1, 0, func(*Record, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("snapshot Scan visited %d records, want 5", n)
	}
	if _, err := Get(snap, 6); !errors.Is(err, ErrNotFound) {
		t.Fatalf("snapshot Get(6): err = %v, want ErrNotFound", err)
	}
	if h, err := ReadHead(snap); err != nil || h.Seq != 5 {
		t.Fatalf("snapshot ReadHead = %+v, %v; want seq 5", h, err)
	}
	if _, err := Get(db, 10); err != nil {
		t.Fatalf("db Get(10): %v", err)
	}
}

func TestAbortDropsPendingAppends(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)
	committed := appendRecords(t, db, l, 0, 3, 3, pebble.Sync)
	head := committed[2]
	_, ch := l.Changed()

	// Two appends into a batch that is never committed.
	b := db.NewBatch()
	for i := 0; i < 2; i++ {
		rec := &Record{Type: "aborted", Body: []byte("never committed")}
		p, err := l.Append(b, rec)
		if err != nil {
			t.Fatal(err)
		}
		if p.Seq != head.Seq+uint64(i)+1 {
			t.Fatalf("aborted append %d got seq %d", i, p.Seq)
		}
	}
	b.Close()
	l.Abort()

	if p := l.Pending(); p != head {
		t.Fatalf("Pending after Abort = %+v, want %+v", p, head)
	}
	if h := l.Head(); h != head {
		t.Fatalf("Head after Abort = %+v, want %+v", h, head)
	}
	if isClosed(ch) {
		t.Fatal("Abort closed the Changed channel")
	}
	l.Publish() // nothing new: must not wake anyone
	if isClosed(ch) {
		t.Fatal("Publish after Abort closed the Changed channel")
	}

	// The next append reuses seq 4 and chains to record 3.
	next := appendRecords(t, db, l, 3, 1, 1, pebble.Sync)[0]
	if next.Seq != head.Seq+1 {
		t.Fatalf("append after Abort got seq %d, want %d", next.Seq, head.Seq+1)
	}
	rec, err := Get(db, next.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Type == "aborted" || rec.PrevHash != head.Hash {
		t.Fatalf("record %d after Abort = %+v; want the new record chained to %s", next.Seq, rec, head.Hash)
	}
	if !isClosed(ch) {
		t.Fatal("Publish of a real append did not close the Changed channel")
	}
	if _, err := Get(db, next.Seq+1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("aborted record %d is readable: err = %v", next.Seq+1, err)
	}
	if got, err := VerifyChain(db); err != nil || got != next {
		t.Fatalf("VerifyChain = %+v, %v; want %+v, nil", got, err, next)
	}
}

// TestAbortOnEmptyLog covers Abort on a log whose only
// appends were aborted: it goes back to the empty head.
func TestAbortOnEmptyLog(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)
	b := db.NewBatch()
	if _, err := l.Append(b, testRecord(0)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	l.Abort()
	if p := l.Pending(); p != (Position{}) {
		t.Fatalf("Pending = %+v, want zero", p)
	}
	p := appendRecords(t, db, l, 0, 1, 1, pebble.Sync)[0]
	rec, err := Get(db, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Seq != 1 || rec.PrevHash != (Hash{}) {
		t.Fatalf("first record after Abort: pos %+v prev %s", p, rec.PrevHash)
	}
}

func TestReopenRestoresHead(t *testing.T) {
	dir := t.TempDir()
	db, closeDB := openDBAt(t, dir)
	l := openLog(t, db)
	pos := appendRecords(t, db, l, 0, 25, 4, pebble.Sync)
	head := pos[len(pos)-1]

	// Leave an aborted append behind: it must not survive the reopen.
	b := db.NewBatch()
	if _, err := l.Append(b, testRecord(999)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := closeDB(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	db2, _ := openDBAt(t, dir)
	l2 := openLog(t, db2)
	if h := l2.Head(); h != head {
		t.Fatalf("Head after reopen = %+v, want %+v", h, head)
	}
	if p := l2.Pending(); p != head {
		t.Fatalf("Pending after reopen = %+v, want %+v", p, head)
	}
	more := appendRecords(t, db2, l2, 25, 5, 5, pebble.Sync)
	if more[0].Seq != head.Seq+1 {
		t.Fatalf("first append after reopen got seq %d, want %d", more[0].Seq, head.Seq+1)
	}
	rec, err := Get(db2, more[0].Seq)
	if err != nil {
		t.Fatal(err)
	}
	if rec.PrevHash != head.Hash {
		t.Fatalf("record %d PrevHash = %s, want %s", rec.Seq, rec.PrevHash, head.Hash)
	}
	if got, err := VerifyChain(db2); err != nil || got != more[len(more)-1] {
		t.Fatalf("VerifyChain after reopen = %+v, %v", got, err)
	}
}

func TestChangedClosedOnlyByPublish(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)

	p0, ch := l.Changed()
	if p0 != (Position{}) {
		t.Fatalf("Changed on empty log = %+v", p0)
	}
	if isClosed(ch) {
		t.Fatal("channel closed before anything happened")
	}
	l.Publish() // nothing pending
	if isClosed(ch) {
		t.Fatal("Publish with no appends closed the channel")
	}

	b := db.NewBatch()
	defer b.Close()
	p1, err := l.Append(b, testRecord(0))
	if err != nil {
		t.Fatal(err)
	}
	if isClosed(ch) {
		t.Fatal("channel closed by Append")
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if isClosed(ch) {
		t.Fatal("channel closed by Commit, before Publish")
	}
	l.Committed()
	if isClosed(ch) {
		t.Fatal("channel closed by Committed, before Publish")
	}
	if h, ch2 := l.Changed(); h != p0 || ch2 != ch {
		t.Fatal("Changed moved before Publish")
	}

	l.Publish()
	if !isClosed(ch) {
		t.Fatal("channel not closed after Publish")
	}
	h, ch2 := l.Changed()
	if h != p1 {
		t.Fatalf("Changed head after Publish = %+v, want %+v", h, p1)
	}
	if ch2 == ch || isClosed(ch2) {
		t.Fatal("Changed after Publish did not return a fresh open channel")
	}
	l.Publish() // again, nothing new
	if isClosed(ch2) {
		t.Fatal("second Publish without appends closed the new channel")
	}
}

func TestChangedWakesWaiters(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)
	appendRecords(t, db, l, 0, 1, 1, pebble.Sync)

	const waiters = 8
	var ready, done sync.WaitGroup
	got := make(chan Position, waiters)
	for i := 0; i < waiters; i++ {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			_, ch := l.Changed()
			ready.Done()
			select {
			case <-ch:
				got <- l.Head()
			case <-time.After(10 * time.Second):
				got <- Position{}
			}
		}()
	}
	ready.Wait()
	want := appendRecords(t, db, l, 1, 1, 1, pebble.Sync)[0]
	done.Wait()
	close(got)
	for p := range got {
		if p != want {
			t.Fatalf("waiter saw %+v, want %+v (zero means it never woke)", p, want)
		}
	}
}

// TestLongPollWaiter runs the intended long-poll loop against a concurrent
// appender: the waiter sees every published head monotonically and
// eventually the final one. Run with -race.
func TestLongPollWaiter(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)
	const n = 200

	errc := make(chan error, 1)
	go func() {
		var last uint64
		deadline := time.After(30 * time.Second)
		for {
			h, ch := l.Changed()
			if h.Seq < last {
				errc <- fmt.Errorf("head went backwards: %d after %d", h.Seq, last)
				return
			}
			last = h.Seq
			if h.Seq >= n {
				// Everything published is durable and readable.
				if _, err := Get(db, h.Seq); err != nil {
					errc <- fmt.Errorf("Get(head %d): %w", h.Seq, err)
					return
				}
				errc <- nil
				return
			}
			select {
			case <-ch:
			case <-deadline:
				errc <- fmt.Errorf("timed out at seq %d", h.Seq)
				return
			}
		}
	}()
	appendRecords(t, db, l, 0, n, 3, pebble.NoSync)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestPublishOncePerRaftBatch models the FSM: one batch commit (and
// Committed) per command, one Publish per Raft batch. Waiters wake once, at
// the Publish, and then see the last committed head.
func TestPublishOncePerRaftBatch(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)
	appendRecords(t, db, l, 0, 2, 2, pebble.Sync)
	before, ch := l.Changed()

	var last Position
	for cmd := 0; cmd < 5; cmd++ {
		b := db.NewBatch()
		for j := 0; j < 3; j++ {
			p, err := l.Append(b, testRecord(2+cmd*3+j))
			if err != nil {
				t.Fatal(err)
			}
			last = p
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		b.Close()
		l.Committed()
		if isClosed(ch) || l.Head() != before {
			t.Fatalf("command %d: head moved or waiters woke before Publish", cmd)
		}
	}
	l.Publish()
	if !isClosed(ch) {
		t.Fatal("Publish did not wake waiters")
	}
	if h := l.Head(); h != last || h.Seq != 17 {
		t.Fatalf("Head after Publish = %+v, want %+v (seq 17)", h, last)
	}
	if got, err := VerifyChain(db); err != nil || got != last {
		t.Fatalf("VerifyChain = %+v, %v", got, err)
	}
}

// TestAbortKeepsCommittedUnpublished checks Abort rolls back only to the last
// Committed head, not to the published one: a committed batch stays in the
// chain even if a later command in the same Raft batch aborts.
func TestAbortKeepsCommittedUnpublished(t *testing.T) {
	db := openDB(t)
	l := openLog(t, db)
	published := appendRecords(t, db, l, 0, 2, 2, pebble.Sync)[1]

	// Command A commits (seq 3) but the Raft batch is not published yet.
	b := db.NewBatch()
	pa, err := l.Append(b, testRecord(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	l.Committed()

	// Command B fails: its batch (seq 4) is dropped.
	b = db.NewBatch()
	if _, err := l.Append(b, &Record{Type: "aborted"}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	l.Abort()

	if p := l.Pending(); p != pa {
		t.Fatalf("Pending after Abort = %+v, want command A's head %+v", p, pa)
	}
	if h := l.Head(); h != published {
		t.Fatalf("Head after Abort = %+v, want still %+v", h, published)
	}
	// Command C chains onto A.
	b = db.NewBatch()
	rc := testRecord(3)
	pc, err := l.Append(b, rc)
	if err != nil {
		t.Fatal(err)
	}
	if pc.Seq != pa.Seq+1 || rc.PrevHash != pa.Hash {
		t.Fatalf("command C got seq %d prev %s; want seq %d prev %s", pc.Seq, rc.PrevHash, pa.Seq+1, pa.Hash)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	l.Committed()
	l.Publish()
	if h := l.Head(); h != pc {
		t.Fatalf("Head = %+v, want %+v", h, pc)
	}
	if got, err := VerifyChain(db); err != nil || got != pc {
		t.Fatalf("VerifyChain = %+v, %v", got, err)
	}
}

func TestResetReloads(t *testing.T) {
	// db1 holds the log the Log was opened on; db2 plays the restored
	// snapshot with a different, longer history.
	db1 := openDB(t)
	l := openLog(t, db1)
	appendRecords(t, db1, l, 0, 5, 5, pebble.Sync)

	db2 := openDB(t)
	l2 := openLog(t, db2)
	pos2 := appendRecords(t, db2, l2, 100, 12, 5, pebble.Sync)
	head2 := pos2[len(pos2)-1]

	// A pending append that Reset must discard.
	b := db1.NewBatch()
	if _, err := l.Append(b, testRecord(5)); err != nil {
		t.Fatal(err)
	}
	b.Close()

	_, ch := l.Changed()
	if err := l.Reset(db2); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if !isClosed(ch) {
		t.Fatal("Reset did not wake waiters")
	}
	if h := l.Head(); h != head2 {
		t.Fatalf("Head after Reset = %+v, want %+v", h, head2)
	}
	if p := l.Pending(); p != head2 {
		t.Fatalf("Pending after Reset = %+v, want %+v", p, head2)
	}
	h, ch2 := l.Changed()
	if h != head2 || isClosed(ch2) {
		t.Fatalf("Changed after Reset = %+v (closed=%v)", h, isClosed(ch2))
	}

	// Appending continues the restored chain.
	next := appendRecords(t, db2, l, 112, 1, 1, pebble.Sync)[0]
	if next.Seq != head2.Seq+1 {
		t.Fatalf("append after Reset got seq %d, want %d", next.Seq, head2.Seq+1)
	}
	if got, err := VerifyChain(db2); err != nil || got != next {
		t.Fatalf("VerifyChain after Reset+append = %+v, %v", got, err)
	}

	// Reset onto an empty store goes back to the zero head.
	if err := l.Reset(openDB(t)); err != nil {
		t.Fatal(err)
	}
	if h := l.Head(); h != (Position{}) || l.Pending() != (Position{}) {
		t.Fatalf("Head after Reset to empty = %+v, pending %+v", h, l.Pending())
	}
}

// TestRecordEncodeRoundTrip checks Encode/DecodeRecord are inverse and the
// encoding uses the documented single-letter field tags.
func TestRecordEncodeRoundTrip(t *testing.T) {
	rec := testRecord(3)
	rec.Seq = 9
	rec.PrevHash = Hash{0xde, 0xad, 0xbe, 0xef}
	enc, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(enc)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", rec) {
		t.Fatalf("round trip = %+v, want %+v", got, rec)
	}
	enc2, err := got.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, enc2) {
		t.Fatal("re-encoding a decoded record changed its bytes")
	}
	if _, err := DecodeRecord(enc[:len(enc)/2]); err == nil {
		t.Fatal("DecodeRecord accepted a truncated encoding")
	}
}
