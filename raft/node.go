package raft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"

	"chronicle/raft/machine"
	"chronicle/raft/store"
)

type machineSnapshot = *pebble.Snapshot

// Config configures a node.
type Config struct {
	NodeID     string
	DataDir    string
	RaftAddr   string // host:port to listen on for Raft; port 0 picks one
	ServerName string
	Logger     *slog.Logger
	// Fast shortens Raft timeouts for in-process tests.
	Fast bool
}

// Node is one Chronicle server's Raft member and state machine.
type Node struct {
	cfg       Config
	raft      *hraft.Raft
	machine   *machine.Machine
	store     *store.Store
	transport *hraft.NetworkTransport
}

// ErrNotLeader is returned by Submit when this node cannot reach a leader.
var ErrNotLeader = errors.New("raft: not the leader")

// Open starts a node; with no existing Raft state it bootstraps a
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
	n := &Node{cfg: cfg, machine: m}
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
	addr, err := net.ResolveTCPAddr("tcp", n.cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("raft address %q: %w", n.cfg.RaftAddr, err)
	}
	// With port 0 the bound port is only known after listening; let the
	// transport advertise the listener's real address.
	var advertise net.Addr = addr
	if addr.Port == 0 {
		advertise = nil
	}
	n.transport, err = hraft.NewTCPTransportWithLogger(n.cfg.RaftAddr, advertise, 3, 10*time.Second, hlog)
	if err != nil {
		return fmt.Errorf("raft transport: %w", err)
	}
	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(n.cfg.NodeID)
	rc.Logger = hlog
	// The state store is durable up to the last snapshot (Persist flushes
	// it), so a restart replays only the log tail instead of reloading the
	// whole history.
	rc.NoSnapshotRestoreOnStart = true
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 512
	if n.cfg.Fast {
		rc.HeartbeatTimeout = 100 * time.Millisecond
		rc.ElectionTimeout = 100 * time.Millisecond
		rc.LeaderLeaseTimeout = 50 * time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
	}
	f := &fsm{m: n.machine, logger: n.cfg.Logger}
	has, err := hraft.HasExistingState(n.store, n.store, snaps)
	if err != nil {
		return fmt.Errorf("inspect raft state: %w", err)
	}
	if n.raft, err = hraft.NewRaft(rc, f, n.store, n.store, snaps, n.transport); err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	if !has {
		cfg := hraft.Configuration{Servers: []hraft.Server{{ID: rc.LocalID, Address: n.transport.LocalAddr()}}}
		if err := n.raft.BootstrapCluster(cfg).Error(); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	return nil
}

// Machine returns the state machine (for reads).
func (n *Node) Machine() *machine.Machine { return n.machine }

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

// Submit proposes cmd and waits for its decided result. A command the
// domain refused returns the Result and its *machine.Rejection as the error.
func (n *Node) Submit(ctx context.Context, cmd *machine.Command) (*machine.Result, error) {
	data, err := cmd.Encode()
	if err != nil {
		return nil, err
	}
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	fut := n.raft.Apply(data, timeout)
	done := make(chan error, 1)
	go func() { done <- fut.Error() }()
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("submit %s: %w", cmd.Type, ctx.Err())
	case err := <-done:
		if errors.Is(err, hraft.ErrNotLeader) || errors.Is(err, hraft.ErrLeadershipLost) {
			return nil, fmt.Errorf("submit %s: %w", cmd.Type, ErrNotLeader)
		}
		if err != nil {
			return nil, fmt.Errorf("submit %s: %w", cmd.Type, err)
		}
	}
	res, ok := fut.Response().(*machine.Result)
	if !ok || res == nil {
		return nil, fmt.Errorf("submit %s: no result from state machine", cmd.Type)
	}
	if res.Err != nil {
		return res, res.Err
	}
	return res, nil
}

// Snapshot takes a Raft snapshot now.
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// Close stops Raft and closes the stores.
func (n *Node) Close() error {
	var errs []error
	if n.raft != nil {
		errs = append(errs, n.raft.Shutdown().Error())
	}
	if n.transport != nil {
		errs = append(errs, n.transport.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	errs = append(errs, n.machine.Close())
	return errors.Join(errs...)
}
