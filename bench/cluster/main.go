// Command cluster benchmarks a local Chronicle cluster end to end: it starts
// N `chronicle serve` processes on free 127.0.0.1 ports, then measures send
// throughput through all nodes (against a single node for comparison),
// cross-node sync wake-up, failover after SIGKILLing the leader, and a Raft
// snapshot of a large log. See bench/README.md.
//
//	make build && go run ./bench/cluster [-nodes 3] [-quick]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"chronicle/bench/internal/loadgen"
)

var stderr = os.Stderr

// Targets the numbers are judged against (bench/README.md).
const (
	targetThroughputRatio = 0.60 // cluster sends/s over single-node sends/s
	targetFailoverMs      = 3000
	targetWakeP99Ms       = 20
)

// Config is every tunable, echoed into the JSON.
type Config struct {
	Nodes           int    `json:"nodes"`
	Bin             string `json:"bin"`
	Dir             string `json:"dir"`
	Keep            bool   `json:"keep"`
	Quick           bool   `json:"quick"`
	Senders         int    `json:"senders"`
	Sends           int    `json:"sends"`
	SyncIters       int    `json:"sync_iters"`
	FailoverClients int    `json:"failover_clients"`
	Events          int    `json:"snapshot_events"`
	Rooms           int    `json:"snapshot_rooms"`
	Only            string `json:"only,omitempty"`
}

// Machine describes where the numbers came from.
type Machine struct {
	CPUs   int    `json:"cpus"`
	CPU    string `json:"cpu,omitempty"`
	GOOS   string `json:"goos"`
	GOARCH string `json:"goarch"`
}

// Target is one pass/miss judgement.
type Target struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Pass bool    `json:"pass"`
}

// Results is the JSON document written to -out.
type Results struct {
	loadgen.Run
	Machine     Machine                 `json:"machine"`
	Config      Config                  `json:"config"`
	SingleSend  *loadgen.SendLevel      `json:"single_node_send,omitempty"`
	ClusterSend *loadgen.SendLevel      `json:"cluster_send,omitempty"`
	SingleCPU   *CPUCost                `json:"single_node_send_cpu,omitempty"`
	ClusterCPU  *CPUCost                `json:"cluster_send_cpu,omitempty"`
	SendRatio   float64                 `json:"cluster_to_single_send_ratio,omitempty"`
	SyncWake    *loadgen.SyncWakeResult `json:"sync_wake,omitempty"`
	Failover    *FailoverResult         `json:"failover,omitempty"`
	Snapshot    *SnapshotResult         `json:"snapshot,omitempty"`
	Targets     []Target                `json:"targets,omitempty"`
	Table       [][]string              `json:"table"`
	// NodeIDs maps the node URLs in the results to node IDs.
	NodeIDs map[string]string `json:"node_ids,omitempty"`
}

func main() {
	cfg, out := parseFlags()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res := run(ctx, cfg)
	res.Table = buildTable(res)
	loadgen.Report(os.Stdout, res.Table, res, out, len(res.Errors) > 0)
}

func parseFlags() (Config, string) {
	var cfg Config
	var out string
	flag.IntVar(&cfg.Nodes, "nodes", 3, "cluster size (failover needs at least 3)")
	flag.StringVar(&cfg.Bin, "bin", "bin/chronicle", "chronicle binary (`make build`); if missing, one is built into the temp dir")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the temp dir (data dirs and node logs) afterwards")
	flag.StringVar(&out, "out", "", "JSON results path (default bench/results/cluster-<unix time>.json)")
	flag.BoolVar(&cfg.Quick, "quick", false, "smoke run: sends 1000, sync-iters 20, events 5000 (explicit flags still win)")
	flag.IntVar(&cfg.Senders, "senders", 32, "concurrent senders for the send and snapshot-fill scenarios")
	flag.IntVar(&cfg.Sends, "sends", 2000, "timed sends in the send scenario (each of single node and cluster)")
	flag.IntVar(&cfg.SyncIters, "sync-iters", 200, "cross-node sync wake-up iterations")
	flag.IntVar(&cfg.FailoverClients, "failover-clients", 8, "clients sending through the followers during failover")
	flag.IntVar(&cfg.Events, "events", 100000, "messages sent before the snapshot")
	flag.IntVar(&cfg.Rooms, "rooms", 4, "rooms the snapshot fill is spread over")
	flag.StringVar(&cfg.Only, "only", "", "comma-separated subset of: single,send,sync,failover,snapshot")
	flag.Parse()
	if cfg.Quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, apply := range map[string]func(){
			"sends":      func() { cfg.Sends = 1000 },
			"sync-iters": func() { cfg.SyncIters = 20 },
			"events":     func() { cfg.Events = 5000 },
		} {
			if !set[name] {
				apply()
			}
		}
	}
	if cfg.Nodes < 2 || cfg.Senders < 1 || cfg.Sends < 1 || cfg.SyncIters < 1 || cfg.FailoverClients < 1 || cfg.Events < 1 || cfg.Rooms < 1 {
		fmt.Fprintln(stderr, "-nodes must be at least 2 and the counts positive")
		os.Exit(2)
	}
	out = loadgen.ResultsPath(out, "cluster")
	return cfg, out
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// run executes the scenarios; a failed scenario is recorded and the others
// still run. Every node it started is stopped before it returns, on errors,
// panics and Ctrl-C too.
func run(ctx context.Context, cfg Config) (res *Results) {
	res = &Results{Run: loadgen.StartRun(), Machine: machine(), Config: cfg,
		NodeIDs: map[string]string{}}
	defer res.Finish(ctx)
	fail := res.Errors.Fail
	want := func(name string) bool { return loadgen.Wants(cfg.Only, name) }
	step := func(name, what string) bool {
		if !want(name) || ctx.Err() != nil {
			return false
		}
		fmt.Fprintf(stderr, "running %s...\n", what)
		return true
	}

	root, err := os.MkdirTemp("", "chronicle-cluster-bench-")
	if err != nil {
		fail("setup", err)
		return res
	}
	res.Config.Dir = root
	defer func() {
		if cfg.Keep {
			fmt.Fprintln(stderr, "kept data dirs and node logs in", root)
		} else {
			os.RemoveAll(root)
		}
	}()
	bin, err := binary(ctx, cfg.Bin, root)
	if err != nil {
		fail("setup", err)
		return res
	}
	res.Config.Bin = bin

	hc := loadgen.NewHTTPClient()
	sup := newSupervisor(bin, loadgen.RandHex(32), hc)
	// Deferred calls run on errors and panics too, and before the RemoveAll
	// above. Ctrl-C cancels ctx, the scenarios return, and this runs.
	defer sup.stopAll()

	sendCfg := loadgen.Config{Sends: cfg.Sends, Levels: []int{cfg.Senders}}

	// a. single node first, alone on the machine, then stopped.
	if step("single", fmt.Sprintf("send c=%d on a single node", cfg.Senders)) {
		single, cpu, err := singleNodeSend(ctx, sup, filepath.Join(root, "single"), sendCfg)
		if err != nil {
			fail("single-node send", err)
		}
		res.SingleSend, res.SingleCPU = single, cpu
	}

	if !want("send") && !want("sync") && !want("failover") && !want("snapshot") {
		return res
	}
	fmt.Fprintf(stderr, "starting a %d-node cluster in %s...\n", cfg.Nodes, root)
	nodes, err := newNodes(filepath.Join(root, "cluster"), cfg.Nodes)
	if err != nil {
		fail("cluster", err)
		return res
	}
	for _, n := range nodes {
		res.NodeIDs[n.URL] = n.ID
	}
	st, err := sup.startCluster(ctx, nodes)
	if err != nil {
		fail("cluster", err)
		return res
	}
	fmt.Fprintf(stderr, "cluster up: leader %s, term %d\n", st.Leader.ID, st.Term)
	bases := leaderFirst(nodes, st.Leader.ID)

	if step("send", fmt.Sprintf("send c=%d through all %d nodes", cfg.Senders, cfg.Nodes)) {
		c := sendCfg
		c.Bases = bases
		if lvl, cpu, err := meteredSendLevel(ctx, c, hc, nodes); err != nil {
			fail("cluster send", err)
		} else {
			res.ClusterSend, res.ClusterCPU = lvl, cpu
		}
	}
	if res.SingleSend != nil && res.ClusterSend != nil && res.SingleSend.PerSec > 0 {
		res.SendRatio = res.ClusterSend.PerSec / res.SingleSend.PerSec
		res.Targets = append(res.Targets, Target{Name: "cluster send throughput / single node",
			Want: fmt.Sprintf(">= %.0f%%", targetThroughputRatio*100), Got: res.SendRatio, Pass: res.SendRatio >= targetThroughputRatio})
	}

	if step("sync", "cross-node sync wake-up") {
		// The sender uses the leader, the receiver a follower.
		b, err := loadgen.New(loadgen.Config{Bases: bases, SyncIters: cfg.SyncIters}, hc)
		if err == nil {
			res.SyncWake, err = b.RunSyncWake(ctx)
		}
		if err != nil {
			fail("sync", err)
		} else {
			p99 := res.SyncWake.Latency.P99Ms
			res.Targets = append(res.Targets, Target{Name: "cross-node sync wake-up p99 ms",
				Want: fmt.Sprintf("< %d", targetWakeP99Ms), Got: p99, Pass: p99 < targetWakeP99Ms})
		}
	}

	if want("failover") && cfg.Nodes < 3 {
		fail("failover", errors.New("needs -nodes 3 or more: two nodes lose their quorum with one"))
	} else if step("failover", fmt.Sprintf("failover: kill -9 the leader under %d clients", cfg.FailoverClients)) {
		fo, err := runFailover(ctx, sup, nodes, cfg.FailoverClients)
		res.Failover = fo
		if err != nil {
			fail("failover", err)
		}
		if fo != nil && fo.UnavailableMs > 0 {
			res.Targets = append(res.Targets, Target{Name: "failover ms", Want: fmt.Sprintf("< %d", targetFailoverMs),
				Got: fo.UnavailableMs, Pass: fo.UnavailableMs < targetFailoverMs})
		}
	}

	if step("snapshot", fmt.Sprintf("snapshot after %d events", cfg.Events)) {
		sn, err := runSnapshot(ctx, sup, nodes, cfg.Events, cfg.Senders, cfg.Rooms)
		res.Snapshot = sn
		if err != nil {
			fail("snapshot", err)
		}
	}
	return res
}

// binary returns the chronicle binary to run, building one into dir when
// path doesn't exist.
func binary(ctx context.Context, path, dir string) (string, error) {
	if info, err := os.Stat(path); err == nil && !info.IsDir() {
		return filepath.Abs(path)
	}
	out := filepath.Join(dir, "chronicle")
	fmt.Fprintf(stderr, "%s not found (run `make build` first); building %s...\n", path, out)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/chronicle")
	cmd.Env = append(os.Environ(), "GOEXPERIMENT=jsonv2")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/chronicle: %w", err)
	}
	return out, nil
}

// singleNodeSend starts a one-node server, measures one send level on it,
// and stops it so it doesn't compete with the cluster for CPU.
func singleNodeSend(ctx context.Context, sup *supervisor, root string, cfg loadgen.Config) (*loadgen.SendLevel, *CPUCost, error) {
	nodes, err := newNodes(root, 1)
	if err != nil {
		return nil, nil, err
	}
	defer nodes[0].stop()
	if _, err := sup.startCluster(ctx, nodes); err != nil {
		return nil, nil, err
	}
	cfg.Bases = []string{nodes[0].URL}
	return meteredSendLevel(ctx, cfg, sup.hc, nodes)
}

// meteredSendLevel is runSendLevel with the CPU the timed window cost in
// the nodes and in this process.
func meteredSendLevel(ctx context.Context, cfg loadgen.Config, hc *http.Client, nodes []*node) (*loadgen.SendLevel, *CPUCost, error) {
	m := &cpuMeter{pids: pids(nodes)}
	cfg.Timed = m.timed
	lvl, err := runSendLevel(ctx, cfg, hc)
	if err != nil {
		return nil, nil, err
	}
	return lvl, m.cost(lvl.Sends, runtime.NumCPU()), nil
}

// runSendLevel runs bench/load's send scenario for the one level in cfg.
func runSendLevel(ctx context.Context, cfg loadgen.Config, hc *http.Client) (*loadgen.SendLevel, error) {
	b, err := loadgen.New(cfg, hc)
	if err != nil {
		return nil, err
	}
	levels, err := b.RunSend(ctx)
	if err != nil {
		return nil, err
	}
	return &levels[0], nil
}
