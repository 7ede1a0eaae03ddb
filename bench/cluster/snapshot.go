package main

// Snapshot: fill the cluster with many events, then time a Raft snapshot on
// the leader and measure what it wrote.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"chronicle/bench/internal/loadgen"
)

// SnapshotResult is the snapshot scenario's output.
type SnapshotResult struct {
	Events  int `json:"events"` // messages sent to fill the log
	Rooms   int `json:"rooms"`
	Senders int `json:"senders"`
	// FillMs and FillPerSec: how long sending them took.
	FillMs     float64 `json:"fill_ms"`
	FillPerSec float64 `json:"fill_per_sec"`
	FillErrors int64   `json:"fill_errors"`
	Node       string  `json:"node"`
	// TookMs is the server's own timing from POST /_chronicle/v1/cluster/snapshot;
	// RequestMs the round trip as the benchmark saw it.
	TookMs    float64 `json:"took_ms"`
	RequestMs float64 `json:"request_ms"`
	// SnapshotDir is the newest snapshot under <data>/snapshots, with the
	// total size and number of its files.
	SnapshotDir   string `json:"snapshot_dir"`
	SnapshotBytes int64  `json:"snapshot_bytes"`
	SnapshotFiles int    `json:"snapshot_files"`
	// DataBytes is the node's whole data directory afterwards.
	DataBytes int64 `json:"data_bytes"`
}

// setupUsers registers n users pinned round-robin to bases, has the first
// create `rooms` public rooms, makes everyone join all of them and send one
// warm-up message. Untimed.
func setupUsers(ctx context.Context, s *supervisor, bases []string, n, rooms int) ([]*loadgen.Client, []string, error) {
	b, err := loadgen.New(loadgen.Config{Bases: bases}, s.hc)
	if err != nil {
		return nil, nil, err
	}
	users, err := b.Users(ctx, n)
	if err != nil {
		return nil, nil, err
	}
	var ids []string
	for range rooms {
		id, err := users[0].CreateRoom(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("createRoom: %w", err)
		}
		ids = append(ids, id)
	}
	err = loadgen.Parallel(ctx, 8, len(users)*rooms, func(ctx context.Context, i int) error {
		u, room := users[i/rooms], ids[i%rooms]
		if u == users[0] {
			return nil
		}
		return u.Join(ctx, room)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("join: %w", err)
	}
	err = loadgen.Parallel(ctx, len(users), len(users), func(ctx context.Context, i int) error {
		_, err := users[i].Send(ctx, ids[i%rooms], "warm-up")
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("warm-up send: %w", err)
	}
	return users, ids, nil
}

func runSnapshot(ctx context.Context, s *supervisor, nodes []*node, events, senders, rooms int) (*SnapshotResult, error) {
	st, err := s.waitCluster(ctx, nodes, len(nodes), 30*time.Second)
	if err != nil {
		return nil, err
	}
	res := &SnapshotResult{Events: events, Rooms: rooms, Senders: senders}
	users, ids, err := setupUsers(ctx, s, leaderFirst(nodes, st.Leader.ID), senders, rooms)
	if err != nil {
		return nil, err
	}

	// Fill: as fast as possible, each sender in "its" room; a failed send is
	// retried with its transaction ID so the count stays exact.
	var (
		next     atomic.Int64
		acked    atomic.Int64
		errs     atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	start := time.Now()
	lastReport := atomic.Int64{}
	for i, u := range users {
		wg.Go(func() {
			room := ids[i%len(ids)]
			for {
				n := next.Add(1)
				if int(n) > events || ctx.Err() != nil {
					return
				}
				txn := u.NextTxn()
				for attempt := 0; ; attempt++ {
					_, err := u.SendTxn(ctx, room, txn, fmt.Sprintf("fill %d", n))
					if err == nil {
						acked.Add(1)
						break
					}
					if ctx.Err() != nil {
						return
					}
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					if attempt >= 20 {
						return // this sender gives up; the count check reports it
					}
					time.Sleep(50 * time.Millisecond)
				}
				if el := time.Since(start); el.Milliseconds()/10000 > lastReport.Load() {
					lastReport.Store(el.Milliseconds() / 10000)
					fmt.Fprintf(stderr, "  filled %d/%d events in %.0fs\n", n, events, el.Seconds())
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fill := time.Since(start)
	res.FillMs, res.FillPerSec, res.FillErrors = loadgen.Ms(fill), float64(events)/fill.Seconds(), errs.Load()
	if n := acked.Load(); int(n) < events {
		return res, fmt.Errorf("fill: only %d of %d sends succeeded: %v", n, events, firstErr.Load())
	}

	// Snapshot on whoever leads now.
	st, err = s.waitCluster(ctx, nodes, len(nodes), 30*time.Second)
	if err != nil {
		return res, err
	}
	leader, err := byID(nodes, st.Leader.ID)
	if err != nil {
		return res, err
	}
	res.Node = leader.ID
	var out struct {
		TookMs float64 `json:"took_ms"`
	}
	for attempt := 0; ; attempt++ {
		t := time.Now()
		_, err = s.admin(leader).Do(ctx, "POST", "/_chronicle/v1/cluster/snapshot", map[string]any{}, &out)
		res.RequestMs = loadgen.Ms(time.Since(t))
		// An automatic snapshot may just have covered the whole log; one
		// more event gives the requested snapshot something to do.
		if err == nil || attempt > 0 || !strings.Contains(err.Error(), "nothing new") {
			break
		}
		if _, serr := users[0].Send(ctx, ids[0], "one more"); serr != nil {
			return res, serr
		}
	}
	if err != nil {
		return res, fmt.Errorf("snapshot on %s: %w", leader.ID, err)
	}
	res.TookMs = out.TookMs
	dir, err := newestSnapshot(filepath.Join(leader.Dir, "snapshots"))
	if err != nil {
		return res, err
	}
	res.SnapshotDir = dir
	if res.SnapshotBytes, res.SnapshotFiles, err = loadgen.DirSize(dir); err != nil {
		return res, err
	}
	if res.DataBytes, _, err = loadgen.DirSize(leader.Dir); err != nil {
		return res, err
	}
	return res, nil
}

// newestSnapshot finds the most recently written complete snapshot (a
// directory holding meta.json, not a *.tmp one being written) under root,
// however deeply the snapshot store nests them.
func newestSnapshot(root string) (string, error) {
	var best string
	var bestTime time.Time
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || d.Name() != "meta.json" || strings.HasSuffix(filepath.Dir(path), ".tmp") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if best == "" || info.ModTime().After(bestTime) {
			best, bestTime = filepath.Dir(path), info.ModTime()
		}
		return nil
	})
	if err == nil && best == "" {
		err = fmt.Errorf("no snapshot under %s", root)
	}
	return best, err
}

// leaderFirst returns the nodes' URLs with the leader's first.
func leaderFirst(nodes []*node, leaderID string) []string {
	var out []string
	for _, n := range nodes {
		if n.ID == leaderID {
			out = append([]string{n.URL}, out...)
		} else {
			out = append(out, n.URL)
		}
	}
	return out
}
