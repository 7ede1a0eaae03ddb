package loadgen

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1) // 1..100
	}
	cases := []struct {
		name string
		in   []float64
		p    float64
		want float64
	}{
		{"empty", nil, 50, 0},
		{"single", []float64{7}, 99, 7},
		{"median odd", []float64{1, 2, 3, 4, 5}, 50, 3},
		{"median even interpolates", []float64{1, 2, 3, 4}, 50, 2.5},
		{"p0 is min", hundred, 0, 1},
		{"p100 is max", hundred, 100, 100},
		{"p50 of 1..100", hundred, 50, 50.5},
		{"p99 of 1..100", hundred, 99, 99.01},
		{"p99 of two", []float64{10, 20}, 99, 19.9},
		{"below range clamps", hundred, -5, 1},
		{"above range clamps", hundred, 150, 100},
	}
	for _, c := range cases {
		if got := Percentile(c.in, c.p); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: Percentile(p=%v) = %v, want %v", c.name, c.p, got, c.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	// Unsorted on purpose: Summarize must sort a copy, not trust its input.
	in := []time.Duration{5 * time.Millisecond, 1 * time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}
	s := Summarize(in)
	if s.N != 5 || s.MinMs != 1 || s.MaxMs != 5 || s.P50Ms != 3 || s.MeanMs != 3 {
		t.Errorf("Summarize = %+v", s)
	}
	if math.Abs(s.P99Ms-4.96) > 1e-9 {
		t.Errorf("P99 = %v, want 4.96", s.P99Ms)
	}
	if in[0] != 5*time.Millisecond {
		t.Error("Summarize modified its input")
	}
	if (Summarize(nil) != Summary{}) {
		t.Error("Summarize(nil) should be zero")
	}
}

func TestParallel(t *testing.T) {
	var n atomic.Int64
	if err := Parallel(context.Background(), 4, 100, func(context.Context, int) error {
		n.Add(1)
		return nil
	}); err != nil || n.Load() != 100 {
		t.Fatalf("Parallel ran %d jobs, err %v", n.Load(), err)
	}
	boom := errors.New("boom")
	err := Parallel(context.Background(), 4, 100, func(_ context.Context, i int) error {
		if i == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Parallel error = %v, want boom", err)
	}
}
