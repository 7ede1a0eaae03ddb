package log

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"
)

const chainLen = 200

// buildChain writes a chainLen-record log and returns the DB and the
// positions Append returned.
func buildChain(t *testing.T) (*pebble.DB, []Position) {
	t.Helper()
	db := openDB(t)
	l := openLog(t, db)
	// Uneven batch size so batch boundaries fall at arbitrary seqs.
	pos := appendRecords(t, db, l, 0, chainLen, 13, pebble.Sync)
	return db, pos
}

// rawRecord reads the stored value of record seq straight from Pebble.
func rawRecord(t *testing.T, db *pebble.DB, seq uint64) []byte {
	t.Helper()
	v, closer, err := db.Get(recordKey(seq))
	if err != nil {
		t.Fatalf("db.Get(record %d): %v", seq, err)
	}
	defer closer.Close()
	return bytes.Clone(v)
}

func setRaw(t *testing.T, db *pebble.DB, key, value []byte) {
	t.Helper()
	if err := db.Set(key, value, pebble.Sync); err != nil {
		t.Fatalf("db.Set: %v", err)
	}
}

// wantChainError asserts VerifyChain fails with a *ChainError naming seq.
func wantChainError(t *testing.T, db pebble.Reader, seq uint64) *ChainError {
	t.Helper()
	_, err := VerifyChain(db)
	if err == nil {
		t.Fatalf("VerifyChain passed; want a break at record %d", seq)
	}
	var ce *ChainError
	if !errors.As(err, &ce) {
		t.Fatalf("VerifyChain error %v (%T) is not a *ChainError", err, err)
	}
	if ce.Seq != seq {
		t.Fatalf("VerifyChain named record %d (%v); want %d", ce.Seq, err, seq)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("record %d", seq)) {
		t.Fatalf("error message %q does not name record %d", err, seq)
	}
	return ce
}

func wantChainOK(t *testing.T, db pebble.Reader, head Position) {
	t.Helper()
	got, err := VerifyChain(db)
	if err != nil {
		t.Fatalf("VerifyChain: %v", err)
	}
	if got != head {
		t.Fatalf("VerifyChain head = %+v, want %+v", got, head)
	}
}

func TestVerifyChainEmpty(t *testing.T) {
	db := openDB(t)
	wantChainOK(t, db, Position{})
}

func TestVerifyChainGood(t *testing.T) {
	db, pos := buildChain(t)
	head := pos[len(pos)-1]
	if head.Seq != chainLen {
		t.Fatalf("head seq %d, want %d", head.Seq, chainLen)
	}
	wantChainOK(t, db, head)

	// Also from a snapshot, and after the data moved to sstables.
	snap := db.NewSnapshot()
	defer snap.Close()
	wantChainOK(t, snap, head)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	wantChainOK(t, db, head)
}

// TestVerifyChainFlippedByte flips single bytes at several offsets of record
// K's stored value (msgpack encoding and trailing 32-byte hash) and checks
// VerifyChain names exactly K; restoring the byte makes the chain good again.
func TestVerifyChainFlippedByte(t *testing.T) {
	db, pos := buildChain(t)
	head := pos[len(pos)-1]

	for _, k := range []uint64{1, 2, chainLen / 2, chainLen - 1, chainLen} {
		orig := rawRecord(t, db, k)
		encLen := len(orig) - len(Hash{})
		if encLen <= 0 {
			t.Fatalf("record %d value too short: %d bytes", k, len(orig))
		}
		offsets := []struct {
			name string
			off  int
		}{
			{"msgpack header", 0},
			{"msgpack second byte", 1},
			{"msgpack middle", encLen / 2},
			{"msgpack last byte", encLen - 1},
			{"hash first byte", encLen},
			{"hash middle", encLen + 16},
			{"hash last byte", len(orig) - 1},
		}
		for _, o := range offsets {
			for _, mask := range []byte{0x01, 0x80, 0xff} {
				t.Run(fmt.Sprintf("K=%d/%s/xor%02x", k, o.name, mask), func(t *testing.T) {
					bad := bytes.Clone(orig)
					bad[o.off] ^= mask
					setRaw(t, db, recordKey(k), bad)
					defer setRaw(t, db, recordKey(k), orig)
					ce := wantChainError(t, db, k)
					if ce.Reason == "" {
						t.Fatal("ChainError has no reason")
					}
				})
			}
		}
		// Restored: good again.
		wantChainOK(t, db, head)
	}
}

// TestVerifyChainMissingRecord deletes record K and checks VerifyChain names
// the missing seq.
func TestVerifyChainMissingRecord(t *testing.T) {
	for _, k := range []uint64{1, 2, chainLen / 2, chainLen - 1, chainLen} {
		t.Run(fmt.Sprintf("K=%d", k), func(t *testing.T) {
			db, _ := buildChain(t)
			if err := db.Delete(recordKey(k), pebble.Sync); err != nil {
				t.Fatal(err)
			}
			ce := wantChainError(t, db, k)
			if !strings.Contains(ce.Reason, "missing") {
				t.Fatalf("reason %q does not say the record is missing", ce.Reason)
			}
		})
	}
}

// TestVerifyChainAllRecordsMissing: a head with no records at all names
// record 1.
func TestVerifyChainAllRecordsMissing(t *testing.T) {
	db, _ := buildChain(t)
	if err := db.DeleteRange([]byte{prefixRecord}, []byte{prefixRecord + 1}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	wantChainError(t, db, 1)
}

// TestVerifyChainRewrittenRecord replaces record K with a different but
// self-consistent record (its trailing hash recomputed). K itself checks out,
// so the break is at K+1, whose PrevHash no longer matches; for the last
// record the stored head catches it.
func TestVerifyChainRewrittenRecord(t *testing.T) {
	for _, k := range []uint64{1, chainLen / 2, chainLen} {
		t.Run(fmt.Sprintf("K=%d", k), func(t *testing.T) {
			db, _ := buildChain(t)
			rec, err := Get(db, k)
			if err != nil {
				t.Fatal(err)
			}
			rec.Body = append(rec.Body, " (edited)"...)
			enc, err := rec.Encode()
			if err != nil {
				t.Fatal(err)
			}
			h := hashBytes(enc)
			setRaw(t, db, recordKey(k), append(enc, h[:]...))
			want := k + 1
			if k == chainLen {
				want = k
			}
			wantChainError(t, db, want)
		})
	}
}

// TestVerifyChainRecordUnderWrongSeq copies record 5's value to seq 6: the
// value is self-consistent but stored under the wrong key.
func TestVerifyChainRecordUnderWrongSeq(t *testing.T) {
	db, _ := buildChain(t)
	setRaw(t, db, recordKey(6), rawRecord(t, db, 5))
	wantChainError(t, db, 6)
}

func TestVerifyChainTruncatedValue(t *testing.T) {
	db, _ := buildChain(t)
	const k = 50
	for _, n := range []int{0, 1, 31} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			orig := rawRecord(t, db, k)
			setRaw(t, db, recordKey(k), orig[:n])
			defer setRaw(t, db, recordKey(k), orig)
			wantChainError(t, db, k)
		})
	}
}

// TestVerifyChainHeadMismatch corrupts the stored head rather than a record.
func TestVerifyChainHeadMismatch(t *testing.T) {
	db, pos := buildChain(t)
	head := pos[len(pos)-1]

	bad := head
	bad.Hash[0] ^= 1
	hb, err := msgpack.Marshal(&bad)
	if err != nil {
		t.Fatal(err)
	}
	setRaw(t, db, headKey, hb)
	wantChainError(t, db, chainLen)

	// A head behind the records: record head+1 exists but the head does not
	// cover it.
	behind := pos[chainLen-11]
	hb, err = msgpack.Marshal(&behind)
	if err != nil {
		t.Fatal(err)
	}
	setRaw(t, db, headKey, hb)
	wantChainError(t, db, behind.Seq+1)
}

// TestDeterministicStorage feeds the same records to two fresh logs, with
// different batch sizes, and checks every stored byte (records and head) and
// the head hash are identical.
func TestDeterministicStorage(t *testing.T) {
	const n = 150
	dbA := openDB(t)
	lA := openLog(t, dbA)
	posA := appendRecords(t, dbA, lA, 0, n, 1, pebble.Sync)

	dbB := openDB(t)
	lB := openLog(t, dbB)
	posB := appendRecords(t, dbB, lB, 0, n, 64, pebble.NoSync)

	if lA.Head() != lB.Head() {
		t.Fatalf("heads differ: %+v vs %+v", lA.Head(), lB.Head())
	}
	for i := range posA {
		if posA[i] != posB[i] {
			t.Fatalf("position %d differs: %+v vs %+v", i, posA[i], posB[i])
		}
	}
	a, b := dumpLog(t, dbA), dumpLog(t, dbB)
	if len(a) != n+1 { // n records + head
		t.Fatalf("log A holds %d keys, want %d", len(a), n+1)
	}
	if len(a) != len(b) {
		t.Fatalf("key counts differ: %d vs %d", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i][0], b[i][0]) || !bytes.Equal(a[i][1], b[i][1]) {
			t.Fatalf("key/value %d differs:\n%x=%x\n%x=%x", i, a[i][0], a[i][1], b[i][0], b[i][1])
		}
	}
	// The stored trailing hash is the chain hash of each record.
	for i, kv := range a[:n] {
		if got := Hash(kv[1][len(kv[1])-32:]); got != posA[i].Hash {
			t.Fatalf("record %d trailing hash %s, want %s", i+1, got, posA[i].Hash)
		}
	}

	// A third log differing only in one record's body diverges from that
	// record on: earlier hashes equal, that one and every later one differ.
	dbC := openDB(t)
	lC := openLog(t, dbC)
	const changed = 100
	posC := appendRecords(t, dbC, lC, 0, changed-1, 10, pebble.NoSync)
	b2 := dbC.NewBatch()
	alt := testRecord(changed - 1)
	alt.Body = append(alt.Body, '!')
	p, err := lC.Append(b2, alt)
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	b2.Close()
	lC.Committed()
	lC.Publish()
	posC = append(posC, p)
	posC = append(posC, appendRecords(t, dbC, lC, changed, n-changed, 10, pebble.NoSync)...)
	for i := range posA {
		same := posA[i].Hash == posC[i].Hash
		if want := i < changed-1; same != want {
			t.Fatalf("record %d: hash equal=%v, want %v", i+1, same, want)
		}
	}
}

// dumpLog returns every key/value under the log's prefixes, in key order.
func dumpLog(t *testing.T, db *pebble.DB) [][2][]byte {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixRecord}, UpperBound: []byte{prefixHead + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out [][2][]byte
	for it.First(); it.Valid(); it.Next() {
		out = append(out, [2][]byte{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRecordEncodingGolden pins the on-disk encoding of one record. If this
// fails, the stored format changed (field tags, order, msgpack library
// behaviour): every existing log's hashes would no longer verify.
func TestRecordEncodingGolden(t *testing.T) {
	rec := &Record{
		Seq:       7,
		RaftIndex: 1234,
		Time:      1_700_000_000_123,
		Type:      "m.room.message",
		Actor:     "@alice:example.org",
		Body:      []byte(`{"body":"hi"}`),
		PrevHash:  Hash{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32},
	}
	enc, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	h, err := rec.Hash()
	if err != nil {
		t.Fatal(err)
	}
	if h != hashBytes(enc) {
		t.Fatal("Record.Hash differs from the hash of Encode")
	}
	t.Logf("encoding %x", enc)
	t.Logf("hash     %s", h)
	if got := fmt.Sprintf("%x", enc); got != goldenRecordHex {
		t.Errorf("encoding changed:\n got %s\nwant %s", got, goldenRecordHex)
	}
	if h.String() != goldenRecordHash {
		t.Errorf("hash changed: got %s want %s", h, goldenRecordHash)
	}

	// The tags are the documented single letters.
	var m map[string]any
	if err := msgpack.Unmarshal(enc, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	if len(m) != 7 {
		t.Fatalf("encoded map has keys %v, want s i t y a b p", keys)
	}
	for _, k := range []string{"s", "i", "t", "y", "a", "b", "p"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("encoded map lacks tag %q (has %v)", k, keys)
		}
	}
}

const (
	// fixmap(7) "s" uint64(7) "i" uint64(1234) "t" int64 "y" str(14)
	// "a" str(18) "b" bin(13) "p" bin(32)
	goldenRecordHex = "87" +
		"a173" + "cf0000000000000007" +
		"a169" + "cf00000000000004d2" +
		"a174" + "d30000018bcfe5687b" +
		"a179" + "ae6d2e726f6f6d2e6d657373616765" +
		"a161" + "b240616c6963653a6578616d706c652e6f7267" +
		"a162" + "c40d7b22626f6479223a226869227d" +
		"a170" + "c4200102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
	goldenRecordHash = "ad39e456d464bc01742ec9c865555747e320631227fffa970d048f29e96dd9f4"
)

// TestCorruptValuesSurfaceAsErrors: a garbled head or record value makes
// Open/ReadHead/Reset/Get/Scan fail instead of returning zero values; Reset
// leaves the Log unchanged on error.
func TestCorruptValuesSurfaceAsErrors(t *testing.T) {
	db, pos := buildChain(t)
	l := openLog(t, db)
	head := pos[len(pos)-1]

	// A record shorter than its trailing hash.
	setRaw(t, db, recordKey(10), []byte("short"))
	if _, err := Get(db, 10); err == nil || !strings.Contains(err.Error(), "record 10") {
		t.Fatalf("Get(10) on a truncated value: err = %v", err)
	}
	err := Scan(db, 5, 0, func(*Record, []byte) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "record 10") {
		t.Fatalf("Scan over a truncated value: err = %v", err)
	}
	// A record whose encoding is not msgpack (but long enough).
	setRaw(t, db, recordKey(11), bytes.Repeat([]byte{0xc1}, 40)) // 0xc1 is never used in msgpack
	if _, err := Get(db, 11); err == nil {
		t.Fatal("Get(11) decoded garbage")
	}

	setRaw(t, db, headKey, []byte{0xc1})
	if _, err := ReadHead(db); err == nil {
		t.Fatal("ReadHead decoded a garbage head")
	}
	if _, err := Open(db); err == nil {
		t.Fatal("Open accepted a garbage head")
	}
	if _, err := VerifyChain(db); err == nil {
		t.Fatal("VerifyChain accepted a garbage head")
	}
	if err := l.Reset(db); err == nil {
		t.Fatal("Reset accepted a garbage head")
	}
	if l.Head() != head || l.Pending() != head {
		t.Fatalf("failed Reset changed the Log: head %+v pending %+v", l.Head(), l.Pending())
	}
}
