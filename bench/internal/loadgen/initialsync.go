package loadgen

// Scenario 4: initial /sync for a user in R rooms with M messages each. This
// is the cold-start cost a client pays on login and is usually dominated by
// assembling per-room state and timelines, so it scales with R.

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// InitialSyncResult is the initial sync scenario's output.
type InitialSyncResult struct {
	Rooms       int       `json:"rooms"`
	MsgsPerRoom int       `json:"msgs_per_room"`
	SetupMs     float64   `json:"setup_ms"`
	RunsMs      []float64 `json:"runs_ms"`
	MinMs       float64   `json:"min_ms"`
	MedianMs    float64   `json:"median_ms"`
	Bytes       int       `json:"response_bytes"`
	JoinedRooms int       `json:"joined_rooms"`
}

// RunInitialSync times a plain initial /sync of a user in cfg.Rooms rooms.
func (b *Bench) RunInitialSync(ctx context.Context) (*InitialSyncResult, error) {
	// A fresh user so the count of joined rooms is exactly R.
	us, err := b.fresh(ctx, 1)
	if err != nil {
		return nil, err
	}
	u := us[0]
	R, M := b.cfg.Rooms, b.cfg.MsgsPerRoom

	// Setup: each job creates one room and fills it in order; rooms proceed in
	// parallel so setup time doesn't dominate the run.
	setup := time.Now()
	err = Parallel(ctx, b.cfg.SetupWorkers, R, func(ctx context.Context, i int) error {
		room, err := u.CreateRoom(ctx)
		if err != nil {
			return fmt.Errorf("createRoom: %w", err)
		}
		for j := range M {
			if _, err := u.Send(ctx, room, fmt.Sprintf("room %d message %d", i, j)); err != nil {
				return fmt.Errorf("send: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res := &InitialSyncResult{Rooms: R, MsgsPerRoom: M, SetupMs: Ms(time.Since(setup))}

	// No since, no filter: measure what a plain client gets by default.
	for range b.cfg.InitialSyncs {
		t := time.Now()
		resp, n, err := u.Sync(ctx, "", -1, "")
		if err != nil {
			return nil, fmt.Errorf("initial sync: %w", err)
		}
		res.RunsMs = append(res.RunsMs, Ms(time.Since(t)))
		res.Bytes = n
		res.JoinedRooms = len(resp.Rooms.Join)
	}
	sorted := slices.Sorted(slices.Values(res.RunsMs))
	res.MinMs = sorted[0]
	res.MedianMs = Percentile(sorted, 50)
	if res.JoinedRooms < R {
		return res, fmt.Errorf("initial sync returned %d joined rooms, want %d", res.JoinedRooms, R)
	}
	return res, nil
}
