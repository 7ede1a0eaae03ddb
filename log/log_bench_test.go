package log

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

const benchBodySize = 300

func benchRecord(i int, body []byte) *Record {
	return &Record{
		RaftIndex: uint64(i + 1),
		Time:      1_700_000_000_000 + int64(i),
		Type:      "m.room.message",
		Actor:     "@bench:example.org",
		Body:      body,
	}
}

// BenchmarkAppend measures Append + Commit(NoSync) + Committed + Publish, one
// op per record, with one batch per record and per 64 records.
func BenchmarkAppend(b *testing.B) {
	body := bytes.Repeat([]byte("x"), benchBodySize)
	for _, perBatch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", perBatch), func(b *testing.B) {
			db := openDB(b)
			l := openLog(b, db)
			b.SetBytes(benchBodySize)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; {
				batch := db.NewBatch()
				for j := 0; j < perBatch && i < b.N; j, i = j+1, i+1 {
					if _, err := l.Append(batch, benchRecord(i, body)); err != nil {
						b.Fatal(err)
					}
				}
				if err := batch.Commit(pebble.NoSync); err != nil {
					b.Fatal(err)
				}
				batch.Close()
				l.Committed()
				l.Publish()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			if h := l.Head(); h.Seq != uint64(b.N) {
				b.Fatalf("head seq %d after %d appends", h.Seq, b.N)
			}
		})
	}
}

// BenchmarkVerifyChain verifies a 100k-record log (flushed to sstables) per
// op.
func BenchmarkVerifyChain(b *testing.B) {
	const n = 100_000
	db := openDB(b)
	l := openLog(b, db)
	body := bytes.Repeat([]byte("x"), benchBodySize)
	for i := 0; i < n; {
		batch := db.NewBatch()
		for j := 0; j < 1000 && i < n; j, i = j+1, i+1 {
			if _, err := l.Append(batch, benchRecord(i, body)); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		batch.Close()
		l.Committed()
		l.Publish()
	}
	if err := db.Flush(); err != nil {
		b.Fatal(err)
	}
	head := l.Head()

	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := VerifyChain(db)
		if err != nil {
			b.Fatal(err)
		}
		if got != head {
			b.Fatalf("VerifyChain head %+v, want %+v", got, head)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
