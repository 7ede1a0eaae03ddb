package loadgen

// Scenario 2: send throughput and latency into ONE room at increasing
// concurrency. A single room is the worst case for a homeserver: every send
// serialises on that room's DAG head, so this shows how well the write path
// batches or pipelines under contention.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// SendLevel is the result for one concurrency level.
type SendLevel struct {
	Concurrency int     `json:"concurrency"`
	Sends       int     `json:"sends"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	ElapsedMs   float64 `json:"elapsed_ms"`
	PerSec      float64 `json:"sends_per_sec"`
	Latency     Summary `json:"latency"`
	// Nodes is how many nodes the senders were spread over (omitted for one).
	Nodes int `json:"nodes,omitempty"`
}

// RunSend measures send throughput and latency at each of cfg.Levels. With
// several bases the senders are spread over them round-robin, so writes
// also go through followers and exercise their forwarding to the leader.
func (b *Bench) RunSend(ctx context.Context) ([]SendLevel, error) {
	maxC := 0
	for _, c := range b.cfg.Levels {
		maxC = max(maxC, c)
	}
	us, err := b.Users(ctx, maxC+1)
	if err != nil {
		return nil, err
	}
	creator, senders := us[0], us[1:]
	room, err := creator.CreateRoom(ctx)
	if err != nil {
		return nil, fmt.Errorf("createRoom: %w", err)
	}
	// Each sender is its own user so the server can't take a per-user fast path.
	err = Parallel(ctx, 8, len(senders), func(ctx context.Context, i int) error {
		return senders[i].Join(ctx, room)
	})
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}

	var out []SendLevel
	for _, c := range b.cfg.Levels {
		lvl, err := b.sendLevel(ctx, room, senders[:c])
		if err != nil {
			return out, err
		}
		out = append(out, lvl)
	}
	return out, nil
}

func (b *Bench) sendLevel(ctx context.Context, room string, senders []*Client) (SendLevel, error) {
	// Warm-up: one untimed send per sender so connection setup and any
	// per-user first-send caches don't land in the timed window.
	err := Parallel(ctx, len(senders), len(senders), func(ctx context.Context, i int) error {
		_, err := senders[i].Send(ctx, room, "warm-up")
		return err
	})
	if err != nil {
		return SendLevel{}, fmt.Errorf("warm-up send: %w", err)
	}

	var (
		next     atomic.Int64
		errs     atomic.Int64
		firstErr atomic.Value
		lat      Durations
		wg       sync.WaitGroup
	)
	total := b.cfg.Sends
	if b.cfg.Timed != nil {
		b.cfg.Timed(true)
	}
	start := time.Now()
	for _, s := range senders {
		wg.Go(func() {
			// Work is pulled from a shared counter so exactly `total` sends
			// happen and a slow sender doesn't leave the others idle at the end.
			for {
				i := next.Add(1)
				if int(i) > total || ctx.Err() != nil {
					return
				}
				t := time.Now()
				_, err := s.Send(ctx, room, fmt.Sprintf("bench message %d", i))
				if err != nil {
					// Keep going: a few failures shouldn't discard the level,
					// but they are reported next to the numbers.
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lat.Add(time.Since(t))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if b.cfg.Timed != nil {
		b.cfg.Timed(false)
	}
	if err := ctx.Err(); err != nil {
		return SendLevel{}, err
	}
	sum := lat.Summary()
	lvl := SendLevel{
		Concurrency: len(senders),
		Sends:       sum.N,
		Errors:      errs.Load(),
		ElapsedMs:   Ms(elapsed),
		PerSec:      float64(sum.N) / elapsed.Seconds(),
		Latency:     sum,
	}
	if b.MultiNode() {
		nodes := map[string]bool{}
		for _, s := range senders {
			nodes[s.Base] = true
		}
		lvl.Nodes = len(nodes)
	}
	if v, ok := firstErr.Load().(string); ok {
		lvl.FirstError = v
	}
	if sum.N == 0 {
		return lvl, fmt.Errorf("all %d sends failed at concurrency %d: %s", total, len(senders), lvl.FirstError)
	}
	return lvl, nil
}
