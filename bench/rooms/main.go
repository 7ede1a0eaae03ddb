// Command rooms benchmarks a Matrix homeserver's room operations from the
// outside: creating rooms, joining one room, paging through a long
// history, and listing a large room's members.
//
// Like bench/load it speaks only standard Client-Server endpoints with the
// standard library (through bench/internal/loadgen's client), so the same
// command measures any homeserver. See bench/README.md for the metrics.
//
//	go run ./bench/rooms -base http://127.0.0.1:8008 [-quick]
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
	Base        string `json:"base"`
	Rooms       int    `json:"rooms"`
	Joins       int    `json:"joins"`
	Events      int    `json:"events"`
	Senders     int    `json:"senders"`
	Members     int    `json:"members"`
	Concurrency int    `json:"concurrency"`
	Workers     int    `json:"setup_workers"`
	Reps        int    `json:"reps"`
	Password    bool   `json:"password"`
	Quick       bool   `json:"quick"`
	Only        string `json:"only,omitempty"`
}

// Results is the JSON document written to -out.
type Results struct {
	loadgen.Run
	CPUs     int             `json:"client_cpus"`
	Versions []string        `json:"server_versions,omitempty"`
	Config   Config          `json:"config"`
	Register *Throughput     `json:"register,omitempty"`
	Create   *Throughput     `json:"create,omitempty"`
	Join     *JoinResult     `json:"join,omitempty"`
	Messages *MessagesResult `json:"messages,omitempty"`
	Members  *MembersResult  `json:"members,omitempty"`
	Table    [][]string      `json:"table"`
}

var scenarios = []string{"create", "join", "messages", "members"}

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
	var out string
	flag.StringVar(&cfg.Base, "base", "http://127.0.0.1:8008", "homeserver base URL")
	flag.StringVar(&out, "out", "", "JSON results path (default bench/results/rooms-<unix time>.json)")
	flag.IntVar(&cfg.Rooms, "rooms", 1000, "rooms to create")
	flag.IntVar(&cfg.Joins, "joins", 500, "users joining one room")
	flag.IntVar(&cfg.Events, "events", 100_000, "messages in the room /messages pages through")
	flag.IntVar(&cfg.Senders, "senders", 32, "concurrent senders filling that room")
	flag.IntVar(&cfg.Members, "members", 5000, "members of the room whose member lists are fetched")
	flag.IntVar(&cfg.Concurrency, "c", 8, "concurrent clients in the timed create and join scenarios")
	flag.IntVar(&cfg.Workers, "workers", 32, "concurrent clients for registration and the members room's joins")
	flag.IntVar(&cfg.Reps, "reps", 5, "timed fetches of each member list")
	flag.BoolVar(&cfg.Password, "password", false, "register the users with passwords (the server hashes each one)")
	flag.BoolVar(&cfg.Quick, "quick", false, "small numbers for a smoke run (explicit flags still win)")
	flag.StringVar(&cfg.Only, "only", "", "comma-separated subset of: "+strings.Join(scenarios, ","))
	flag.Parse()
	if cfg.Quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, apply := range map[string]func(){
			"rooms":   func() { cfg.Rooms = 50 },
			"joins":   func() { cfg.Joins = 50 },
			"events":  func() { cfg.Events = 5000 },
			"members": func() { cfg.Members = 200 },
			"reps":    func() { cfg.Reps = 3 },
		} {
			if !set[name] {
				apply()
			}
		}
	}
	if cfg.Rooms < 1 || cfg.Joins < 1 || cfg.Events < 1 || cfg.Senders < 1 || cfg.Members < 1 ||
		cfg.Concurrency < 1 || cfg.Workers < 1 || cfg.Reps < 1 {
		fmt.Fprintln(os.Stderr, "counts must be positive")
		os.Exit(2)
	}
	loadgen.CheckOnly(cfg.Only, scenarios)
	cfg.Base = strings.TrimRight(cfg.Base, "/")
	out = loadgen.ResultsPath(out, "rooms")
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

	// Every scenario draws its users from one pool, registered up front.
	need := 0
	for name, n := range map[string]int{"create": cfg.Concurrency, "join": cfg.Joins, "messages": cfg.Senders, "members": cfg.Members} {
		if want(name) {
			need = max(need, n)
		}
	}
	fmt.Fprintf(os.Stderr, "registering %d users...\n", need+1)
	if res.Register, err = b.register(ctx, need+1); err != nil {
		fail("register", err)
		return res
	}
	for _, sc := range []struct {
		name string
		fn   func(context.Context, *Results) error
	}{
		{"create", func(ctx context.Context, r *Results) (err error) { r.Create, err = b.runCreate(ctx); return }},
		{"join", func(ctx context.Context, r *Results) (err error) { r.Join, err = b.runJoin(ctx); return }},
		{"messages", func(ctx context.Context, r *Results) (err error) { r.Messages, err = b.runMessages(ctx); return }},
		{"members", func(ctx context.Context, r *Results) (err error) { r.Members, err = b.runMembers(ctx); return }},
	} {
		if !want(sc.name) || ctx.Err() != nil {
			continue
		}
		fmt.Fprintf(os.Stderr, "running %s...\n", sc.name)
		if err := sc.fn(ctx, res); err != nil {
			fail(sc.name, err)
		}
	}
	return res
}

func buildTable(res *Results) [][]string {
	rows := [][]string{{"SCENARIO", "N", "RATE", "P50 ms", "P99 ms", "TOTAL", "NOTES"}}
	tput := func(name, unit string, t *Throughput, notes string) {
		rows = append(rows, []string{name, fmt.Sprint(t.N), fmt.Sprintf("%.1f %s/s", t.PerSec, unit),
			loadgen.F2(t.Latency.P50Ms), loadgen.F2(t.Latency.P99Ms), secs(t.TotalMs), notes})
	}
	c := res.Config
	if t := res.Register; t != nil {
		how := "no password"
		if c.Password {
			how = "with passwords"
		}
		tput("register users", "users", t, fmt.Sprintf("c=%d, %s (setup for the rest)", c.Workers, how))
	}
	if t := res.Create; t != nil {
		tput("create rooms", "rooms", t, fmt.Sprintf("c=%d, preset public_chat", c.Concurrency))
	}
	if j := res.Join; j != nil {
		tput("join one room", "joins", &j.Throughput, fmt.Sprintf("c=%d; p50 first 10%% %s ms, last 10%% %s ms",
			c.Concurrency, loadgen.F2(j.First.P50Ms), loadgen.F2(j.Last.P50Ms)))
	}
	if m := res.Messages; m != nil {
		tput("  fill room", "events", &m.Fill, fmt.Sprintf("%d senders", c.Senders))
		page := func(name string, s loadgen.Summary, notes string) {
			rows = append(rows, []string{name, fmt.Sprint(s.N), "", loadgen.F2(s.P50Ms), loadgen.F2(s.P99Ms), "", notes})
		}
		page("/messages newest 10%", m.Newest, "pages of 100, dir=b")
		page("/messages middle 10%", m.Middle, "")
		page("/messages oldest 10%", m.Oldest, "")
		rows = append(rows, []string{"/messages whole walk", fmt.Sprint(m.Pages), fmt.Sprintf("%.0f events/s", m.EventsPerSec),
			loadgen.F2(m.All.P50Ms), loadgen.F2(m.All.P99Ms), secs(m.TotalMs), fmt.Sprintf("%d events seen", m.EventsSeen)})
	}
	if m := res.Members; m != nil {
		tput(fmt.Sprintf("  join %d-member room", m.Members), "joins", &m.Join, fmt.Sprintf("c=%d", c.Workers))
		for _, e := range m.Endpoints {
			if e.Missing {
				rows = append(rows, []string{e.Name, "", "", "", "", "", "not implemented: " + e.Error})
				continue
			}
			rows = append(rows, []string{e.Name, fmt.Sprint(e.Latency.N), "", loadgen.F2(e.Latency.P50Ms), loadgen.F2(e.Latency.P99Ms), "",
				fmt.Sprintf("min %s ms, %d entries, %s", loadgen.F2(e.Latency.MinMs), e.Entries, kib(e.Bytes))})
		}
	}
	if res.Retries429 > 0 {
		rows = append(rows, []string{"429 retries", fmt.Sprint(res.Retries429), "", "", "", "", "rate limiting shaped these numbers"})
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range res.Errors {
			if !yield(k) {
				return
			}
		}
	}) {
		rows = append(rows, []string{"FAILED " + name, "", "", "", "", "", res.Errors[name]})
	}
	return rows
}

func secs(ms float64) string { return fmt.Sprintf("%.2f s", ms/1000) }

func kib(n int) string { return fmt.Sprintf("%.0f KiB", float64(n)/1024) }
