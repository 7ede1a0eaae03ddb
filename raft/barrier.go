package raft

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	hraft "github.com/hashicorp/raft"
)

// Barrier waits until this node has applied everything the leader had
// committed when asked (a read index). Reads are served locally and may
// lag the leader slightly; a reader that must not miss a just-acknowledged
// write elsewhere (a token minted a moment ago on another node) calls this
// first. It costs one round trip to the leader.
func (n *Node) Barrier(ctx context.Context) error {
	var index uint64
	if n.IsLeader() {
		index = n.raft.CommitIndex()
	} else {
		addr, _ := n.raft.LeaderWithID()
		if addr == "" {
			return ErrNoLeader
		}
		resp, _, err := n.fwd.call(ctx, string(addr), &forwardRequest{Op: opReadIndex})
		if err != nil {
			return fmt.Errorf("read index from leader: %w", err)
		}
		if _, _, err := decodeResponse(resp); err != nil {
			return fmt.Errorf("read index from leader: %w", err)
		}
		index = resp.Index
	}
	// Raft counts an entry applied once it is queued for the state
	// machine; the state machine then runs it a moment later.
	if err := n.pollUntil(ctx, index, func() bool { return n.raft.AppliedIndex() >= index }); err != nil {
		return err
	}
	// Entries up to the latest snapshot are in the state already (restored,
	// or durable before the snapshot was reported done) and are never
	// handed to the FSM again after a restart.
	snapshot, _ := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64)
	last, err := n.lastFSMEntry(index, snapshot)
	if err != nil {
		return fmt.Errorf("read index %d: %w", index, err)
	}
	return n.pollUntil(ctx, index, func() bool { return n.fsm.done.Load() >= last })
}

func (n *Node) pollUntil(ctx context.Context, index uint64, done func() bool) error {
	for !done() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait to apply index %d: %w", index, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// lastFSMEntry is the last entry above snapshot and at or below index that
// the state machine runs (no-ops and barriers never reach it), or 0 when
// there is none: the state holds everything up to the snapshot.
func (n *Node) lastFSMEntry(index, snapshot uint64) (uint64, error) {
	first, err := n.store.FirstIndex()
	if err != nil {
		return 0, err
	}
	for i := index; i >= first && i > snapshot; i-- {
		var l hraft.Log
		if err := n.store.GetLog(i, &l); err != nil {
			if errors.Is(err, hraft.ErrLogNotFound) {
				return 0, nil
			}
			return 0, err
		}
		if l.Type == hraft.LogCommand || l.Type == hraft.LogConfiguration {
			return i, nil
		}
	}
	return 0, nil
}
