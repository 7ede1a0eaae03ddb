// Command load is a Client-Server API load benchmark for Matrix homeservers.
//
// It only speaks standard /_matrix/client/v3 endpoints with the standard
// library, so the same binary produces comparable numbers for Chronicle,
// Synapse and Dendrite. See bench/README.md for the metrics.
//
//	go run ./bench/load -base http://127.0.0.1:8008 [-quick]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"chronicle/bench/internal/loadgen"
)

// Config is every tunable; it is echoed into the JSON so results are
// self-describing.
type Config struct {
	// Base is the -base flag as given (trailing slash trimmed): one URL, or
	// several comma-separated nodes of one cluster.
	Base string `json:"base"`
	loadgen.Config
	PID     int    `json:"pid,omitempty"`
	DataDir string `json:"data_dir,omitempty"`
	Quick   bool   `json:"quick"`
	Only    string `json:"only,omitempty"`
}

// Results is the JSON document written to -out.
type Results struct {
	loadgen.Run
	Versions    []string                   `json:"server_versions,omitempty"`
	Config      Config                     `json:"config"`
	Register    *loadgen.RegisterResult    `json:"register,omitempty"`
	Send        []loadgen.SendLevel        `json:"send,omitempty"`
	SyncWake    *loadgen.SyncWakeResult    `json:"sync_wake,omitempty"`
	InitialSync *loadgen.InitialSyncResult `json:"initial_sync,omitempty"`
	Paginate    *loadgen.PaginateResult    `json:"paginate,omitempty"`
	Server      *loadgen.ServerResult      `json:"server,omitempty"`
	Table       [][]string                 `json:"table"`
}

func main() {
	cfg, out := parseFlags()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res := run(ctx, cfg)

	table := buildTable(res)
	res.Table = table
	loadgen.Report(os.Stdout, table, res, out, len(res.Errors) > 0)
}

func parseFlags() (Config, string) {
	var cfg Config
	var levels, out string
	flag.StringVar(&cfg.Base, "base", "http://127.0.0.1:8008", "homeserver base URL, or comma-separated URLs of one cluster's nodes")
	flag.StringVar(&out, "out", "", "JSON results path (default bench/results/load-<unix time>.json)")
	flag.IntVar(&cfg.Users, "users", 20, "users to register in the registration scenario")
	flag.IntVar(&cfg.Sends, "sends", 2000, "sends per concurrency level")
	flag.StringVar(&levels, "levels", "1,8,32", "comma-separated sender concurrency levels")
	flag.IntVar(&cfg.Rooms, "rooms", 100, "rooms for the initial sync scenario")
	flag.IntVar(&cfg.MsgsPerRoom, "msgs-per-room", 20, "messages per room for the initial sync scenario")
	flag.IntVar(&cfg.Pages, "pages", 1000, "events to paginate back through")
	flag.IntVar(&cfg.SyncIters, "sync-iters", 200, "sync wake-up iterations")
	flag.IntVar(&cfg.InitialSyncs, "initial-syncs", 5, "timed initial syncs")
	flag.IntVar(&cfg.SetupWorkers, "workers", 16, "concurrent workers for (untimed) setup")
	flag.IntVar(&cfg.PID, "pid", 0, "server PID to report RSS from /proc/PID/status")
	flag.StringVar(&cfg.DataDir, "data", "", "server data dir to report total size of")
	flag.BoolVar(&cfg.Quick, "quick", false, "tiny numbers for a smoke run (explicit flags still win)")
	flag.StringVar(&cfg.Only, "only", "", "comma-separated subset of: register,send,sync,initsync,paginate")
	flag.Parse()

	if cfg.Quick {
		// Only override flags the user didn't set, so -quick -sends 500 works.
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := map[string]func(){
			"users":         func() { cfg.Users = 3 },
			"sends":         func() { cfg.Sends = 50 },
			"levels":        func() { levels = "1,4" },
			"rooms":         func() { cfg.Rooms = 5 },
			"msgs-per-room": func() { cfg.MsgsPerRoom = 3 },
			"pages":         func() { cfg.Pages = 150 },
			"sync-iters":    func() { cfg.SyncIters = 5 },
			"initial-syncs": func() { cfg.InitialSyncs = 2 },
		}
		for name, apply := range quick {
			if !set[name] {
				apply()
			}
		}
	}
	for _, f := range strings.Split(levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bad -levels entry %q\n", f)
			os.Exit(2)
		}
		cfg.Levels = append(cfg.Levels, n)
	}
	if cfg.Users < 0 || cfg.Sends < 1 || cfg.Rooms < 1 || cfg.MsgsPerRoom < 0 || cfg.Pages < 1 ||
		cfg.SyncIters < 1 || cfg.InitialSyncs < 1 || cfg.SetupWorkers < 1 {
		fmt.Fprintln(os.Stderr, "counts must be positive")
		os.Exit(2)
	}
	cfg.Base = strings.TrimRight(cfg.Base, "/")
	if len(loadgen.SplitBases(cfg.Base)) == 0 {
		fmt.Fprintln(os.Stderr, "-base needs at least one URL")
		os.Exit(2)
	}
	out = loadgen.ResultsPath(out, "load")
	return cfg, out
}

// run executes the scenarios in order. A failing scenario is recorded and the
// rest still run: a half-built server should still get numbers for what works.
func run(ctx context.Context, cfg Config) (res *Results) {
	res = &Results{Run: loadgen.StartRun(), Config: cfg}
	defer res.Finish(ctx)
	fail := res.Errors.Fail
	want := func(name string) bool { return loadgen.Wants(cfg.Only, name) }
	step := func(name string) bool {
		if !want(name) || ctx.Err() != nil {
			return false
		}
		fmt.Fprintf(os.Stderr, "running %s...\n", name)
		return true
	}

	hc := loadgen.NewHTTPClient()
	cfg.Bases = loadgen.SplitBases(cfg.Base)
	b, err := loadgen.New(cfg.Config, hc)
	if err != nil {
		fail("config", err)
		return res
	}
	for i, base := range cfg.Bases {
		var versions struct {
			Versions []string `json:"versions"`
		}
		if _, err := loadgen.NewClient(base, hc).Do(ctx, "GET", "/_matrix/client/versions", nil, &versions); err != nil {
			// Nothing else can work; fail fast with a clear message.
			fail("versions", fmt.Errorf("is a homeserver listening on %s? %w", base, err))
			return res
		}
		if i == 0 {
			res.Versions = versions.Versions
		}
	}

	if cfg.PID != 0 {
		res.Server = &loadgen.ServerResult{PID: cfg.PID}
		if rss, _, err := loadgen.ProcMem(cfg.PID); err != nil {
			fail("rss", err)
		} else {
			res.Server.RSSStartBytes = rss
		}
	}

	if step("register") {
		if res.Register, err = b.RunRegister(ctx); err != nil {
			fail("register", err)
		}
	}
	if step("send") {
		if res.Send, err = b.RunSend(ctx); err != nil {
			fail("send", err)
		}
	}
	if step("sync") {
		if res.SyncWake, err = b.RunSyncWake(ctx); err != nil {
			fail("sync", err)
		}
	}
	if step("initsync") {
		if res.InitialSync, err = b.RunInitialSync(ctx); err != nil {
			fail("initsync", err)
		}
	}
	if step("paginate") {
		if res.Paginate, err = b.RunPaginate(ctx); err != nil {
			fail("paginate", err)
		}
	}

	// Footprint is sampled last so it reflects everything the run wrote.
	if cfg.PID != 0 {
		if rss, hwm, err := loadgen.ProcMem(cfg.PID); err != nil {
			fail("rss", err)
		} else {
			res.Server.RSSEndBytes, res.Server.PeakRSSBytes = rss, hwm
		}
	}
	if cfg.DataDir != "" {
		if res.Server == nil {
			res.Server = &loadgen.ServerResult{}
		}
		res.Server.DataDir = cfg.DataDir
		if n, files, err := loadgen.DirSize(cfg.DataDir); err != nil {
			fail("data", err)
		} else {
			res.Server.DataBytes, res.Server.DataFiles = n, files
		}
	}
	return res
}
