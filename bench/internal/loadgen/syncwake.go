package loadgen

// Scenario 3: sync wake-up latency, i.e. how long after a send completes a
// parked long-poll /sync in another user's session returns with the event.
// This is what a user perceives as "message delivery time" in a chat client.

import (
	"context"
	"fmt"
	"time"
)

// syncFilter keeps B's responses tiny so we time the wake-up, not serialisation.
const syncFilter = `{"room":{"timeline":{"limit":1}}}`

// parkDelay is how long we wait after issuing the long-poll before sending,
// so the request has surely reached the server and is parked (not racing).
const parkDelay = 20 * time.Millisecond

// SyncWakeResult is the sync wake-up scenario's output.
type SyncWakeResult struct {
	// Latency: A's send response received -> B's sync response received.
	Latency Summary `json:"latency"`
	// FromSendStart: A's send request issued -> B's sync response received;
	// immune to the send response racing the sync response.
	FromSendStart Summary `json:"from_send_start"`
	// Repolls counts syncs that returned without the event (spurious wake
	// such as presence, or the event not yet visible) and had to be re-issued.
	Repolls int `json:"repolls"`
	// EarlyWakes counts iterations where B saw the event before A got its
	// send response; those are recorded as 0ms in Latency.
	EarlyWakes int `json:"early_wakes"`
	// CrossNode: the sender and the receiver used different nodes of one
	// cluster (only with several bases), so the time includes replication.
	CrossNode    bool   `json:"cross_node,omitempty"`
	SenderBase   string `json:"sender_base,omitempty"`
	ReceiverBase string `json:"receiver_base,omitempty"`
}

type syncReply struct {
	resp *SyncResponse
	at   time.Time
	err  error
}

// RunSyncWake measures how long a parked long-poll /sync takes to return
// another user's message. With several bases the sender uses the first and
// the receiver the second, so the event has to replicate between nodes.
func (b *Bench) RunSyncWake(ctx context.Context) (*SyncWakeResult, error) {
	us, err := b.fresh(ctx, 2)
	if err != nil {
		return nil, err
	}
	a, bob := us[0], us[1]
	var res SyncWakeResult
	if b.MultiNode() {
		// Both registered on the first node; bob's token is then used on
		// the second, which must know it through replication.
		if err := bob.UseBase(ctx, b.base(1)); err != nil {
			return nil, err
		}
		res.CrossNode, res.SenderBase, res.ReceiverBase = true, a.Base, bob.Base
	}
	room, err := a.CreateRoom(ctx)
	if err != nil {
		return nil, fmt.Errorf("createRoom: %w", err)
	}
	if err := bob.Join(ctx, room); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	init, _, err := bob.Sync(ctx, "", -1, syncFilter)
	if err != nil {
		return nil, fmt.Errorf("initial sync: %w", err)
	}
	since := init.NextBatch

	poll := func(since string) <-chan syncReply {
		ch := make(chan syncReply, 1)
		go func() {
			r, _, err := bob.Sync(ctx, since, 30000, syncFilter)
			ch <- syncReply{r, time.Now(), err}
		}()
		return ch
	}

	lat := make([]time.Duration, 0, b.cfg.SyncIters)
	fromStart := make([]time.Duration, 0, b.cfg.SyncIters)
	for i := range b.cfg.SyncIters {
		ch := poll(since)
		time.Sleep(parkDelay)
		sendStart := time.Now()
		evID, err := a.Send(ctx, room, fmt.Sprintf("wake %d", i))
		sent := time.Now()
		if err != nil {
			<-ch // don't leak the poller's result into the next iteration
			return nil, fmt.Errorf("send: %w", err)
		}
		deadline := time.After(60 * time.Second)
		for {
			var r syncReply
			select {
			case r = <-ch:
			case <-deadline:
				return nil, fmt.Errorf("iteration %d: event %s never arrived in sync", i, evID)
			}
			if r.err != nil {
				return nil, fmt.Errorf("long-poll sync: %w", r.err)
			}
			since = r.resp.NextBatch
			if r.resp.HasEvent(room, evID) {
				d := r.at.Sub(sent)
				if d < 0 {
					res.EarlyWakes++
					d = 0
				}
				lat = append(lat, d)
				fromStart = append(fromStart, r.at.Sub(sendStart))
				break
			}
			// Not there yet: keep the clock running and poll again.
			res.Repolls++
			ch = poll(since)
		}
	}
	res.Latency = Summarize(lat)
	res.FromSendStart = Summarize(fromStart)
	return &res, nil
}
