package main

// Local chronicle processes: start, kill, restart, and wait for the cluster
// to form. Every child runs in its own process group (so a terminal Ctrl-C
// reaches only the benchmark, which then stops them in order) and with a
// parent-death signal (so they die even if the benchmark is SIGKILLed).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"chronicle/bench/internal/loadgen"
)

// node is one `chronicle serve` process and everything needed to restart it.
type node struct {
	ID       string
	Dir      string // data directory
	LogPath  string // stdout and stderr, appended across restarts
	Listen   string
	RaftAddr string
	URL      string
	Join     string // URL of the member to join on first start, "" to bootstrap

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
}

// supervisor starts nodes and is the single place that stops them.
type supervisor struct {
	bin    string
	secret string
	hc     *http.Client

	mu    sync.Mutex
	nodes []*node
}

func newSupervisor(bin, secret string, hc *http.Client) *supervisor {
	return &supervisor{bin: bin, secret: secret, hc: hc}
}

// freeAddrs returns n distinct free 127.0.0.1 ports. All listeners are held
// until every port is chosen so the kernel cannot hand one out twice.
func freeAddrs(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// newNodes lays out count nodes under root: n1 bootstraps, the others join
// n1.
func newNodes(root string, count int) ([]*node, error) {
	addrs, err := freeAddrs(2 * count)
	if err != nil {
		return nil, err
	}
	var out []*node
	for i := range count {
		id := fmt.Sprintf("n%d", i+1)
		n := &node{
			ID: id, Dir: filepath.Join(root, id), LogPath: filepath.Join(root, id+".log"),
			Listen: addrs[2*i], RaftAddr: addrs[2*i+1], URL: "http://" + addrs[2*i],
		}
		if i > 0 {
			n.Join = out[0].URL
		}
		out = append(out, n)
	}
	return out, nil
}

// start launches n (again, after a kill: a node with Raft state ignores
// --join and rejoins by itself).
func (s *supervisor) start(n *node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && !closed(n.done) {
		return fmt.Errorf("%s is already running (pid %d)", n.ID, n.cmd.Process.Pid)
	}
	if err := os.MkdirAll(filepath.Dir(n.LogPath), 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	args := []string{"serve", "--node-id", n.ID, "--data", n.Dir, "--listen", n.Listen, "--raft-addr", n.RaftAddr}
	if n.Join != "" {
		args = append(args, "--join", n.Join)
	}
	fmt.Fprintf(logf, "\n=== %s: %s %s\n", time.Now().Format(time.RFC3339Nano), s.bin, strings.Join(args, " "))
	cmd := exec.Command(s.bin, args...)
	// The secret goes through the environment, not argv, so ps doesn't show it.
	cmd.Env = append(os.Environ(), "CHRONICLE_CLUSTER_SECRET="+s.secret)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", n.ID, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	n.cmd, n.done = cmd, done
	s.mu.Lock()
	if !slices.Contains(s.nodes, n) {
		s.nodes = append(s.nodes, n)
	}
	s.mu.Unlock()
	return nil
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// running reports whether n's process is alive.
func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil && !closed(n.done)
}

// signal sends sig to n's process group and waits up to wait for it to exit.
func (n *node) signal(sig syscall.Signal, wait time.Duration) bool {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil || closed(done) {
		return true
	}
	// The process group has the child's PID as its ID (Setpgid).
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
		return true
	case <-time.After(wait):
		return false
	}
}

// kill9 is the crash in the failover scenario: SIGKILL, no shutdown.
func (n *node) kill9() {
	n.signal(syscall.SIGKILL, 10*time.Second)
}

// stop shuts n down gracefully, then forcibly.
func (n *node) stop() {
	if !n.signal(syscall.SIGTERM, 3*time.Second) {
		n.signal(syscall.SIGKILL, 10*time.Second)
	}
}

// stopAll stops every node this supervisor ever started, in parallel.
func (s *supervisor) stopAll() {
	s.mu.Lock()
	nodes := slices.Clone(s.nodes)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(n.stop)
	}
	wg.Wait()
}

// logTail is the end of n's log, for error messages.
func (n *node) logTail() string {
	data, err := os.ReadFile(n.LogPath)
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// clusterStatus mirrors GET /_chronicle/v1/cluster.
type clusterStatus struct {
	NodeID string `json:"node_id"`
	Role   string `json:"role"`
	Leader struct {
		ID  string `json:"id"`
		URL string `json:"url"`
	} `json:"leader"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	LogPosition  uint64 `json:"log_position"`
	Nodes        []struct {
		ID       string `json:"id"`
		URL      string `json:"url"`
		Suffrage string `json:"suffrage"`
	} `json:"nodes"`
}

func (st *clusterStatus) voters() int {
	v := 0
	for _, n := range st.Nodes {
		if n.Suffrage == "voter" {
			v++
		}
	}
	return v
}

// admin is a client for n's operator API, authenticated with the secret.
func (s *supervisor) admin(n *node) *loadgen.Client {
	c := loadgen.NewClient(n.URL, s.hc)
	c.Token = s.secret
	return c
}

func (s *supervisor) status(ctx context.Context, n *node) (*clusterStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var st clusterStatus
	if _, err := s.admin(n).Do(ctx, "GET", "/_chronicle/v1/cluster", nil, &st); err != nil {
		return nil, fmt.Errorf("%s: cluster status: %w", n.ID, err)
	}
	return &st, nil
}

// ready is GET /_chronicle/v1/ready: nil when the node answers 200.
func (s *supervisor) ready(ctx context.Context, n *node) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	status, body, err := loadgen.NewClient(n.URL, s.hc).Raw(ctx, "GET", "/_chronicle/v1/ready", nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s not ready: HTTP %d %s", n.ID, status, bytes.TrimSpace(body))
	}
	return nil
}

// waitReady polls until n is ready, its process dies, or timeout passes.
func (s *supervisor) waitReady(ctx context.Context, n *node, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := s.ready(ctx, n)
		if err == nil {
			return nil
		}
		if !n.running() {
			return fmt.Errorf("%s exited before becoming ready; log %s:\n%s", n.ID, n.LogPath, n.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %v; log %s:\n%s", n.ID, timeout, err, n.LogPath, n.logTail())
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitCluster waits until every one of nodes is ready, all agree on one
// leader among them, and that leader lists `voters` voters (the killed node
// of the failover scenario stays a member, so this can exceed len(nodes)).
// It returns the leader's status.
func (s *supervisor) waitCluster(ctx context.Context, nodes []*node, voters int, timeout time.Duration) (*clusterStatus, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := s.checkCluster(ctx, nodes, voters)
		if err == nil {
			return st, nil
		}
		for _, n := range nodes {
			if !n.running() {
				return nil, fmt.Errorf("%s exited; log %s:\n%s", n.ID, n.LogPath, n.logTail())
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cluster not formed after %s: %w", timeout, err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

func (s *supervisor) checkCluster(ctx context.Context, nodes []*node, voters int) (*clusterStatus, error) {
	var leader *clusterStatus
	leaderID := ""
	for _, n := range nodes {
		if err := s.ready(ctx, n); err != nil {
			return nil, err
		}
		st, err := s.status(ctx, n)
		if err != nil {
			return nil, err
		}
		if st.Leader.ID == "" {
			return nil, fmt.Errorf("%s knows no leader", n.ID)
		}
		if leaderID != "" && st.Leader.ID != leaderID {
			return nil, fmt.Errorf("%s follows %s, others %s", n.ID, st.Leader.ID, leaderID)
		}
		leaderID = st.Leader.ID
		if st.NodeID == leaderID {
			leader = st
		}
	}
	if leader == nil {
		return nil, fmt.Errorf("leader %s is not one of the nodes", leaderID)
	}
	if v := leader.voters(); v != voters {
		return nil, fmt.Errorf("leader %s lists %d voters, want %d", leaderID, v, voters)
	}
	return leader, nil
}

// startCluster starts nodes[0] (bootstrapping), waits for it, then starts
// the others joining it and waits for the whole cluster.
func (s *supervisor) startCluster(ctx context.Context, nodes []*node) (*clusterStatus, error) {
	if err := s.start(nodes[0]); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, nodes[0], 60*time.Second); err != nil {
		return nil, err
	}
	for _, n := range nodes[1:] {
		if err := s.start(n); err != nil {
			return nil, err
		}
	}
	return s.waitCluster(ctx, nodes, len(nodes), 90*time.Second)
}

// byID finds a node.
func byID(nodes []*node, id string) (*node, error) {
	for _, n := range nodes {
		if n.ID == id {
			return n, nil
		}
	}
	return nil, errors.New("no node " + id)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
