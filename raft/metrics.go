package raft

import (
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the node's Prometheus metrics; the API adds its own to the
// same registry.
type Metrics struct {
	Registry     *prometheus.Registry
	forwarded    prometheus.Counter
	applyLatency prometheus.Histogram
	applied      prometheus.Counter

	mu sync.Mutex
	// peerContact holds, on the leader, the last successful contact of
	// each follower whose heartbeats are failing; healthy peers are absent.
	peerContact map[string]time.Time
}

func newMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chronicle_forwarded_writes_total", Help: "Writes this node forwarded to the leader.",
		}),
		applyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chronicle_raft_apply_seconds", Help: "Time from proposing a command on the leader to its result.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chronicle_fsm_commands_applied_total", Help: "Commands the state machine applied.",
		}),
		peerContact: map[string]time.Time{},
	}
	m.Registry.MustRegister(m.forwarded, m.applyLatency, m.applied,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Metrics returns the node's metrics.
func (n *Node) Metrics() *Metrics { return n.metrics }

// registerGauges exposes the node's Raft and log state.
func (n *Node) registerGauges() {
	gauge := func(name, help string, f func() float64) {
		n.metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("chronicle_raft_leader", "1 if this node is the Raft leader.", func() float64 {
		if n.IsLeader() {
			return 1
		}
		return 0
	})
	gauge("chronicle_raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.", func() float64 {
		return float64(n.raft.State())
	})
	gauge("chronicle_raft_term", "Current Raft term.", func() float64 {
		st, err := n.Status()
		if err != nil {
			return 0
		}
		return float64(st.Term)
	})
	gauge("chronicle_raft_commit_index", "Raft commit index.", func() float64 { return float64(n.raft.CommitIndex()) })
	gauge("chronicle_raft_applied_index", "Raft applied index.", func() float64 { return float64(n.raft.AppliedIndex()) })
	gauge("chronicle_log_head", "Position of the last record in the log.", func() float64 {
		return float64(n.machine.Log().Head().Seq)
	})
}

// observe tracks follower heartbeat failures for last_contact_ms.
func (n *Node) observe() {
	ch := make(chan hraft.Observation, 64)
	obs := hraft.NewObserver(ch, false, func(o *hraft.Observation) bool {
		switch o.Data.(type) {
		case hraft.FailedHeartbeatObservation, hraft.ResumedHeartbeatObservation:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	for {
		select {
		case <-n.stop:
			return
		case o := <-ch:
			n.metrics.mu.Lock()
			switch d := o.Data.(type) {
			case hraft.FailedHeartbeatObservation:
				n.metrics.peerContact[string(d.PeerID)] = d.LastContact
			case hraft.ResumedHeartbeatObservation:
				delete(n.metrics.peerContact, string(d.PeerID))
			}
			n.metrics.mu.Unlock()
		}
	}
}
