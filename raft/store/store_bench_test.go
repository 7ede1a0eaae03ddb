package store

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkStoreLogs measures synced appends; batch=1 is dominated by fsync,
// batch=64 shows how well a single batch amortises it.
func BenchmarkStoreLogs(b *testing.B) {
	data := bytes.Repeat([]byte{'x'}, 256)
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s := openTestStore(b, b.TempDir())
			defer s.Close()
			logs := make([]*raft.Log, n)
			for i := range logs {
				logs[i] = &raft.Log{Term: 1, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}
			}
			b.SetBytes(int64(n * len(data)))
			b.ReportAllocs()
			next := uint64(1)
			for b.Loop() {
				for _, l := range logs {
					l.Index = next
					next++
				}
				if err := s.StoreLogs(logs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGetLog(b *testing.B) {
	const entries = 10_000
	s := openTestStore(b, b.TempDir())
	defer s.Close()
	data := bytes.Repeat([]byte{'x'}, 256)
	for start := uint64(1); start <= entries; start += 1000 {
		logs := make([]*raft.Log, 0, 1000)
		for i := start; i < start+1000; i++ {
			logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()})
		}
		if err := s.StoreLogs(logs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var l raft.Log
	i := uint64(0)
	for b.Loop() {
		if err := s.GetLog(i%entries+1, &l); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
