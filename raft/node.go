package raft

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"

	"chronicle/raft/machine"
	"chronicle/raft/store"
)

// Config configures a node.
type Config struct {
	NodeID  string
	DataDir string
	// RaftAddr is where this node listens for other nodes (Raft and
	// forwarded writes); port 0 picks one. RaftAdvertise is the address
	// peers dial, when it differs (NAT, 0.0.0.0 binds).
	RaftAddr      string
	RaftAdvertise string
	// URL is this node's client API base URL, recorded in the cluster
	// registry so status can name the leader's URL.
	URL        string
	ServerName string
	// ClusterSecret authenticates node-to-node connections.
	ClusterSecret []byte
	// ServerTLS and ClientTLS, when set, wrap node-to-node traffic in TLS.
	ServerTLS *tls.Config
	ClientTLS *tls.Config
	// Join says this node expects to be added to an existing cluster, so it
	// must not bootstrap a cluster of its own.
	Join   bool
	Logger *slog.Logger
	// Fast shortens Raft timeouts for in-process tests.
	Fast bool
	// SnapshotThreshold is how many log entries trigger an automatic
	// snapshot (0: hashicorp/raft's default).
	SnapshotThreshold uint64
	// CheckpointEvery is stamped into every command this node submits: the
	// state machine appends a checkpoint record each time a command's
	// records cross a multiple of it (0: none). See machine/audit.go.
	CheckpointEvery uint64
}

// Node is one Chronicle server's Raft member and state machine.
type Node struct {
	cfg     Config
	raft    *hraft.Raft
	machine *machine.Machine
	store   *store.Store
	stream  *streamLayer
	trans   *hraft.NetworkTransport
	fwd     *forwarder
	fsm     *fsm
	metrics *Metrics

	hadState bool // Raft state existed on disk at start

	stop     chan struct{}
	stopOnce sync.Once

	connMu sync.Mutex
	conns  map[net.Conn]struct{} // accepted forwarding connections
	wg     sync.WaitGroup
}

// maxNoLeaderWait bounds how long Submit waits for a leader to appear.
const maxNoLeaderWait = 5 * time.Second

// Errors Submit returns besides a *machine.Rejection.
var (
	// ErrNotLeader: this node is not the leader (internal; Submit forwards).
	ErrNotLeader = errors.New("raft: not the leader")
	// ErrNoLeader: no leader could be reached in time; nothing was applied.
	ErrNoLeader = errors.New("raft: no leader available")
	// ErrIndeterminate: the write may or may not have been applied (the
	// leader was lost mid-request); a client retries idempotently.
	ErrIndeterminate = errors.New("raft: outcome unknown, leader lost during the write")
)

// Open starts a node. With no Raft state and no Join it bootstraps a
// single-node cluster.
func Open(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "n1"
	}
	if cfg.RaftAddr == "" {
		cfg.RaftAddr = "127.0.0.1:0"
	}
	for _, d := range []string{"raft", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
	}
	m, err := machine.Open(filepath.Join(cfg.DataDir, "state"), machine.Config{ServerName: cfg.ServerName, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, machine: m, stop: make(chan struct{}), metrics: newMetrics(), conns: map[net.Conn]struct{}{}}
	if err := n.start(); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) start() error {
	var err error
	if n.store, err = store.Open(filepath.Join(n.cfg.DataDir, "raft")); err != nil {
		return err
	}
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: os.Stderr})
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(filepath.Join(n.cfg.DataDir, "snapshots"), 2, hlog)
	if err != nil {
		return fmt.Errorf("snapshot store: %w", err)
	}
	n.stream, err = newStreamLayer(n.cfg.RaftAddr, n.cfg.RaftAdvertise, n.cfg.ClusterSecret, n.cfg.ServerTLS, n.cfg.ClientTLS, n.cfg.Logger)
	if err != nil {
		return err
	}
	n.trans = hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
		Stream: n.stream, MaxPool: 5, Timeout: 10 * time.Second, Logger: hlog,
	})
	n.fwd = &forwarder{stream: n.stream, idle: map[string][]net.Conn{}, pipes: map[string]*pipeline{}}

	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(n.cfg.NodeID)
	rc.Logger = hlog
	// The state store is durable up to the last snapshot (Persist flushes
	// it), so a restart replays only the log tail instead of reloading the
	// whole history.
	rc.NoSnapshotRestoreOnStart = true
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 512
	// Half of hashicorp/raft's defaults: a dead leader is replaced in about
	// a second and a half instead of three, still far above loopback and
	// LAN round trips.
	rc.HeartbeatTimeout = 500 * time.Millisecond
	rc.ElectionTimeout = 500 * time.Millisecond
	rc.LeaderLeaseTimeout = 250 * time.Millisecond
	// Followers learn the commit index from the leader's next AppendEntries;
	// hashicorp/raft sends one every CommitTimeout when idle. A forwarded
	// write is answered only once the follower applied it, so this bounds
	// the extra latency of writing through a follower (and of cross-node
	// sync wake-ups), at the cost of an idle RPC per follower every few ms (about 2% of a
	// core per node when idle, measured).
	rc.CommitTimeout = 5 * time.Millisecond
	if n.cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = n.cfg.SnapshotThreshold
		rc.TrailingLogs = n.cfg.SnapshotThreshold / 2
	}
	if n.cfg.Fast {
		rc.HeartbeatTimeout = 200 * time.Millisecond
		rc.ElectionTimeout = 200 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
		rc.SnapshotInterval = 500 * time.Millisecond
	}
	f := &fsm{m: n.machine, logger: n.cfg.Logger, metrics: n.metrics}
	f.done.Store(n.machine.AppliedIndex())
	n.fsm = f
	has, err := hraft.HasExistingState(n.store, n.store, snaps)
	if err != nil {
		return fmt.Errorf("inspect raft state: %w", err)
	}
	n.hadState = has
	if n.raft, err = hraft.NewRaft(rc, f, n.store, n.store, snaps, n.trans); err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	if !has && !n.cfg.Join {
		cfg := hraft.Configuration{Servers: []hraft.Server{{ID: rc.LocalID, Address: n.trans.LocalAddr()}}}
		if err := n.raft.BootstrapCluster(cfg).Error(); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	n.registerGauges()
	n.wg.Add(4)
	go func() { defer n.wg.Done(); n.expireTyping() }()
	go func() { defer n.wg.Done(); n.serveForwards() }()
	go func() { defer n.wg.Done(); n.announceSelf() }()
	go func() { defer n.wg.Done(); n.observe() }()
	return nil
}

// NeedsJoin reports whether this node started without Raft state and was
// told to join: it must be added by a member before it can do anything. A
// restarted member already has the configuration and rejoins by itself.
func (n *Node) NeedsJoin() bool { return n.cfg.Join && !n.hadState }

// Machine returns the state machine (for reads).
func (n *Node) Machine() *machine.Machine { return n.machine }

// ID is this node's Raft server ID.
func (n *Node) ID() string { return n.cfg.NodeID }

// RaftAddr is the address peers dial.
func (n *Node) RaftAddr() string { return string(n.trans.LocalAddr()) }

// IsLeader reports whether this node leads now.
func (n *Node) IsLeader() bool { return n.raft.State() == hraft.Leader }

// WaitLeader blocks until this node knows a leader or ctx ends.
func (n *Node) WaitLeader(ctx context.Context) error {
	for {
		if addr, _ := n.raft.LeaderWithID(); addr != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no raft leader: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Submit proposes cmd through the leader (this node or, forwarded, another)
// and returns once this node has applied it, so the caller can read its
// own write here. A command the domain refused returns the Result and its
// *machine.Rejection as the error.
func (n *Node) Submit(ctx context.Context, cmd *machine.Command) (*machine.Result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if cmd.CheckpointEvery == 0 {
		cmd.CheckpointEvery = n.cfg.CheckpointEvery
	}
	data, err := cmd.Encode()
	if err != nil {
		return nil, err
	}
	// Without a leader for this long, give up early with ErrNoLeader: an
	// election takes about a second, so longer means no quorum.
	noLeaderSince := time.Time{}
	for {
		res, index, err := n.submitOnce(ctx, cmd, data)
		if err == nil || !errors.Is(err, ErrNotLeader) {
			var rej *machine.Rejection
			if err != nil && !errors.As(err, &rej) {
				return nil, err
			}
			if werr := n.machine.WaitApplied(ctx, index); werr != nil {
				// Decided but not yet visible here: the client may retry.
				return nil, fmt.Errorf("%w: %v", ErrIndeterminate, werr)
			}
			return res, err
		}
		// Nothing was proposed: wait for a leader and try again.
		if noLeaderSince.IsZero() {
			noLeaderSince = time.Now()
		} else if time.Since(noLeaderSince) > maxNoLeaderWait {
			return nil, fmt.Errorf("submit %s: %w", cmd.Type, ErrNoLeader)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("submit %s: %w", cmd.Type, ErrNoLeader)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// submitOnce proposes locally when leading, else forwards to the leader.
func (n *Node) submitOnce(ctx context.Context, cmd *machine.Command, data []byte) (*machine.Result, uint64, error) {
	if n.IsLeader() {
		return n.applyLocal(ctx, cmd.Type, data)
	}
	addr, _ := n.raft.LeaderWithID()
	if addr == "" {
		return nil, 0, ErrNotLeader
	}
	n.metrics.forwarded.Inc()
	resp, sent, err := n.fwd.submit(ctx, string(addr), &forwardRequest{Op: opSubmit, Command: data})
	if err != nil {
		if sent {
			return nil, 0, fmt.Errorf("%w: %v", ErrIndeterminate, err)
		}
		return nil, 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	return decodeResponse(resp)
}

func decodeResponse(resp *forwardResponse) (*machine.Result, uint64, error) {
	switch resp.Code {
	case codeOK:
		if resp.Result != nil && resp.Result.Err != nil {
			return resp.Result, resp.Index, resp.Result.Err
		}
		return resp.Result, resp.Index, nil
	case codeNotLeader:
		return nil, 0, fmt.Errorf("%w: %s", ErrNotLeader, resp.Err)
	case codeIndeterminate:
		return nil, 0, fmt.Errorf("%w: %s", ErrIndeterminate, resp.Err)
	}
	return nil, 0, errors.New(resp.Err)
}

// applyLocalCommand proposes cmd on this node, which believes it leads.
func (n *Node) applyLocalCommand(ctx context.Context, cmd *machine.Command) error {
	data, err := cmd.Encode()
	if err != nil {
		return err
	}
	_, _, err = n.applyLocal(ctx, cmd.Type, data)
	return err
}

// applyLocal proposes an encoded command of type typ on this node, which
// believes it leads.
func (n *Node) applyLocal(ctx context.Context, typ string, data []byte) (*machine.Result, uint64, error) {
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	start := time.Now()
	fut := n.raft.Apply(data, timeout)
	var err error
	// Wait for the future, but not past ctx: a Raft that shuts down right
	// after taking the entry may never answer it.
	done := make(chan error, 1)
	go func() { done <- fut.Error() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("%w: %v", ErrIndeterminate, ctx.Err())
	case <-n.stop:
		return nil, 0, fmt.Errorf("%w: node shutting down", ErrIndeterminate)
	}
	if err != nil {
		switch {
		case errors.Is(err, hraft.ErrNotLeader), errors.Is(err, hraft.ErrEnqueueTimeout):
			// Never appended to the log.
			return nil, 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
		case errors.Is(err, hraft.ErrLeadershipLost), errors.Is(err, hraft.ErrRaftShutdown):
			// Appended, maybe committed by the next leader.
			return nil, 0, fmt.Errorf("%w: %v", ErrIndeterminate, err)
		}
		return nil, 0, fmt.Errorf("apply %s: %w", typ, err)
	}
	n.metrics.applyLatency.Observe(time.Since(start).Seconds())
	res, ok := fut.Response().(*machine.Result)
	if !ok || res == nil {
		return nil, 0, fmt.Errorf("apply %s: no result from state machine", typ)
	}
	if res.Err != nil {
		return res, fut.Index(), res.Err
	}
	return res, fut.Index(), nil
}

// announceSelf records this node's addresses in the cluster registry once
// a leader is known (and again after restarts, if they changed). A node
// without a client URL (an embedded or test node) has nothing to announce.
func (n *Node) announceSelf() {
	if n.cfg.URL == "" {
		return
	}
	for attempt := 0; ; attempt++ {
		select {
		case <-n.stop:
			return
		case <-time.After(min(time.Duration(attempt)*100*time.Millisecond, 2*time.Second)):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.WaitLeader(ctx); err != nil {
			cancel()
			continue
		}
		cmd, err := machine.NewCommand(machine.CmdNodeAnnounce, time.Now().UnixMilli(), "", "", &machine.NodeAnnounce{
			NodeID: n.cfg.NodeID, RaftAddr: n.RaftAddr(), URL: n.cfg.URL,
		})
		if err == nil {
			_, err = n.Submit(ctx, cmd)
		}
		cancel()
		if err == nil {
			return
		}
		n.cfg.Logger.Debug("announce node", "err", err)
	}
}

// Snapshot takes a Raft snapshot now.
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// Close stops Raft and closes the stores.
func (n *Node) Close() error {
	n.stopOnce.Do(func() { close(n.stop) })
	var errs []error
	if n.raft != nil {
		errs = append(errs, n.raft.Shutdown().Error())
	}
	if n.trans != nil {
		errs = append(errs, n.trans.Close())
	}
	if n.fwd != nil {
		n.fwd.closeAll()
	}
	// Accepted forwarding connections would otherwise keep serving (and
	// proposing to a stopped Raft) after the listener closed.
	n.connMu.Lock()
	for c := range n.conns {
		c.Close()
	}
	n.connMu.Unlock()
	n.wg.Wait()
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	errs = append(errs, n.machine.Close())
	return errors.Join(errs...)
}
