package raft

import (
	"context"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/typing"
	"chronicle/raft/machine"
)

// expireTyping runs on every node but acts only while leading: when a
// typing notification's timeout passes, it submits one command that stops
// every due notification, so the expiry is a log record like any other
// change and syncs on every node see it at the same position. It wakes on
// each new log head (a new notification may be due sooner) and at the next
// expiry; it never polls.
func (n *Node) expireTyping() {
	for {
		_, changed := n.machine.Log().Changed()
		var next int64
		if n.IsLeader() {
			now := time.Now().UnixMilli()
			var due []typing.Expired
			_ = n.machine.View(func(r pebble.Reader) error {
				var err error
				due, next, err = typing.ExpiredBy(r, now)
				return err
			})
			if len(due) > 0 {
				cmd, err := machine.NewCommand(machine.CmdTypingExpire, now, "", "", &machine.TypingExpire{})
				if err == nil {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, err = n.Submit(ctx, cmd)
					cancel()
				}
				if err == nil {
					continue
				}
				n.cfg.Logger.Debug("expire typing", "err", err)
				next = now + 100 // retry shortly, not in a tight loop
			}
		}
		wait := time.Second // re-check leadership now and then
		if next > 0 {
			wait = min(wait, time.Until(time.UnixMilli(next))+time.Millisecond)
		}
		t := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-n.stop:
			t.Stop()
			return
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}
