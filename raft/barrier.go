package raft

import (
	"context"
	"fmt"
	"time"
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
	for n.raft.AppliedIndex() < index {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait to apply index %d: %w", index, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}
