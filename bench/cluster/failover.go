package main

// Failover: clients keep sending through the followers while the leader is
// SIGKILLed. The number is how long no send was acknowledged.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"chronicle/bench/internal/loadgen"
)

// FailoverResult is the failover scenario's output.
type FailoverResult struct {
	Clients int    `json:"clients"`
	Killed  string `json:"killed"`
	OldTerm uint64 `json:"old_term"`
	// UnavailableMs is the failover time: from the last send acknowledged
	// before the service went away to the first acknowledged after it came
	// back, i.e. the longest gap between consecutive acknowledgements (over
	// all clients) that ends after the kill.
	UnavailableMs float64 `json:"unavailable_ms"`
	// GapStartMs is when that gap began, relative to the kill (negative:
	// before it; sends in flight at the kill can be acknowledged just after).
	GapStartMs float64 `json:"gap_start_ms"`
	// KillToFirstAckMs is from the SIGKILL to the end of the gap.
	KillToFirstAckMs float64 `json:"kill_to_first_ack_ms"`
	// AcksBefore/AcksAfter count acknowledged sends before the kill and after
	// the gap; Errors counts failed attempts (each retried with its txnId).
	AcksBefore int    `json:"acks_before"`
	AcksAfter  int    `json:"acks_after"`
	Errors     int64  `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
	// SendLatency is per acknowledged send, retries included.
	SendLatency loadgen.Summary `json:"send_latency"`
	NewLeader   string          `json:"new_leader"`
	NewTerm     uint64          `json:"new_term"`
	// RestartReadyMs is from restarting the killed node to its /ready
	// answering 200; RejoinMs until the cluster lists it as a voter again
	// and every node is ready.
	RestartReadyMs float64 `json:"restart_ready_ms"`
	RejoinMs       float64 `json:"rejoin_ms"`
}

// ack is one acknowledged send.
type ack struct {
	first   time.Time // first attempt issued
	attempt time.Time // the successful attempt issued
	at      time.Time // response received
}

const (
	failoverSteady = 2 * time.Second // sending before the kill
	failoverAfter  = time.Second     // sending after service resumed
	failoverLimit  = 60 * time.Second
	attemptTimeout = 15 * time.Second // longer than a node's own 10s leader wait
)

func runFailover(ctx context.Context, s *supervisor, nodes []*node, clients int) (*FailoverResult, error) {
	st, err := s.waitCluster(ctx, nodes, len(nodes), 30*time.Second)
	if err != nil {
		return nil, err
	}
	leader, err := byID(nodes, st.Leader.ID)
	if err != nil {
		return nil, err
	}
	var followers []string
	var survivors []*node
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, n.URL)
			survivors = append(survivors, n)
		}
	}
	res := &FailoverResult{Clients: clients, Killed: leader.ID, OldTerm: st.Term}

	// Setup: the clients register, join and warm up through the followers.
	users, room, err := setupUsers(ctx, s, followers, clients, 1)
	if err != nil {
		return nil, err
	}

	var (
		mu       sync.Mutex
		acks     []ack
		errs     atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	for i, c := range users {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				txn := c.NextTxn()
				first := time.Now()
				for {
					attempt := time.Now()
					actx, cancel := context.WithTimeout(ctx, attemptTimeout)
					_, err := c.SendTxn(actx, room[0], txn, fmt.Sprintf("failover %d/%d", i, n))
					cancel()
					if err == nil {
						mu.Lock()
						acks = append(acks, ack{first: first, attempt: attempt, at: time.Now()})
						mu.Unlock()
						break
					}
					if ctx.Err() != nil {
						return
					}
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					// Retry the same transaction: it must not be sent twice.
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	if err := sleep(ctx, failoverSteady); err != nil {
		return nil, err
	}
	killAt := time.Now()
	leader.kill9()
	fmt.Fprintf(stderr, "  killed leader %s (term %d)\n", leader.ID, st.Term)

	// Wait until a send issued after the kill is acknowledged: only a new
	// leader can have committed it.
	deadline := time.Now().Add(failoverLimit)
	for {
		mu.Lock()
		resumed := slices.ContainsFunc(acks, func(a ack) bool { return a.attempt.After(killAt) })
		mu.Unlock()
		if resumed {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("no send acknowledged within %s of killing %s (%d errors, first: %v)",
				failoverLimit, leader.ID, errs.Load(), firstErr.Load())
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return nil, err
		}
	}
	if err := sleep(ctx, failoverAfter); err != nil {
		return nil, err
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	all := slices.Clone(acks)
	mu.Unlock()
	slices.SortFunc(all, func(a, b ack) int { return a.at.Compare(b.at) })
	var gapStart, gapEnd time.Time
	for i := 1; i < len(all); i++ {
		if all[i].at.After(killAt) && all[i].at.Sub(all[i-1].at) > gapEnd.Sub(gapStart) {
			gapStart, gapEnd = all[i-1].at, all[i].at
		}
	}
	if gapEnd.IsZero() {
		return res, fmt.Errorf("no acknowledged send before and after the kill")
	}
	lat := make([]time.Duration, 0, len(all))
	for _, a := range all {
		lat = append(lat, a.at.Sub(a.first))
		if a.at.Before(killAt) {
			res.AcksBefore++
		} else if !a.at.Before(gapEnd) {
			res.AcksAfter++
		}
	}
	res.UnavailableMs = loadgen.Ms(gapEnd.Sub(gapStart))
	res.GapStartMs = loadgen.Ms(gapStart.Sub(killAt))
	res.KillToFirstAckMs = loadgen.Ms(gapEnd.Sub(killAt))
	res.SendLatency = loadgen.Summarize(lat)
	res.Errors = errs.Load()
	if v, ok := firstErr.Load().(string); ok {
		res.FirstError = v
	}

	// The survivors must agree on a new leader, one of them, in a later
	// term; the killed node is still a voting member.
	newSt, err := s.waitCluster(ctx, survivors, len(nodes), 30*time.Second)
	if err != nil {
		return res, fmt.Errorf("after the kill: %w", err)
	}
	res.NewLeader, res.NewTerm = newSt.Leader.ID, newSt.Term
	if newSt.Term <= st.Term {
		return res, fmt.Errorf("survivors report leader %s in term %d, not after term %d", newSt.Leader.ID, newSt.Term, st.Term)
	}

	restart := time.Now()
	if err := s.start(leader); err != nil {
		return res, err
	}
	if err := s.waitReady(ctx, leader, 60*time.Second); err != nil {
		return res, fmt.Errorf("restarted %s: %w", leader.ID, err)
	}
	res.RestartReadyMs = loadgen.Ms(time.Since(restart))
	if _, err := s.waitCluster(ctx, nodes, len(nodes), 60*time.Second); err != nil {
		return res, fmt.Errorf("restarted %s: %w", leader.ID, err)
	}
	res.RejoinMs = loadgen.Ms(time.Since(restart))
	return res, nil
}
