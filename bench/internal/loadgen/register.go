package loadgen

// Scenario 1: registration latency. Registrations run one at a time so the
// number is per-request latency (password hashing, UIA round trip, device
// creation) rather than a measure of how the server copes with a burst.

import (
	"context"
	"fmt"
	"time"
)

// RegisterResult is the registration scenario's output.
type RegisterResult struct {
	Latency Summary `json:"latency"`
	TotalMs float64 `json:"total_ms"`
}

// newUser registers one random user on base and returns it with the time
// the full flow (both UIA round trips if the server uses them) took. The
// user stays pinned to that base.
func (b *Bench) newUser(ctx context.Context, base string) (*Client, time.Duration, error) {
	c := NewClient(base, b.hc)
	// Random names so repeated runs against the same server never collide.
	name := "bench" + RandHex(6)
	start := time.Now()
	err := c.Register(ctx, name, RandHex(12))
	return c, time.Since(start), err
}

// RunRegister registers cfg.Users users one after another, round-robin over
// the bases, and keeps them for later scenarios.
func (b *Bench) RunRegister(ctx context.Context) (*RegisterResult, error) {
	ds := make([]time.Duration, 0, b.cfg.Users)
	start := time.Now()
	for range b.cfg.Users {
		c, d, err := b.newUser(ctx, b.base(len(b.pool)))
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
		b.pool = append(b.pool, c) // reused as senders so we don't register twice
	}
	return &RegisterResult{Latency: Summarize(ds), TotalMs: Ms(time.Since(start))}, nil
}

// Users returns n registered users, reusing the pool from RunRegister and
// registering the shortfall concurrently (this is setup, so it isn't timed).
// The i-th user is pinned to base(i), so any prefix of the pool is spread
// evenly over the nodes.
func (b *Bench) Users(ctx context.Context, n int) ([]*Client, error) {
	if missing := n - len(b.pool); missing > 0 {
		extra := make([]*Client, missing)
		have := len(b.pool)
		err := Parallel(ctx, 8, missing, func(ctx context.Context, i int) error {
			c, _, err := b.newUser(ctx, b.base(have+i))
			extra[i] = c
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("registering setup users: %w", err)
		}
		b.pool = append(b.pool, extra...)
	}
	return b.pool[:n], nil
}

// fresh registers n users on the first base, outside the shared pool, for
// scenarios whose numbers would be skewed by membership in other scenarios'
// rooms.
func (b *Bench) fresh(ctx context.Context, n int) ([]*Client, error) {
	out := make([]*Client, n)
	err := Parallel(ctx, 8, n, func(ctx context.Context, i int) error {
		c, _, err := b.newUser(ctx, b.base(0))
		out[i] = c
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("registering setup users: %w", err)
	}
	return out, nil
}
