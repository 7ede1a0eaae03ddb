package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"chronicle/bench/internal/loadgen"
)

// pageLimit is the /messages page size clients commonly request.
const pageLimit = 100

// Throughput is a batch of timed requests: how many, the wall time, the
// rate and the per-request latency.
type Throughput struct {
	N       int             `json:"n"`
	TotalMs float64         `json:"total_ms"`
	PerSec  float64         `json:"per_s"`
	Latency loadgen.Summary `json:"latency"`
}

func throughput(ds []time.Duration, wall time.Duration) Throughput {
	return Throughput{N: len(ds), TotalMs: loadgen.Ms(wall), PerSec: float64(len(ds)) / wall.Seconds(), Latency: loadgen.Summarize(ds)}
}

// JoinResult is the join scenario's output. First and Last are the first
// and last tenth of the joins in the order they were issued, to show
// whether a join costs more as the room grows.
type JoinResult struct {
	Throughput
	First loadgen.Summary `json:"first_tenth"`
	Last  loadgen.Summary `json:"last_tenth"`
}

// MessagesResult is the history paging scenario's output.
type MessagesResult struct {
	Events       int             `json:"target_events"`
	Fill         Throughput      `json:"fill"`
	Pages        int             `json:"pages"`
	EventsSeen   int             `json:"events_seen"`
	TotalMs      float64         `json:"total_ms"`
	EventsPerSec float64         `json:"events_per_s"`
	All          loadgen.Summary `json:"page_latency"`
	Newest       loadgen.Summary `json:"newest_tenth"`
	Middle       loadgen.Summary `json:"middle_tenth"`
	Oldest       loadgen.Summary `json:"oldest_tenth"`
}

// EndpointResult is one member list endpoint's timings.
type EndpointResult struct {
	Name    string          `json:"name"`
	Path    string          `json:"path"`
	Missing bool            `json:"missing,omitempty"`
	Error   string          `json:"error,omitempty"`
	Latency loadgen.Summary `json:"latency"`
	Entries int             `json:"entries"`
	Bytes   int             `json:"bytes"`
}

// MembersResult is the member list scenario's output.
type MembersResult struct {
	Members   int              `json:"members"`
	Join      Throughput       `json:"join"`
	Endpoints []EndpointResult `json:"endpoints"`
}

type bench struct {
	cfg   Config
	hc    *http.Client
	owner *loadgen.Client   // creates the rooms the scenarios use
	pool  []*loadgen.Client // every other user
}

// timed runs fn(i) for i in [0,n) on c workers and times each call;
// ds[i] is call i's latency.
func timed(ctx context.Context, c, n int, fn func(ctx context.Context, i int) error) (Throughput, []time.Duration, error) {
	ds := make([]time.Duration, n)
	start := time.Now()
	err := loadgen.Parallel(ctx, c, n, func(ctx context.Context, i int) error {
		t := time.Now()
		err := fn(ctx, i)
		ds[i] = time.Since(t)
		return err
	})
	return throughput(ds, time.Since(start)), ds, err
}

// register creates n users concurrently; the first becomes the owner.
// Without -password they register with no password (the spec makes it
// optional), so that thousands of setup users do not spend minutes of the
// server's CPU on password hashing; a server that insists on a password
// gets one.
func (b *bench) register(ctx context.Context, n int) (*Throughput, error) {
	users := make([]*loadgen.Client, n)
	t, _, err := timed(ctx, b.cfg.Workers, n, func(ctx context.Context, i int) error {
		c := loadgen.NewClient(b.cfg.Base, b.hc)
		users[i] = c
		name := "rbench" + loadgen.RandHex(6)
		if !b.cfg.Password {
			err := c.Register(ctx, name, "")
			var me *loadgen.MatrixError
			if !errors.As(err, &me) || me.Status != http.StatusBadRequest {
				return err
			}
		}
		return c.Register(ctx, name, loadgen.RandHex(12))
	})
	if err != nil {
		return nil, err
	}
	b.owner, b.pool = users[0], users[1:]
	return &t, nil
}

func (b *bench) runCreate(ctx context.Context) (*Throughput, error) {
	creators := b.pool[:b.cfg.Concurrency]
	t, _, err := timed(ctx, b.cfg.Concurrency, b.cfg.Rooms, func(ctx context.Context, i int) error {
		_, err := creators[i%len(creators)].CreateRoom(ctx)
		return err
	})
	return &t, err
}

func tenths(ds []time.Duration) (first, last loadgen.Summary) {
	k := max(1, len(ds)/10)
	return loadgen.Summarize(ds[:k]), loadgen.Summarize(ds[len(ds)-k:])
}

func (b *bench) runJoin(ctx context.Context) (*JoinResult, error) {
	room, err := b.owner.CreateRoom(ctx)
	if err != nil {
		return nil, fmt.Errorf("createRoom: %w", err)
	}
	t, ds, err := timed(ctx, b.cfg.Concurrency, b.cfg.Joins, func(ctx context.Context, i int) error {
		return b.pool[i].Join(ctx, room)
	})
	if err != nil {
		return nil, err
	}
	res := &JoinResult{Throughput: t}
	res.First, res.Last = tenths(ds)
	return res, nil
}

// runMessages fills one room with cfg.Events messages from cfg.Senders
// concurrent senders, then pages back through all of it from the live
// end, timing every page, and summarises the newest, middle and oldest
// tenth of the pages separately: if a page's cost grew with the history
// behind or ahead of it, they would differ.
func (b *bench) runMessages(ctx context.Context) (*MessagesResult, error) {
	room, err := b.owner.CreateRoom(ctx)
	if err != nil {
		return nil, fmt.Errorf("createRoom: %w", err)
	}
	senders := b.pool[:b.cfg.Senders]
	if err := loadgen.Parallel(ctx, b.cfg.Workers, len(senders), func(ctx context.Context, i int) error {
		return senders[i].Join(ctx, room)
	}); err != nil {
		return nil, fmt.Errorf("senders join: %w", err)
	}
	res := &MessagesResult{Events: b.cfg.Events}
	fmt.Fprintf(os.Stderr, "  filling the room with %d messages...\n", b.cfg.Events)
	if res.Fill, err = fill(ctx, senders, room, b.cfg.Events); err != nil {
		return nil, err
	}

	var pages []time.Duration
	from := ""
	start := time.Now()
	for maxPages := b.cfg.Events/pageLimit + 1000; len(pages) < maxPages; {
		t := time.Now()
		page, err := b.owner.Messages(ctx, room, from, "b", pageLimit)
		if err != nil {
			return nil, fmt.Errorf("messages (page %d): %w", len(pages)+1, err)
		}
		pages = append(pages, time.Since(t))
		res.EventsSeen += len(page.Chunk)
		if page.End == "" || len(page.Chunk) == 0 || page.End == from {
			break
		}
		from = page.End
	}
	wall := time.Since(start)
	res.Pages, res.TotalMs = len(pages), loadgen.Ms(wall)
	res.EventsPerSec = float64(res.EventsSeen) / wall.Seconds()
	res.All = loadgen.Summarize(pages)
	k := max(1, len(pages)/10)
	mid := max(0, len(pages)/2-k/2)
	res.Newest, res.Middle, res.Oldest = loadgen.Summarize(pages[:k]), loadgen.Summarize(pages[mid:mid+k]), loadgen.Summarize(pages[len(pages)-k:])
	if res.EventsSeen < b.cfg.Events {
		return res, fmt.Errorf("paged through %d events, want >= %d", res.EventsSeen, b.cfg.Events)
	}
	return res, nil
}

// fill sends n messages into room, each sender on its own goroutine
// pulling from a shared counter. A failed send is retried with its
// transaction ID, so it is never duplicated.
func fill(ctx context.Context, senders []*loadgen.Client, room string, n int) (Throughput, error) {
	var next atomic.Int64
	var ds loadgen.Durations
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	start := time.Now()
	for _, s := range senders {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				txn := s.NextTxn()
				t := time.Now()
				var err error
				for attempt := 0; attempt < 5; attempt++ {
					if _, err = s.SendTxn(ctx, room, txn, fmt.Sprintf("history %d", i)); err == nil {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("send %d: %w", i, err) })
					next.Store(int64(n)) // stop the others
					return
				}
				ds.Add(time.Since(t))
			}
		})
	}
	wg.Wait()
	s := ds.Summary()
	wall := time.Since(start)
	return Throughput{N: s.N, TotalMs: loadgen.Ms(wall), PerSec: float64(s.N) / wall.Seconds(), Latency: s}, firstErr
}

// runMembers joins cfg.Members users to one room, then times
// GET /members and GET /joined_members. An endpoint the server does not
// have is reported as missing, and then the full room state (which holds
// every member event) is timed in its place.
func (b *bench) runMembers(ctx context.Context) (*MembersResult, error) {
	room, err := b.owner.CreateRoom(ctx)
	if err != nil {
		return nil, fmt.Errorf("createRoom: %w", err)
	}
	res := &MembersResult{Members: b.cfg.Members}
	fmt.Fprintf(os.Stderr, "  joining %d users to one room...\n", b.cfg.Members)
	res.Join, _, err = timed(ctx, b.cfg.Workers, b.cfg.Members, func(ctx context.Context, i int) error {
		return b.pool[i].Join(ctx, room)
	})
	if err != nil {
		return nil, fmt.Errorf("members join: %w", err)
	}
	want := b.cfg.Members + 1 // with the owner
	prefix := "/_matrix/client/v3/rooms/" + url.PathEscape(room)
	endpoints := []struct {
		name, path string
		count      func([]byte) (int, error)
	}{
		{"GET /members", prefix + "/members", func(body []byte) (int, error) {
			var r struct {
				Chunk []json.RawMessage `json:"chunk"`
			}
			err := json.Unmarshal(body, &r)
			return len(r.Chunk), err
		}},
		{"GET /joined_members", prefix + "/joined_members", func(body []byte) (int, error) {
			var r struct {
				Joined map[string]json.RawMessage `json:"joined"`
			}
			err := json.Unmarshal(body, &r)
			return len(r.Joined), err
		}},
	}
	missing := false
	for _, ep := range endpoints {
		er, err := b.timeGet(ctx, ep.name, ep.path, ep.count)
		if err != nil {
			return res, err
		}
		missing = missing || er.Missing
		if !er.Missing && er.Entries < want {
			return res, fmt.Errorf("%s listed %d members, want %d", ep.name, er.Entries, want)
		}
		res.Endpoints = append(res.Endpoints, er)
	}
	if missing {
		er, err := b.timeGet(ctx, "GET /state (stand-in)", prefix+"/state", func(body []byte) (int, error) {
			var evs []json.RawMessage
			err := json.Unmarshal(body, &evs)
			return len(evs), err
		})
		if err != nil {
			return res, err
		}
		res.Endpoints = append(res.Endpoints, er)
	}
	return res, nil
}

// timeGet fetches path once untimed (to see whether it exists and to warm
// caches), then cfg.Reps times timed.
func (b *bench) timeGet(ctx context.Context, name, path string, count func([]byte) (int, error)) (EndpointResult, error) {
	er := EndpointResult{Name: name, Path: path}
	get := func() ([]byte, error) {
		status, body, err := b.owner.Raw(ctx, "GET", path, nil)
		if err != nil {
			return nil, err
		}
		if status != http.StatusOK {
			me := &loadgen.MatrixError{Status: status, Body: string(body)}
			_ = json.Unmarshal(body, me)
			return nil, me
		}
		return body, nil
	}
	body, err := get()
	var me *loadgen.MatrixError
	if errors.As(err, &me) && (me.Status == http.StatusNotFound && me.ErrCode == "M_UNRECOGNIZED" || me.Status == http.StatusMethodNotAllowed) {
		er.Missing, er.Error = true, me.Error()
		return er, nil
	}
	if err != nil {
		return er, fmt.Errorf("%s: %w", name, err)
	}
	ds := make([]time.Duration, 0, b.cfg.Reps)
	for range b.cfg.Reps {
		t := time.Now()
		if body, err = get(); err != nil {
			return er, fmt.Errorf("%s: %w", name, err)
		}
		ds = append(ds, time.Since(t))
	}
	er.Latency, er.Bytes = loadgen.Summarize(ds), len(body)
	if er.Entries, err = count(body); err != nil {
		return er, fmt.Errorf("%s: decoding: %w", name, err)
	}
	return er, nil
}
