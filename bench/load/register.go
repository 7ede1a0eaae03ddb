package main

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

// newUser registers one random user and returns it with the time the full
// flow (both UIA round trips if the server uses them) took.
func (b *Bench) newUser(ctx context.Context) (*Client, time.Duration, error) {
	c := NewClient(b.cfg.Base, b.hc)
	// Random names so repeated runs against the same server never collide.
	name := "bench" + randHex(6)
	start := time.Now()
	err := c.Register(ctx, name, randHex(12))
	return c, time.Since(start), err
}

func (b *Bench) runRegister(ctx context.Context) (*RegisterResult, error) {
	ds := make([]time.Duration, 0, b.cfg.Users)
	start := time.Now()
	for range b.cfg.Users {
		c, d, err := b.newUser(ctx)
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
		b.pool = append(b.pool, c) // reused as senders so we don't register twice
	}
	return &RegisterResult{Latency: Summarize(ds), TotalMs: ms(time.Since(start))}, nil
}

// users returns n registered users, reusing the pool from runRegister and
// registering the shortfall concurrently (this is setup, so it isn't timed).
func (b *Bench) users(ctx context.Context, n int) ([]*Client, error) {
	if missing := n - len(b.pool); missing > 0 {
		extra := make([]*Client, missing)
		err := parallel(ctx, 8, missing, func(ctx context.Context, i int) error {
			c, _, err := b.newUser(ctx)
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

// fresh registers n users outside the shared pool, for scenarios whose
// numbers would be skewed by membership in other scenarios' rooms.
func (b *Bench) fresh(ctx context.Context, n int) ([]*Client, error) {
	out := make([]*Client, n)
	err := parallel(ctx, 8, n, func(ctx context.Context, i int) error {
		c, _, err := b.newUser(ctx)
		out[i] = c
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("registering setup users: %w", err)
	}
	return out, nil
}

// ms converts a duration to float milliseconds for reports.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
