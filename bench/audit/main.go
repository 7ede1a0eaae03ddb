// Command audit benchmarks what auditors run on a large history: the hash
// chain check, a full rebuild of every projection from the log, a whole
// verify, and the size of the store on disk per record.
//
// It builds the log itself, by driving the state machine directly (no
// HTTP, no Raft) with synthetic commands: a few users registered, a few
// rooms created and joined (-members each), then messages sent round-robin
// into the rooms by their members
// until the log holds -records records (checkpoints included, every
// -checkpoint-every records, as a server writes them).
//
//	go run ./bench/audit [-quick] [-records N] [-dir DIR] [-cpuprofile FILE]
//
// -quick builds 100,000 records instead of 1,000,000. -dir keeps the built
// store (and reuses one that already holds enough records), so profiling
// runs need not rebuild it. Results are printed as a table and written as
// JSON (-out).
package main

import (
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/bench/internal/loadgen"
	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/audit"
	"chronicle/raft/machine"
)

// Config is every tunable; it is echoed into the JSON.
type Config struct {
	Records         uint64 `json:"records"`
	Users           int    `json:"users"`
	Rooms           int    `json:"rooms"`
	Members         int    `json:"members_per_room"`
	CheckpointEvery uint64 `json:"checkpoint_every"`
	Quick           bool   `json:"quick"`
	Dir             string `json:"dir,omitempty"`
}

// Results is the JSON document.
type Results struct {
	StartedAt time.Time `json:"started_at"`
	GoVersion string    `json:"go_version"`
	CPUs      int       `json:"cpus"`
	Config    Config    `json:"config"`
	Build     Phase     `json:"build"`
	Chain     Phase     `json:"chain_check"`
	Rebuild   Phase     `json:"full_rebuild"`
	Verify    Phase     `json:"verify"`
	VerifyOK  bool      `json:"verify_ok"`
	Disk      Disk      `json:"disk"`
	Targets   Targets   `json:"targets"`
	// Breakdown is each projection's share of a rebuild, on a sample.
	Breakdown []Share    `json:"rebuild_breakdown"`
	Table     [][]string `json:"table"`
}

// Phase is one timed step.
type Phase struct {
	Records       uint64  `json:"records"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	Reused        bool    `json:"reused,omitempty"`
}

// Disk is the store's size.
type Disk struct {
	StoreBytes        int64   `json:"store_bytes"`
	BytesPerRecord    float64 `json:"bytes_per_record"`
	LogBytes          uint64  `json:"log_bytes_estimate"`
	LogBytesPerRecord float64 `json:"log_bytes_per_record"`
}

// Targets are the goals on the 2-core machine.
type Targets struct {
	ChainRecordsPerSec   float64 `json:"chain_records_per_sec"`
	RebuildRecordsPerSec float64 `json:"rebuild_records_per_sec"`
	ChainMet             bool    `json:"chain_met"`
	RebuildMet           bool    `json:"rebuild_met"`
}

func main() {
	var cfg Config
	var out, cpuprofile string
	flag.Uint64Var(&cfg.Records, "records", 1_000_000, "records in the log")
	flag.IntVar(&cfg.Users, "users", 16, "users sending")
	flag.IntVar(&cfg.Rooms, "rooms", 8, "rooms sent into")
	flag.IntVar(&cfg.Members, "members", 4, "members of each room (consecutive users)")
	flag.Uint64Var(&cfg.CheckpointEvery, "checkpoint-every", machine.DefaultCheckpointEvery, "checkpoint interval (0: none)")
	flag.BoolVar(&cfg.Quick, "quick", false, "100,000 records (unless -records is given)")
	flag.StringVar(&cfg.Dir, "dir", "", "keep the built store here (and reuse it when it holds enough records)")
	flag.StringVar(&out, "out", "", "JSON results path (default bench/results/audit-<unix time>.json)")
	flag.StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the full rebuild to this file")
	flag.IntVar(&batchBytes, "batch-bytes", 0, "full rebuild: commit every this many bytes (0: the default)")
	flag.BoolVar(&noVerify, "no-verify", false, "skip the whole-verify step (diagnostic runs)")
	flag.StringVar(&exclude, "exclude", "", "full rebuild and breakdown: leave out these projections (comma-separated), to see what the others cost")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.Quick && !set["records"] {
		cfg.Records = 100_000
	}
	out = loadgen.ResultsPath(out, "audit")
	res, err := run(cfg, cpuprofile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "audit bench:", err)
		os.Exit(1)
	}
	loadgen.PrintTable(os.Stdout, res.Table)
	if err := loadgen.WriteJSON(out, res); err != nil {
		fmt.Fprintln(os.Stderr, "writing results:", err)
		os.Exit(1)
	}
	b, _ := json.Marshal(res)
	fmt.Printf("\n%s\nresults written to %s\n", b, out)
}

var (
	batchBytes int
	exclude    string
	noVerify   bool
)

func run(cfg Config, cpuprofile string) (*Results, error) {
	res := &Results{StartedAt: time.Now(), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), Config: cfg}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "chronicle-audit-bench-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	state := filepath.Join(dir, "state")

	// 1. Build the log (or reuse one).
	start := time.Now()
	n, reused, err := build(state, cfg)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	res.Build = phase(n, time.Since(start))
	res.Build.Reused = reused
	fmt.Fprintf(os.Stderr, "log of %d records %s in %.1fs\n", n, map[bool]string{true: "reused", false: "built"}[reused], res.Build.Seconds)

	db, err := machine.OpenStateReadOnly(state)
	if err != nil {
		return nil, err
	}
	defer db.Close()

	// 2. Size on disk.
	res.Disk.StoreBytes = dirSize(state)
	res.Disk.BytesPerRecord = float64(res.Disk.StoreBytes) / float64(n)
	if est, err := db.EstimateDiskUsage([]byte{0x01}, []byte{0x03}); err == nil {
		res.Disk.LogBytes = est
		res.Disk.LogBytesPerRecord = float64(est) / float64(n)
	}

	// 3. The hash chain.
	start = time.Now()
	head, err := rlog.VerifyChain(db)
	if err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	res.Chain = phase(head.Seq, time.Since(start))
	fmt.Fprintf(os.Stderr, "chain check: %.0f records/s\n", res.Chain.RecordsPerSec)

	// 4. A full rebuild of every projection into a scratch store (what
	// verify and chronicle rebuild run).
	scratch, err := os.MkdirTemp(dir, "rebuild-*")
	if err != nil {
		return nil, err
	}
	opts := machine.StoreOptions()
	opts.DisableWAL = true
	sdb, err := pebble.Open(scratch, opts)
	if err != nil {
		return nil, err
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return nil, err
		}
		pprof.StartCPUProfile(f)
		defer f.Close()
	}
	start = time.Now()
	engine := machine.NewEngine()
	if exclude != "" {
		var keep []projections.Projection
		for _, p := range engine.Projections() {
			if !slices.Contains(strings.Split(exclude, ","), p.Name()) {
				keep = append(keep, p)
			}
		}
		if engine, err = projections.NewEngine(keep...); err != nil {
			return nil, err
		}
	}
	folded, err := projections.NewFolds(engine).Replay(sdb, db, projections.ReplayOptions{BatchBytes: batchBytes})
	if cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	res.Rebuild = phase(folded, time.Since(start))
	sdb.Close()
	os.RemoveAll(scratch)
	fmt.Fprintf(os.Stderr, "full rebuild: %.0f records/s\n", res.Rebuild.RecordsPerSec)

	// 4b. Where a rebuild's time goes: every projection timed on a
	// sample of the log.
	if res.Breakdown, err = breakdown(db, dir, min(head.Seq, 100_000)); err != nil {
		return nil, fmt.Errorf("breakdown: %w", err)
	}

	// 5. A whole verify (chain, replay, digests of both stores).
	rep := &audit.VerifyReport{OK: true}
	if !noVerify {
		env := &audit.Env{Engine: machine.NewEngine(), Options: machine.StoreOptions, TempDir: dir}
		start = time.Now()
		rep, err = env.Verify(db, audit.VerifyOptions{})
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		res.Verify = phase(head.Seq, time.Since(start))
		res.VerifyOK = rep.OK
		if !rep.OK {
			fmt.Fprintln(os.Stderr, "verify FAILED:", rep.Failure)
		}
	}
	res.Targets = Targets{ChainRecordsPerSec: 200_000, RebuildRecordsPerSec: 50_000}
	res.Targets.ChainMet = res.Chain.RecordsPerSec >= res.Targets.ChainRecordsPerSec
	res.Targets.RebuildMet = res.Rebuild.RecordsPerSec >= res.Targets.RebuildRecordsPerSec
	res.Table = [][]string{
		{"measure", "records", "seconds", "records/s", "target"},
		{"build log (machine.Apply)", fmt.Sprint(res.Build.Records), loadgen.F2(res.Build.Seconds), fmt.Sprintf("%.0f", res.Build.RecordsPerSec), reusedNote(reused)},
		{"hash chain check", fmt.Sprint(res.Chain.Records), loadgen.F2(res.Chain.Seconds), fmt.Sprintf("%.0f", res.Chain.RecordsPerSec), target(res.Chain.RecordsPerSec, 200_000)},
		{"full rebuild (all projections)", fmt.Sprint(res.Rebuild.Records), loadgen.F2(res.Rebuild.Seconds), fmt.Sprintf("%.0f", res.Rebuild.RecordsPerSec), target(res.Rebuild.RecordsPerSec, 50_000)},
		{"verify (chain+rebuild+digests)", fmt.Sprint(res.Verify.Records), loadgen.F2(res.Verify.Seconds), fmt.Sprintf("%.0f", res.Verify.RecordsPerSec), map[bool]string{true: "ok", false: "FAILED"}[rep.OK]},
		{"store on disk", loadgen.MiB(res.Disk.StoreBytes), "", fmt.Sprintf("%.0f bytes/record", res.Disk.BytesPerRecord), ""},
		{"log alone (estimate)", loadgen.MiB(int64(res.Disk.LogBytes)), "", fmt.Sprintf("%.0f bytes/record", res.Disk.LogBytesPerRecord), ""},
	}
	for _, sh := range res.Breakdown {
		res.Table = append(res.Table, []string{"  rebuild: " + sh.Projection, fmt.Sprint(sh.Records), loadgen.F2(sh.Seconds), fmt.Sprintf("%.0f", sh.RecordsPerSec), fmt.Sprintf("%.1f%% of the fold", sh.Percent)})
	}
	return res, nil
}

// Share is one projection's part of a rebuild.
type Share struct {
	Projection    string  `json:"projection"`
	Records       uint64  `json:"records"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	Percent       float64 `json:"percent"`
}

// timed wraps a projection to time its Apply.
type timed struct {
	projections.Projection
	d *time.Duration
}

func (t timed) Apply(w projections.Writer, rec *rlog.Record) error {
	start := time.Now()
	err := t.Projection.Apply(w, rec)
	*t.d += time.Since(start)
	return err
}

// breakdown replays the first n records with every projection timed.
func breakdown(db *pebble.DB, dir string, n uint64) ([]Share, error) {
	scratch, err := os.MkdirTemp(dir, "breakdown-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	opts := machine.StoreOptions()
	opts.DisableWAL = true
	sdb, err := pebble.Open(scratch, opts)
	if err != nil {
		return nil, err
	}
	defer sdb.Close()
	var ps []projections.Projection
	for _, p := range machine.NewEngine().Projections() {
		if !slices.Contains(strings.Split(exclude, ","), p.Name()) {
			ps = append(ps, p) // -exclude leaves them out here too
		}
	}
	durs := make([]time.Duration, len(ps))
	var wrapped []projections.Projection
	for i, p := range ps {
		wrapped = append(wrapped, timed{Projection: p, d: &durs[i]})
	}
	e, err := projections.NewEngine(wrapped...)
	if err != nil {
		return nil, err
	}
	if _, err := projections.NewFolds(e).Replay(sdb, db, projections.ReplayOptions{To: n}); err != nil {
		return nil, err
	}
	var total time.Duration
	for _, d := range durs {
		total += d
	}
	var out []Share
	for i, p := range ps {
		out = append(out, Share{Projection: p.Name(), Records: n, Seconds: durs[i].Seconds(),
			RecordsPerSec: float64(n) / max(durs[i].Seconds(), 1e-9), Percent: 100 * durs[i].Seconds() / total.Seconds()})
	}
	slices.SortFunc(out, func(a, b Share) int { return cmp.Compare(b.Seconds, a.Seconds) })
	return out, nil
}

func reusedNote(r bool) string {
	if r {
		return "(reused)"
	}
	return ""
}

func target(v, want float64) string {
	if v >= want {
		return fmt.Sprintf(">= %.0f: met", want)
	}
	return fmt.Sprintf(">= %.0f: MISSED", want)
}

func phase(n uint64, d time.Duration) Phase {
	return Phase{Records: n, Seconds: d.Seconds(), RecordsPerSec: float64(n) / d.Seconds()}
}

func dirSize(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

// build drives a machine until its log holds cfg.Records records. A store
// already holding that many is reused.
func build(state string, cfg Config) (uint64, bool, error) {
	if db, err := machine.OpenStateReadOnly(state); err == nil {
		head, err := rlog.ReadHead(db)
		db.Close()
		if err == nil && head.Seq >= cfg.Records {
			return head.Seq, true, nil
		}
	}
	if err := os.RemoveAll(state); err != nil {
		return 0, false, err
	}
	m, err := machine.Open(state, machine.Config{ServerName: "bench.example", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, false, err
	}
	defer m.Close()
	idx := uint64(0)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	apply := func(typ, actor, device string, payload any) (*machine.Result, error) {
		idx++
		now += 7 // a command every few milliseconds
		cmd, err := machine.NewCommand(typ, now, actor, device, payload)
		if err != nil {
			return nil, err
		}
		cmd.CheckpointEvery = cfg.CheckpointEvery
		res, err := m.Apply(idx, cmd)
		if err != nil {
			return nil, err
		}
		if res.Err != nil {
			return nil, fmt.Errorf("%s by %s refused: %s", typ, actor, res.Err.Msg)
		}
		if idx%256 == 0 {
			m.Publish()
		}
		return res, nil
	}
	users := make([]string, cfg.Users)
	for i := range users {
		users[i] = fmt.Sprintf("@user%d:bench.example", i)
		tok := sha256.Sum256([]byte(users[i]))
		if _, err := apply(machine.CmdRegister, "", "", &machine.Register{UserID: users[i], PasswordHash: "$2a$10$benchbenchbenchbenchbenchbenchbenchbenchbenchbenchbe", DeviceID: "DEV", TokenHash: tok}); err != nil {
			return 0, false, err
		}
	}
	// Room r's members are cfg.Members consecutive users (wrapping).
	rooms := make([]string, cfg.Rooms)
	members := make([][]string, cfg.Rooms)
	for r := range rooms {
		for j := range cfg.Members {
			members[r] = append(members[r], users[(r*cfg.Members+j)%len(users)])
		}
		name := fmt.Sprintf("room %d", r)
		res, err := apply(machine.CmdCreateRoom, members[r][0], "DEV", &machine.CreateRoom{Preset: "public_chat", Name: &name})
		if err != nil {
			return 0, false, err
		}
		rooms[r] = res.RoomID
		for _, u := range members[r][1:] {
			if _, err := apply(machine.CmdMembership, u, "DEV", &machine.Membership{RoomID: rooms[r], Target: u, Membership: "join"}); err != nil {
				return 0, false, err
			}
		}
	}
	seq := m.Log().Pending().Seq
	last := time.Now()
	for i := 0; seq < cfg.Records; i++ {
		r := i % len(rooms)
		u := members[r][(i/len(rooms))%len(members[r])]
		body := fmt.Sprintf(`{"msgtype":"m.text","body":"message %d from %s: the quick brown fox jumps over the lazy dog"}`, i, u)
		res, err := apply(machine.CmdSendEvent, u, "DEV", &machine.SendEvent{RoomID: rooms[r], Type: "m.room.message", Content: json.RawMessage(body), TxnID: fmt.Sprint("t", i)})
		if err != nil {
			return 0, false, err
		}
		seq = res.Seq
		if time.Since(last) > 10*time.Second {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "  built %d/%d records\n", seq, cfg.Records)
		}
	}
	m.Publish()
	if err := m.Sync(); err != nil {
		return 0, false, err
	}
	return seq, false, nil
}
