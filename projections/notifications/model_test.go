package notifications_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"chronicle/projections/notifications"
	"chronicle/raft/machine"
)

// modelEvent is an event as the model sees it: its order, thread and
// what it means to each user.
type modelEvent struct {
	id     string
	pos    int
	thread string // root event ID, "" for the main timeline
	// out[user] is 1 notify, 3 notify and highlight.
	out map[string]int
}

// modelUser is one user's read state in the room.
type modelUser struct {
	joined      bool
	join        int
	readAll     int
	threadReads map[string]int
}

// A seeded random mix of messages, mentions, thread replies, receipts of
// every kind, leaving and rejoining, and muting, checked after every step
// against a model that counts directly: a user's count in a thread is the
// events after their join, their unthreaded receipt and their receipt or
// own event in that thread.
func TestCountsMatchModel(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, seed) })
	}
}

func runModel(t *testing.T, seed uint64) {
	d := newDriver(t)
	const dave = "@dave:localhost"
	d.Register(dave)
	users := []string{alice, bob, carol, dave}
	room := d.room(alice, "public_chat", bob, carol, dave)
	rng := rand.New(rand.NewPCG(seed, 7))
	pos := 0
	state := map[string]*modelUser{}
	for _, u := range users {
		pos++
		state[u] = &modelUser{joined: true, join: pos, threadReads: map[string]int{}}
	}
	muted := map[string]bool{}
	var events []*modelEvent
	var roots []*modelEvent

	send := func(sender, body, thread string, mention string) {
		content := map[string]any{"msgtype": "m.text", "body": body}
		if mention != "" {
			content["m.mentions"] = map[string]any{"user_ids": []string{mention}}
		}
		if thread != "" {
			content["m.relates_to"] = map[string]any{"rel_type": "m.thread", "event_id": thread}
		}
		b, _ := json.Marshal(content)
		id := d.send(sender, room, string(b))
		pos++
		ev := &modelEvent{id: id, pos: pos, thread: thread, out: map[string]int{}}
		for _, u := range users {
			switch {
			case u == sender || !state[u].joined:
			case u == mention:
				ev.out[u] = 3 // is_user_mention outranks a room rule
			case !muted[u]:
				ev.out[u] = 1
			}
		}
		state[sender].threadReads[thread] = pos
		events = append(events, ev)
		if thread == "" {
			roots = append(roots, ev)
		}
	}
	check := func(step int) {
		t.Helper()
		for _, u := range users {
			want := map[string]notifications.Counts{}
			if s := state[u]; s.joined {
				for _, ev := range events {
					floor := max(s.join, s.readAll, s.threadReads[ev.thread])
					if o := ev.out[u]; o != 0 && ev.pos > floor {
						c := want[ev.thread]
						c.Notify++
						if o == 3 {
							c.Highlight++
						}
						want[ev.thread] = c
					}
				}
			}
			_, got := d.counts(u, room)
			for th, c := range want {
				if c == (notifications.Counts{}) {
					delete(want, th)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("step %d: %s counts %+v, model %+v", step, u, got, want)
			}
			for th, c := range want {
				if got[th] != c {
					t.Fatalf("step %d: %s counts %+v, model %+v", step, u, got, want)
				}
			}
		}
	}
	for step := range 300 {
		u := users[rng.IntN(len(users))]
		s := state[u]
		switch k := rng.IntN(10); {
		case !s.joined:
			if k < 3 {
				d.Do(machine.CmdMembership, u, &machine.Membership{RoomID: room, Target: u, Membership: "join"})
				pos++
				*s = modelUser{joined: true, join: pos, threadReads: map[string]int{}}
			}
		case k < 4 || len(events) == 0:
			thread := ""
			if len(roots) > 0 && rng.IntN(3) == 0 {
				thread = roots[rng.IntN(len(roots))].id
			}
			mention := ""
			if rng.IntN(4) == 0 {
				mention = users[rng.IntN(len(users))]
			}
			send(u, fmt.Sprint("m", step), thread, mention)
		case k < 7:
			ev := events[len(events)-1-rng.IntN(min(len(events), 8))]
			typ := []string{"m.read", "m.read.private"}[rng.IntN(2)]
			thread := ""
			switch rng.IntN(3) {
			case 1:
				thread = ev.thread
				if thread == "" {
					thread = "main"
				}
			}
			d.receipt(u, room, typ, ev.id, thread)
			if thread == "" {
				s.readAll = max(s.readAll, ev.pos)
			} else {
				s.threadReads[ev.thread] = max(s.threadReads[ev.thread], ev.pos)
			}
		case k < 8 && u != alice:
			d.Do(machine.CmdMembership, u, &machine.Membership{RoomID: room, Target: u, Membership: "leave"})
			pos++
			s.joined = false
		case k < 9:
			if muted[u] {
				d.Do(machine.CmdPushRuleDelete, u, &machine.PushRuleDelete{Kind: "room", RuleID: room})
			} else {
				d.Do(machine.CmdPushRulePut, u, &machine.PushRulePut{Kind: "room", RuleID: room, Actions: json.RawMessage(`[]`)})
			}
			muted[u] = !muted[u]
		}
		check(step)
	}
}
