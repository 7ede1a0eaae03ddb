package raft

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	hraft "github.com/hashicorp/raft"

	"chronicle/projections/cluster"
	"chronicle/raft/machine"
)

// JoinRequest asks the cluster to add a node.
type JoinRequest struct {
	NodeID   string `msgpack:"i" json:"id"`
	RaftAddr string `msgpack:"r" json:"raft_addr"`
	URL      string `msgpack:"u" json:"url"`
	// Voter false adds a non-voting member (a read replica).
	Voter bool `msgpack:"v" json:"voter"`
}

// ErrBadRequest wraps membership requests that can never succeed.
var ErrBadRequest = errors.New("raft: bad membership request")

// Join adds a node to the cluster, through the leader wherever it is.
func (n *Node) Join(ctx context.Context, req *JoinRequest) error {
	if req.NodeID == "" || req.RaftAddr == "" {
		return fmt.Errorf("%w: id and raft_addr are required", ErrBadRequest)
	}
	return n.onLeader(ctx, &forwardRequest{Op: opJoin, Join: req}, func() error { return n.joinLocal(ctx, req) })
}

// Remove takes a node out of the cluster.
func (n *Node) Remove(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("%w: node id is required", ErrBadRequest)
	}
	return n.onLeader(ctx, &forwardRequest{Op: opRemove, NodeID: id}, func() error { return n.removeLocal(ctx, id) })
}

// TransferLeadership hands leadership to the named node, or to any
// up-to-date voter when id is empty.
func (n *Node) TransferLeadership(ctx context.Context, id string) error {
	return n.onLeader(ctx, &forwardRequest{Op: opTransfer, NodeID: id}, func() error { return n.transferLocal(id) })
}

// onLeader runs local on the leader, or sends req to it. Membership
// changes are idempotent, so retrying after a leader change is safe.
func (n *Node) onLeader(ctx context.Context, req *forwardRequest, local func() error) error {
	for {
		var err error
		if n.IsLeader() {
			err = local()
		} else if addr, _ := n.raft.LeaderWithID(); addr == "" {
			err = ErrNotLeader
		} else {
			var resp *forwardResponse
			resp, _, err = n.fwd.call(ctx, string(addr), req)
			if err == nil {
				_, _, err = decodeResponse(resp)
			} else {
				err = fmt.Errorf("%w: %v", ErrNotLeader, err)
			}
		}
		if !errors.Is(err, ErrNotLeader) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", req.Op, ErrNoLeader)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func raftErr(err error) error {
	if errors.Is(err, hraft.ErrNotLeader) || errors.Is(err, hraft.ErrLeadershipLost) {
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	return err
}

func (n *Node) joinLocal(ctx context.Context, req *JoinRequest) error {
	cfg := n.raft.GetConfiguration()
	if err := cfg.Error(); err != nil {
		return raftErr(err)
	}
	suffrage := hraft.Voter
	if !req.Voter {
		suffrage = hraft.Nonvoter
	}
	for _, s := range cfg.Configuration().Servers {
		if s.ID == hraft.ServerID(req.NodeID) && s.Address == hraft.ServerAddress(req.RaftAddr) && s.Suffrage == suffrage {
			return n.announce(ctx, req) // already a member: a restarted node rejoining
		}
		if s.ID != hraft.ServerID(req.NodeID) && s.Address == hraft.ServerAddress(req.RaftAddr) {
			return fmt.Errorf("%w: raft address %s belongs to node %s", ErrBadRequest, req.RaftAddr, s.ID)
		}
	}
	var fut hraft.IndexFuture
	if req.Voter {
		fut = n.raft.AddVoter(hraft.ServerID(req.NodeID), hraft.ServerAddress(req.RaftAddr), 0, 10*time.Second)
	} else {
		fut = n.raft.AddNonvoter(hraft.ServerID(req.NodeID), hraft.ServerAddress(req.RaftAddr), 0, 10*time.Second)
	}
	if err := fut.Error(); err != nil {
		return raftErr(fmt.Errorf("add %s: %w", req.NodeID, err))
	}
	n.cfg.Logger.Info("node joined", "id", req.NodeID, "raft_addr", req.RaftAddr, "voter", req.Voter)
	return n.announce(ctx, req)
}

// announce records the node's URL in the registry (the node also does
// this itself once it runs; whichever lands first wins, both are equal).
func (n *Node) announce(ctx context.Context, req *JoinRequest) error {
	if req.URL == "" {
		return nil
	}
	cmd, err := machine.NewCommand(machine.CmdNodeAnnounce, time.Now().UnixMilli(), "", "", &machine.NodeAnnounce{NodeID: req.NodeID, RaftAddr: req.RaftAddr, URL: req.URL})
	if err != nil {
		return err
	}
	return n.applyLocalCommand(ctx, cmd)
}

func (n *Node) removeLocal(ctx context.Context, id string) error {
	if err := n.raft.RemoveServer(hraft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
		return raftErr(fmt.Errorf("remove %s: %w", id, err))
	}
	n.cfg.Logger.Info("node removed", "id", id)
	if id == n.cfg.NodeID {
		return nil // we stepped down; the registry entry goes with the next leader's cleanup
	}
	cmd, err := machine.NewCommand(machine.CmdNodeRemove, time.Now().UnixMilli(), "", "", &machine.NodeRemove{NodeID: id})
	if err != nil {
		return err
	}
	return n.applyLocalCommand(ctx, cmd)
}

func (n *Node) transferLocal(id string) error {
	if id == "" {
		return raftErr(n.raft.LeadershipTransfer().Error())
	}
	cfg := n.raft.GetConfiguration()
	if err := cfg.Error(); err != nil {
		return raftErr(err)
	}
	for _, s := range cfg.Configuration().Servers {
		if s.ID == hraft.ServerID(id) {
			return raftErr(n.raft.LeadershipTransferToServer(s.ID, s.Address).Error())
		}
	}
	return fmt.Errorf("%w: no node %s in the cluster", ErrBadRequest, id)
}

// NodeStatus is one member as this node sees it.
type NodeStatus struct {
	ID            string `json:"id"`
	RaftAddr      string `json:"raft_addr"`
	URL           string `json:"url"`
	Suffrage      string `json:"suffrage"`
	LastContactMs *int64 `json:"last_contact_ms"`
}

// Status is this node's view of the cluster.
type Status struct {
	NodeID string `json:"node_id"`
	Role   string `json:"role"`
	Leader struct {
		ID  string `json:"id"`
		URL string `json:"url"`
	} `json:"leader"`
	Term         uint64       `json:"term"`
	CommitIndex  uint64       `json:"commit_index"`
	AppliedIndex uint64       `json:"applied_index"`
	LogPosition  uint64       `json:"log_position"`
	Nodes        []NodeStatus `json:"nodes"`
}

// Status reports role, indexes and members.
func (n *Node) Status() (*Status, error) {
	st := &Status{NodeID: n.cfg.NodeID, Role: roleName(n.raft.State())}
	stats := n.raft.Stats()
	st.Term, _ = strconv.ParseUint(stats["term"], 10, 64)
	st.CommitIndex = n.raft.CommitIndex()
	st.AppliedIndex = n.raft.AppliedIndex()
	st.LogPosition = n.machine.Log().Head().Seq
	_, leaderID := n.raft.LeaderWithID()
	st.Leader.ID = string(leaderID)
	cfg := n.raft.GetConfiguration()
	if err := cfg.Error(); err != nil {
		return nil, err
	}
	registry := map[string]cluster.Node{}
	if err := n.machine.View(func(r pebble.Reader) error {
		nodes, err := cluster.Nodes(r)
		for _, node := range nodes {
			registry[node.ID] = node
		}
		return err
	}); err != nil {
		return nil, err
	}
	st.Leader.URL = registry[st.Leader.ID].URL
	contacts := n.lastContacts()
	for _, s := range cfg.Configuration().Servers {
		ns := NodeStatus{ID: string(s.ID), RaftAddr: string(s.Address), URL: registry[string(s.ID)].URL, Suffrage: strings.ToLower(s.Suffrage.String())}
		if c, ok := contacts[string(s.ID)]; ok {
			ns.LastContactMs = &c
		}
		st.Nodes = append(st.Nodes, ns)
	}
	return st, nil
}

// lastContacts returns, per node ID, milliseconds since this node last
// heard from it: for the leader, from its followers' replication; for a
// follower, only the leader's contact is known.
func (n *Node) lastContacts() map[string]int64 {
	out := map[string]int64{}
	if n.IsLeader() {
		// Heartbeats to healthy followers succeed many times a second: 0.
		for _, s := range n.raft.GetConfiguration().Configuration().Servers {
			out[string(s.ID)] = 0
		}
		n.metrics.mu.Lock()
		for id, t := range n.metrics.peerContact {
			out[id] = time.Since(t).Milliseconds()
		}
		n.metrics.mu.Unlock()
		return out
	}
	out[n.cfg.NodeID] = 0
	if _, leaderID := n.raft.LeaderWithID(); leaderID != "" {
		if lc := n.raft.LastContact(); !lc.IsZero() {
			out[string(leaderID)] = time.Since(lc).Milliseconds()
		}
	}
	return out
}

// Ready reports whether this node knows a leader and has applied what the
// leader had committed when last heard from.
func (n *Node) Ready() (bool, string) {
	if addr, _ := n.raft.LeaderWithID(); addr == "" {
		return false, "no known leader"
	}
	if applied, commit := n.raft.AppliedIndex(), n.raft.CommitIndex(); applied < commit {
		return false, fmt.Sprintf("applied index %d behind commit index %d", applied, commit)
	}
	return true, "ok"
}

func roleName(s hraft.RaftState) string {
	switch s {
	case hraft.Leader:
		return "leader"
	case hraft.Candidate:
		return "candidate"
	case hraft.Follower:
		return "follower"
	}
	return "shutdown"
}
