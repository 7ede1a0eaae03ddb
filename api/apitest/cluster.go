package apitest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"chronicle/raft"
)

// Cluster is a set of in-process nodes on 127.0.0.1 ports, each with its
// own data directory, Raft listener and HTTP API.
type Cluster struct {
	t     testing.TB
	Nodes []*Server
}

// StartCluster starts n nodes: the first bootstraps, the others join it
// through the operator API, as `chronicle serve --join` does.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	first := &Server{t: t, ID: "n1", Dir: t.TempDir(), RaftAddr: "127.0.0.1:0"}
	first.start()
	t.Cleanup(c.StopAll)
	c.Nodes = append(c.Nodes, first)
	if err := waitLeader(first.Node, 10*time.Second); err != nil {
		t.Fatalf("first node: %v", err)
	}
	for i := 2; i <= n; i++ {
		c.AddNode(fmt.Sprintf("n%d", i))
	}
	c.WaitConverged(10 * time.Second)
	c.waitAnnounced(10 * time.Second)
	return c
}

// waitAnnounced waits until every running node's status names every
// member's URL: nodes announce their URLs through the log after they
// start, so a cluster is not fully described before that.
func (c *Cluster) waitAnnounced(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		missing := ""
		for _, s := range c.Running() {
			st, err := s.Node.Status()
			if err != nil {
				missing = err.Error()
				break
			}
			for _, n := range st.Nodes {
				if n.URL == "" {
					missing = s.ID + " lacks the URL of " + n.ID
				}
			}
			if st.Leader.URL == "" {
				missing = s.ID + " lacks the leader's URL"
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster not fully announced within %s: %s", d, missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// AddNode starts a new node that joins through the current leader.
func (c *Cluster) AddNode(id string) *Server {
	c.t.Helper()
	s := &Server{t: c.t, ID: id, Dir: c.t.TempDir(), RaftAddr: "127.0.0.1:0", join: true}
	s.start()
	c.Nodes = append(c.Nodes, s)
	c.Join(s)
	return s
}

// Join asks the cluster (through any running node) to add s.
func (c *Cluster) Join(s *Server) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	via := c.Leader()
	if via == nil {
		c.t.Fatalf("join %s: no leader", s.ID)
	}
	if err := via.Node.Join(ctx, &raft.JoinRequest{NodeID: s.ID, RaftAddr: s.RaftAddr, URL: s.URL, Voter: true}); err != nil {
		c.t.Fatalf("join %s: %v", s.ID, err)
	}
}

// Node returns the node with the given ID.
func (c *Cluster) Node(id string) *Server {
	for _, s := range c.Nodes {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// Leader returns the running node that currently leads, or nil.
func (c *Cluster) Leader() *Server {
	for _, s := range c.Nodes {
		if s.Running() && s.Node.IsLeader() {
			return s
		}
	}
	return nil
}

// Followers returns the running nodes that do not lead.
func (c *Cluster) Followers() []*Server {
	var out []*Server
	for _, s := range c.Nodes {
		if s.Running() && !s.Node.IsLeader() {
			out = append(out, s)
		}
	}
	return out
}

// Running returns the running nodes.
func (c *Cluster) Running() []*Server {
	var out []*Server
	for _, s := range c.Nodes {
		if s.Running() {
			out = append(out, s)
		}
	}
	return out
}

// WaitForLeader waits until some running node leads, other than not (if
// given), and returns it.
func (c *Cluster) WaitForLeader(d time.Duration, not *Server) *Server {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if l := c.Leader(); l != nil && l != not {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no new leader within %s", d)
	return nil
}

// WaitConverged waits until every running node has applied the same log
// head as the leader.
func (c *Cluster) WaitConverged(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if l := c.Leader(); l != nil {
			want := l.Node.Machine().Log().Head()
			same := true
			for _, s := range c.Running() {
				if s.Node.Machine().Log().Head() != want {
					same = false
				}
			}
			if same {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	var heads []string
	for _, s := range c.Running() {
		heads = append(heads, fmt.Sprintf("%s=%d", s.ID, s.Node.Machine().Log().Head().Seq))
	}
	c.t.Fatalf("nodes did not converge within %s: %v", d, heads)
}

// Wipe stops a node and deletes its data directory.
func (c *Cluster) Wipe(s *Server) {
	c.t.Helper()
	s.Stop()
	if err := os.RemoveAll(s.Dir); err != nil {
		c.t.Fatal(err)
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	s.join = true
}

// StopAll stops every node.
func (c *Cluster) StopAll() {
	for _, s := range c.Nodes {
		s.Stop()
	}
}

// WaitApplied waits until s's log head reaches seq.
func WaitApplied(ctx context.Context, s *Server, seq uint64) error {
	for s.Node.Machine().Log().Head().Seq < seq {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
