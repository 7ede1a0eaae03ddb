package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"chronicle/bench/internal/loadgen"
)

// SetupResult is how long filling one user's rooms took (untimed setup,
// reported for context).
type SetupResult struct {
	Rooms       int     `json:"rooms"`
	Msgs        int     `json:"msgs_per_room"`
	TotalMs     float64 `json:"total_ms"`
	RoomsPerSec float64 `json:"rooms_per_s"`
}

// IncrementalResult is the incremental sync scenario for one user.
type IncrementalResult struct {
	Rooms int `json:"rooms"`
	// Latency: GET /sync?since=<previous next_batch>&timeout=0 right
	// after one message was sent to one of the user's rooms.
	Latency loadgen.Summary `json:"latency"`
	// Unchanged: the same request when nothing changed since the token.
	Unchanged loadgen.Summary `json:"unchanged"`
	// RoomCounts tallies how many joined rooms each response carried
	// ("1×200" when every response held exactly the changed room).
	RoomCounts  string `json:"room_counts"`
	MedianBytes int    `json:"median_bytes"`
}

// InitialResult is the initial sync scenario for one user and limit.
type InitialResult struct {
	Rooms       int             `json:"rooms"`
	Limit       int             `json:"timeline_limit"`
	Filter      string          `json:"filter"`
	Latency     loadgen.Summary `json:"latency"`
	Bytes       int             `json:"response_bytes"`
	JoinedRooms int             `json:"joined_rooms"`
}

// WakeResult is the wake-up scenario: bench/load's sync wake-up measured
// while cfg.Idle other users are parked in long-polls.
type WakeResult struct {
	loadgen.SyncWakeResult
	// Baseline is the same measurement before the idle users park.
	Baseline *loadgen.SyncWakeResult `json:"baseline,omitempty"`
	// IdleParked is how many idle long-polls were open when timing began.
	IdleParked int `json:"idle_parked"`
	// ServerWaiters is the server's own count of parked syncs when timing
	// began (Chronicle's chronicle_sync_waiters; -1 if not exposed).
	ServerWaiters int `json:"server_waiters"`
	// IdleWakes counts idle long-polls that returned before their timeout
	// while timing ran; IdleRoomWakes those that returned with rooms.
	// Nothing an idle user can see changes then, so both must be 0.
	IdleWakes     int64   `json:"idle_wakes"`
	IdleRoomWakes int64   `json:"idle_room_wakes"`
	IdleErrors    int64   `json:"idle_errors"`
	SetupMs       float64 `json:"setup_ms"`
}

type bench struct {
	cfg Config
	hc  *http.Client
}

// register creates one user with no password (the spec makes it
// optional), so thousands of setup users do not cost minutes of password
// hashing; a server that insists gets a random one.
func (b *bench) register(ctx context.Context, hc *http.Client) (*loadgen.Client, error) {
	c := loadgen.NewClient(b.cfg.Base, hc)
	name := "sbench" + loadgen.RandHex(6)
	err := c.Register(ctx, name, "")
	var me *loadgen.MatrixError
	if !errors.As(err, &me) || me.Status != http.StatusBadRequest {
		return c, err
	}
	return c, c.Register(ctx, name, loadgen.RandHex(12))
}

// roomUser is a user alone in its rooms.
type roomUser struct {
	*loadgen.Client
	rooms []string
}

// userInRooms registers a user who creates n rooms and sends cfg.Msgs
// messages to each, from cfg.Workers concurrent clients.
func (b *bench) userInRooms(ctx context.Context, n int) (*roomUser, *SetupResult, error) {
	c, err := b.register(ctx, b.hc)
	if err != nil {
		return nil, nil, fmt.Errorf("register: %w", err)
	}
	u := &roomUser{Client: c, rooms: make([]string, n)}
	start := time.Now()
	err = loadgen.Parallel(ctx, b.cfg.Workers, n, func(ctx context.Context, i int) error {
		room, err := c.CreateRoom(ctx)
		if err != nil {
			return fmt.Errorf("createRoom: %w", err)
		}
		u.rooms[i] = room
		for j := range b.cfg.Msgs {
			if _, err := c.Send(ctx, room, fmt.Sprintf("room %d message %d", i, j)); err != nil {
				return fmt.Errorf("send: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	wall := time.Since(start)
	return u, &SetupResult{Rooms: n, Msgs: b.cfg.Msgs, TotalMs: loadgen.Ms(wall), RoomsPerSec: float64(n) / wall.Seconds()}, nil
}

// syncBody is the part of a /sync response the scenarios check.
type syncBody struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join   map[string]json.RawMessage `json:"join"`
		Invite map[string]json.RawMessage `json:"invite"`
		Leave  map[string]json.RawMessage `json:"leave"`
	} `json:"rooms"`
	Presence    eventsOnly `json:"presence"`
	AccountData eventsOnly `json:"account_data"`
	ToDevice    eventsOnly `json:"to_device"`
}

type eventsOnly struct {
	Events []json.RawMessage `json:"events"`
}

func (s *syncBody) roomCount() int {
	return len(s.Rooms.Join) + len(s.Rooms.Invite) + len(s.Rooms.Leave)
}

// doSync is GET /sync; timeoutMs < 0 omits the timeout.
func doSync(ctx context.Context, c *loadgen.Client, since string, timeoutMs int, filter string) (*syncBody, int, error) {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if timeoutMs >= 0 {
		q.Set("timeout", strconv.Itoa(timeoutMs))
	}
	if filter != "" {
		q.Set("filter", filter)
	}
	var out syncBody
	n, err := c.Do(ctx, "GET", "/_matrix/client/v3/sync?"+q.Encode(), nil, &out)
	if err == nil && out.NextBatch == "" {
		err = errors.New("sync: no next_batch")
	}
	return &out, n, err
}

const incrementalFilter = `{"room":{"timeline":{"limit":10}}}`

// runIncremental times incremental syncs of u: first with nothing
// changed, then each right after one message to one of u's rooms. Each
// response must carry exactly that room.
func (b *bench) runIncremental(ctx context.Context, u *roomUser) (*IncrementalResult, error) {
	res := &IncrementalResult{Rooms: len(u.rooms)}
	init, _, err := doSync(ctx, u.Client, "", -1, incrementalFilter)
	if err != nil {
		return nil, fmt.Errorf("initial sync: %w", err)
	}
	since := init.NextBatch
	// Settle: the first incremental sync may carry the user's own
	// presence (set by the initial sync).
	if r, _, err := doSync(ctx, u.Client, since, 0, incrementalFilter); err != nil {
		return nil, err
	} else {
		since = r.NextBatch
	}
	unchanged := make([]time.Duration, 0, b.cfg.Iters)
	for range b.cfg.Iters {
		t := time.Now()
		r, _, err := doSync(ctx, u.Client, since, 0, incrementalFilter)
		unchanged = append(unchanged, time.Since(t))
		if err != nil {
			return nil, fmt.Errorf("incremental sync: %w", err)
		}
		if n := r.roomCount(); n != 0 {
			return nil, fmt.Errorf("nothing changed, yet the sync carried %d rooms", n)
		}
		since = r.NextBatch
	}
	res.Unchanged = loadgen.Summarize(unchanged)

	ds := make([]time.Duration, 0, b.cfg.Iters)
	sizes := make([]int, 0, b.cfg.Iters)
	counts := map[int]int{}
	for i := range b.cfg.Iters {
		// Spread the changes over the rooms (7 is prime to most counts).
		room := u.rooms[(i*7)%len(u.rooms)]
		if _, err := u.Send(ctx, room, fmt.Sprint("change ", i)); err != nil {
			return nil, fmt.Errorf("send: %w", err)
		}
		t := time.Now()
		r, n, err := doSync(ctx, u.Client, since, 0, incrementalFilter)
		ds = append(ds, time.Since(t))
		if err != nil {
			return nil, fmt.Errorf("incremental sync: %w", err)
		}
		if _, ok := r.Rooms.Join[room]; !ok {
			return nil, fmt.Errorf("iteration %d: the changed room %s is not in the response", i, room)
		}
		counts[r.roomCount()]++
		sizes = append(sizes, n)
		since = r.NextBatch
	}
	res.Latency = loadgen.Summarize(ds)
	slices.Sort(sizes)
	res.MedianBytes = sizes[len(sizes)/2]
	var parts []string
	for _, k := range slices.Sorted(func(yield func(int) bool) {
		for k := range counts {
			if !yield(k) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%d×%d", k, counts[k]))
	}
	res.RoomCounts = strings.Join(parts, ", ")
	if counts[1] != b.cfg.Iters {
		return res, fmt.Errorf("responses carried other rooms than the changed one: %s", res.RoomCounts)
	}
	return res, nil
}

// runInitial times initial syncs of u with a timeline limit and lazily
// loaded members, given inline.
func (b *bench) runInitial(ctx context.Context, u *roomUser, limit int) (*InitialResult, error) {
	filter := fmt.Sprintf(`{"room":{"timeline":{"limit":%d},"state":{"lazy_load_members":true}}}`, limit)
	res := &InitialResult{Rooms: len(u.rooms), Limit: limit, Filter: filter}
	var ds []time.Duration
	for range b.cfg.InitialSyncs {
		t := time.Now()
		r, n, err := doSync(ctx, u.Client, "", -1, filter)
		ds = append(ds, time.Since(t))
		if err != nil {
			return nil, fmt.Errorf("initial sync: %w", err)
		}
		res.Bytes, res.JoinedRooms = n, len(r.Rooms.Join)
	}
	res.Latency = loadgen.Summarize(ds)
	if res.JoinedRooms != len(u.rooms) {
		return res, fmt.Errorf("initial sync returned %d joined rooms, want %d", res.JoinedRooms, len(u.rooms))
	}
	return res, nil
}

// idleFilter keeps the idle users' responses small.
const idleFilter = `{"room":{"timeline":{"limit":1}}}`

// idleTimeout is the idle users' long-poll timeout; a return well before
// it is a wake-up.
const idleTimeout = 60 * time.Second

// runWake measures bench/load's sync wake-up (a fresh pair of users, B
// long-polling, A sending into their room) twice: before and while
// cfg.Idle other users long-poll in rooms that do not change.
func (b *bench) runWake(ctx context.Context) (*WakeResult, error) {
	lg, err := loadgen.New(loadgen.Config{Bases: []string{b.cfg.Base}, SyncIters: b.cfg.WakeIters}, b.hc)
	if err != nil {
		return nil, err
	}
	res := &WakeResult{ServerWaiters: -1}
	if res.Baseline, err = lg.RunSyncWake(ctx); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}

	// Idle users get their own transport: one connection each, kept.
	idleHC := &http.Client{Timeout: idleTimeout + time.Minute, Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        b.cfg.Idle + 64,
		MaxIdleConnsPerHost: b.cfg.Idle + 64,
		IdleConnTimeout:     2 * idleTimeout,
	}}
	defer idleHC.CloseIdleConnections()
	setup := time.Now()
	idle := make([]*loadgen.Client, b.cfg.Idle)
	if err := loadgen.Parallel(ctx, b.cfg.Workers, b.cfg.Idle, func(ctx context.Context, i int) (err error) {
		idle[i], err = b.register(ctx, idleHC)
		return err
	}); err != nil {
		return nil, fmt.Errorf("register idle users: %w", err)
	}
	owner, err := b.register(ctx, b.hc)
	if err != nil {
		return nil, err
	}
	nRooms := (b.cfg.Idle + b.cfg.IdlePerRoom - 1) / b.cfg.IdlePerRoom
	rooms := make([]string, nRooms)
	if err := loadgen.Parallel(ctx, b.cfg.Workers, nRooms, func(ctx context.Context, i int) (err error) {
		rooms[i], err = owner.CreateRoom(ctx)
		return err
	}); err != nil {
		return nil, fmt.Errorf("create idle rooms: %w", err)
	}
	if err := loadgen.Parallel(ctx, b.cfg.Workers, b.cfg.Idle, func(ctx context.Context, i int) error {
		return idle[i].Join(ctx, rooms[i%nRooms])
	}); err != nil {
		return nil, fmt.Errorf("idle users join: %w", err)
	}

	// Every idle user: an initial sync, then long-polls until stopped.
	pollCtx, stop := context.WithCancel(ctx)
	var (
		started, inPoll        atomic.Int64
		lastReturn             atomic.Int64 // unix ns
		measuring              atomic.Bool
		wakes, roomWakes, errs atomic.Int64
		wg                     sync.WaitGroup
	)
	defer func() { stop(); wg.Wait() }()
	for _, c := range idle {
		wg.Go(func() {
			init, _, err := doSync(pollCtx, c, "", -1, idleFilter)
			if err != nil {
				if pollCtx.Err() == nil {
					errs.Add(1)
				}
				return
			}
			since := init.NextBatch
			started.Add(1)
			for pollCtx.Err() == nil {
				t := time.Now()
				inPoll.Add(1)
				r, _, err := doSync(pollCtx, c, since, int(idleTimeout/time.Millisecond), idleFilter)
				inPoll.Add(-1)
				lastReturn.Store(time.Now().UnixNano())
				if pollCtx.Err() != nil {
					return
				}
				if err != nil {
					errs.Add(1)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				if measuring.Load() && time.Since(t) < idleTimeout-time.Second {
					wakes.Add(1)
					if r.roomCount() > 0 {
						roomWakes.Add(1)
					}
				}
				since = r.NextBatch
			}
		})
	}
	// Parked: every idle user is in a long-poll, none has returned for
	// two seconds (the first syncs set presence, which wakes the others in
	// the same room once), and, if the server says, it holds them all
	// parked (a sync whose presence write is still committing is in
	// flight but not parked yet, and its presence would wake the others).
	deadline := time.Now().Add(2 * time.Minute)
	for {
		quiet := time.Since(time.Unix(0, lastReturn.Load()))
		if started.Load() == int64(b.cfg.Idle) && inPoll.Load() == int64(b.cfg.Idle) && quiet > 2*time.Second {
			if w := serverWaiters(ctx, b.hc, b.cfg.Base); w < 0 || w >= b.cfg.Idle {
				break
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("idle users did not settle: %d started, %d in a long-poll, server reports %d parked, %d errors",
				started.Load(), inPoll.Load(), serverWaiters(ctx, b.hc, b.cfg.Base), errs.Load())
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.SetupMs = loadgen.Ms(time.Since(setup))
	res.IdleParked = int(inPoll.Load())
	res.ServerWaiters = serverWaiters(ctx, b.hc, b.cfg.Base)
	fmt.Fprintf(os.Stderr, "  %d idle long-polls parked (server reports %d); timing...\n", res.IdleParked, res.ServerWaiters)

	measuring.Store(true)
	wake, err := lg.RunSyncWake(ctx)
	measuring.Store(false)
	res.IdleWakes, res.IdleRoomWakes, res.IdleErrors = wakes.Load(), roomWakes.Load(), errs.Load()
	if err != nil {
		return res, err
	}
	res.SyncWakeResult = *wake
	if res.IdleRoomWakes > 0 {
		return res, fmt.Errorf("%d idle long-polls returned with rooms that did not change", res.IdleRoomWakes)
	}
	return res, nil
}

// serverWaiters reads chronicle_sync_waiters from /metrics, or -1.
func serverWaiters(ctx context.Context, hc *http.Client, base string) int {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	if err != nil {
		return -1
	}
	resp, err := hc.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return -1
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "chronicle_sync_waiters "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return int(f)
			}
		}
	}
	return -1
}
