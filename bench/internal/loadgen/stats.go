package loadgen

// Latency summaries. Percentiles use linear interpolation between closest
// ranks (numpy's default) so small samples, e.g. 5 initial syncs, still give a
// sensible median instead of jumping between neighbouring samples.

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Summary is a latency distribution in milliseconds.
type Summary struct {
	N      int     `json:"n"`
	MinMs  float64 `json:"min_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MeanMs float64 `json:"mean_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Percentile returns the p-th percentile (0..100) of an ascending-sorted
// slice, interpolating linearly between ranks. Empty input yields 0 (not NaN,
// which encoding/json cannot represent).
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	if p >= 100 {
		return sorted[n-1]
	}
	rank := p / 100 * float64(n-1)
	lo := int(math.Floor(rank))
	hi := lo + 1
	if hi >= n {
		return sorted[lo]
	}
	frac := rank - float64(lo)
	return sorted[lo] + (sorted[hi]-sorted[lo])*frac
}

// Summarize computes a Summary; the input is not modified.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	ms := make([]float64, len(ds))
	var sum float64
	for i, d := range ds {
		ms[i] = float64(d) / float64(time.Millisecond)
		sum += ms[i]
	}
	slices.Sort(ms)
	return Summary{
		N:      len(ms),
		MinMs:  ms[0],
		P50Ms:  Percentile(ms, 50),
		P99Ms:  Percentile(ms, 99),
		MeanMs: sum / float64(len(ms)),
		MaxMs:  ms[len(ms)-1],
	}
}

// Durations is a goroutine-safe latency collector for concurrent workers.
type Durations struct {
	mu sync.Mutex
	ds []time.Duration
}

func (d *Durations) Add(x time.Duration) {
	d.mu.Lock()
	d.ds = append(d.ds, x)
	d.mu.Unlock()
}

func (d *Durations) Summary() Summary {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Summarize(d.ds)
}

// Parallel runs fn(i) for i in [0,jobs) on `workers` goroutines, pulling
// indices from a shared counter so fast workers take more jobs. It stops
// handing out work at the first error and returns that error.
func Parallel(ctx context.Context, workers, jobs int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, jobs) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= jobs || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Cause is the first fn error, the parent's cancellation, or nil.
	return context.Cause(ctx)
}

// Ms converts a duration to float milliseconds for reports.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
