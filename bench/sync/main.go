// Command sync benchmarks /sync at scale from the outside: an incremental
// sync of a user in many rooms when one of them changed, initial syncs of
// such a user with lazy-loaded members, and how fast a parked long-poll
// wakes up while a thousand other long-polls are parked too.
//
// Like bench/load and bench/rooms it speaks only standard Client-Server
// endpoints with the standard library (through bench/internal/loadgen's
// client), so the same command measures any homeserver. See
// bench/README.md for the metrics.
//
//	go run ./bench/sync -base http://127.0.0.1:8008 [-quick]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"

	"chronicle/bench/internal/loadgen"
)

// Config is every tunable; it is echoed into the JSON.
type Config struct {
	Base         string `json:"base"`
	LargeRooms   int    `json:"large_rooms"`
	SmallRooms   int    `json:"small_rooms"`
	Msgs         int    `json:"msgs_per_room"`
	Iters        int    `json:"incremental_iters"`
	InitialSyncs int    `json:"initial_syncs"`
	Limits       []int  `json:"timeline_limits"`
	Idle         int    `json:"idle_long_polls"`
	IdlePerRoom  int    `json:"idle_users_per_room"`
	WakeIters    int    `json:"wake_iters"`
	Workers      int    `json:"setup_workers"`
	Quick        bool   `json:"quick"`
	Only         string `json:"only,omitempty"`
}

// Results is the JSON document written to -out.
type Results struct {
	loadgen.Run
	CPUs        int                  `json:"client_cpus"`
	Versions    []string             `json:"server_versions,omitempty"`
	Config      Config               `json:"config"`
	Setup       []SetupResult        `json:"setup,omitempty"`
	Incremental []*IncrementalResult `json:"incremental,omitempty"`
	Initial     []*InitialResult     `json:"initial,omitempty"`
	Wake        *WakeResult          `json:"wake,omitempty"`
	Table       [][]string           `json:"table"`
}

var scenarios = []string{"incremental", "initial", "wake"}

func main() {
	cfg, out := parseFlags()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res := run(ctx, cfg)
	res.Table = buildTable(res)
	loadgen.Report(os.Stdout, res.Table, res, out, len(res.Errors) > 0)
}

func parseFlags() (Config, string) {
	var cfg Config
	var out, limits string
	flag.StringVar(&cfg.Base, "base", "http://127.0.0.1:8008", "homeserver base URL")
	flag.StringVar(&out, "out", "", "JSON results path (default bench/results/sync-<unix time>.json)")
	flag.IntVar(&cfg.LargeRooms, "rooms", 1000, "rooms of the large user")
	flag.IntVar(&cfg.SmallRooms, "small-rooms", 100, "rooms of the small user (to show the cost does not grow with rooms)")
	flag.IntVar(&cfg.Msgs, "msgs", 3, "messages sent to each room during setup")
	flag.IntVar(&cfg.Iters, "iters", 200, "timed incremental syncs per user")
	flag.IntVar(&cfg.InitialSyncs, "initial-syncs", 5, "timed initial syncs per user and timeline limit")
	flag.StringVar(&limits, "limits", "10,20", "timeline limits of the initial syncs")
	flag.IntVar(&cfg.Idle, "idle", 1000, "idle users long-polling /sync during the wake-up scenario")
	flag.IntVar(&cfg.IdlePerRoom, "idle-per-room", 50, "idle users per (quiet) room")
	flag.IntVar(&cfg.WakeIters, "wake-iters", 200, "timed wake-ups")
	flag.IntVar(&cfg.Workers, "workers", 16, "concurrent clients for setup (registering, creating and filling rooms)")
	flag.BoolVar(&cfg.Quick, "quick", false, "small numbers for a smoke run (explicit flags still win)")
	flag.StringVar(&cfg.Only, "only", "", "comma-separated subset of: "+strings.Join(scenarios, ","))
	flag.Parse()
	if cfg.Quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, apply := range map[string]func(){
			"rooms":         func() { cfg.LargeRooms = 100 },
			"small-rooms":   func() { cfg.SmallRooms = 10 },
			"iters":         func() { cfg.Iters = 20 },
			"initial-syncs": func() { cfg.InitialSyncs = 2 },
			"idle":          func() { cfg.Idle = 100 },
			"wake-iters":    func() { cfg.WakeIters = 20 },
		} {
			if !set[name] {
				apply()
			}
		}
	}
	for _, s := range strings.Split(limits, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "bad timeline limit %q\n", s)
			os.Exit(2)
		}
		cfg.Limits = append(cfg.Limits, n)
	}
	if cfg.LargeRooms < 1 || cfg.SmallRooms < 1 || cfg.Msgs < 0 || cfg.Iters < 1 || cfg.InitialSyncs < 1 ||
		cfg.Idle < 0 || cfg.IdlePerRoom < 1 || cfg.WakeIters < 1 || cfg.Workers < 1 {
		fmt.Fprintln(os.Stderr, "counts must be positive")
		os.Exit(2)
	}
	loadgen.CheckOnly(cfg.Only, scenarios)
	cfg.Base = strings.TrimRight(cfg.Base, "/")
	out = loadgen.ResultsPath(out, "sync")
	return cfg, out
}

// run executes the scenarios in order; a failed one is recorded and the
// others still run.
func run(ctx context.Context, cfg Config) (res *Results) {
	res = &Results{Run: loadgen.StartRun(), CPUs: runtime.NumCPU(), Config: cfg}
	defer res.Finish(ctx)
	fail := res.Errors.Fail
	want := func(name string) bool { return loadgen.Wants(cfg.Only, name) }
	b := &bench{cfg: cfg, hc: loadgen.NewHTTPClient()}
	versions, err := loadgen.ServerVersions(ctx, cfg.Base, b.hc)
	if err != nil {
		fail("versions", err)
		return res
	}
	res.Versions = versions

	if want("incremental") || want("initial") {
		// One user per size, each alone in its rooms.
		for _, n := range []int{cfg.SmallRooms, cfg.LargeRooms} {
			fmt.Fprintf(os.Stderr, "setup: a user in %d rooms, %d messages each...\n", n, cfg.Msgs)
			u, setup, err := b.userInRooms(ctx, n)
			if err != nil {
				fail(fmt.Sprintf("setup %d rooms", n), err)
				return res
			}
			res.Setup = append(res.Setup, *setup)
			if want("incremental") && ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "running incremental (%d rooms)...\n", n)
				r, err := b.runIncremental(ctx, u)
				if err != nil {
					fail(fmt.Sprintf("incremental %d rooms", n), err)
				}
				if r != nil {
					res.Incremental = append(res.Incremental, r)
				}
			}
			if want("initial") && ctx.Err() == nil {
				for _, limit := range cfg.Limits {
					fmt.Fprintf(os.Stderr, "running initial (%d rooms, limit %d)...\n", n, limit)
					r, err := b.runInitial(ctx, u, limit)
					if err != nil {
						fail(fmt.Sprintf("initial %d rooms limit %d", n, limit), err)
					}
					if r != nil {
						res.Initial = append(res.Initial, r)
					}
				}
			}
		}
	}
	if want("wake") && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "running wake (%d idle long-polls)...\n", cfg.Idle)
		r, err := b.runWake(ctx)
		if err != nil {
			fail("wake", err)
		}
		res.Wake = r
	}
	return res
}

func buildTable(res *Results) [][]string {
	rows := [][]string{{"SCENARIO", "N", "P50 ms", "P99 ms", "MAX ms", "NOTES"}}
	lat := func(name string, s loadgen.Summary, notes string) {
		rows = append(rows, []string{name, fmt.Sprint(s.N), loadgen.F2(s.P50Ms), loadgen.F2(s.P99Ms), loadgen.F2(s.MaxMs), notes})
	}
	for _, s := range res.Setup {
		rows = append(rows, []string{fmt.Sprintf("setup %d rooms", s.Rooms), fmt.Sprint(s.Rooms), "", "", "",
			fmt.Sprintf("%.1f s, %.0f rooms/s (create + %d messages each)", s.TotalMs/1000, s.RoomsPerSec, s.Msgs)})
	}
	for _, r := range res.Incremental {
		lat(fmt.Sprintf("incremental, %d rooms, 1 changed", r.Rooms), r.Latency,
			fmt.Sprintf("rooms in response: %s; %d B median", r.RoomCounts, r.MedianBytes))
		lat(fmt.Sprintf("incremental, %d rooms, none changed", r.Rooms), r.Unchanged, "timeout=0, empty response")
	}
	for _, r := range res.Initial {
		lat(fmt.Sprintf("initial, %d rooms, limit %d, lazy", r.Rooms, r.Limit), r.Latency,
			fmt.Sprintf("min %s ms, %d joined, %s", loadgen.F2(r.Latency.MinMs), r.JoinedRooms, loadgen.MiB(int64(r.Bytes))))
	}
	if w := res.Wake; w != nil {
		lat(fmt.Sprintf("wake-up, %d idle long-polls", w.IdleParked), w.Latency,
			fmt.Sprintf("send->sync; from send start p50 %s / p99 %s ms; %d repolls, %d early; idle woken %d (rooms %d)",
				loadgen.F2(w.FromSendStart.P50Ms), loadgen.F2(w.FromSendStart.P99Ms), w.Repolls, w.EarlyWakes, w.IdleWakes, w.IdleRoomWakes))
		if w.Baseline != nil {
			lat("wake-up, no idle long-polls", w.Baseline.Latency, "same pair before the idle users park")
		}
	}
	if res.Retries429 > 0 {
		rows = append(rows, []string{"429 retries", fmt.Sprint(res.Retries429), "", "", "", "rate limiting shaped these numbers"})
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range res.Errors {
			if !yield(k) {
				return
			}
		}
	}) {
		rows = append(rows, []string{"FAILED " + name, "", "", "", "", res.Errors[name]})
	}
	return rows
}
