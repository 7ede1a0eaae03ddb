package notifications_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/notifications"
	"chronicle/projections/rooms"
	"chronicle/raft/machine"
	"chronicle/raft/machine/machinetest"
)

const (
	alice = "@alice:localhost"
	bob   = "@bob:localhost"
	carol = "@carol:localhost"
)

// driver applies commands to a real machine (machinetest), a second
// apart.
type driver struct{ *machinetest.Driver }

func newDriver(t *testing.T) *driver {
	t.Helper()
	d := &driver{machinetest.New(t)}
	d.Step = 1000
	d.Register(alice, bob, carol)
	return d
}

func (d *driver) room(creator string, preset string, members ...string) string {
	d.T.Helper()
	roomID := d.Do(machine.CmdCreateRoom, creator, &machine.CreateRoom{Preset: preset, Invite: members}).RoomID
	for _, u := range members {
		d.Do(machine.CmdMembership, u, &machine.Membership{RoomID: roomID, Target: u, Membership: "join", DisplayName: displayNames[u]})
	}
	return roomID
}

var displayNames = map[string]string{bob: "Bobby Tables", carol: "Carol"}

func (d *driver) send(actor, roomID, content string) string {
	d.T.Helper()
	return d.Do(machine.CmdSendEvent, actor, &machine.SendEvent{RoomID: roomID, Type: "m.room.message", Content: json.RawMessage(content)}).EventID
}

func (d *driver) say(actor, roomID, body string) string {
	d.T.Helper()
	return d.send(actor, roomID, fmt.Sprintf(`{"msgtype":"m.text","body":%q}`, body))
}

func (d *driver) inThread(actor, roomID, root, body string) string {
	d.T.Helper()
	return d.send(actor, roomID, fmt.Sprintf(`{"msgtype":"m.text","body":%q,"m.relates_to":{"rel_type":"m.thread","event_id":%q}}`, body, root))
}

func (d *driver) receipt(user, roomID, typ, eventID, thread string) {
	d.T.Helper()
	d.Do(machine.CmdReceipt, user, &machine.Receipt{RoomID: roomID, Type: typ, EventID: eventID, ThreadID: thread})
}

// counts returns user's counts in room: the total and by thread.
func (d *driver) counts(user, roomID string) (notifications.Counts, map[string]notifications.Counts) {
	d.T.Helper()
	var tcs []notifications.ThreadCounts
	if err := d.M.View(func(r pebble.Reader) error {
		var err error
		tcs, err = notifications.RoomCounts(r, user, roomID)
		return err
	}); err != nil {
		d.T.Fatal(err)
	}
	by := map[string]notifications.Counts{}
	for _, tc := range tcs {
		by[tc.Thread] = tc.Counts
	}
	return notifications.Total(tcs), by
}

func (d *driver) want(user, roomID string, notify, highlight uint64) {
	d.T.Helper()
	got, _ := d.counts(user, roomID)
	if want := (notifications.Counts{Notify: notify, Highlight: highlight}); got != want {
		d.T.Fatalf("%s in %s: counts %+v, want %+v", user, roomID, got, want)
	}
}

func TestCountsAndReceipts(t *testing.T) {
	d := newDriver(t)
	room := d.room(alice, "public_chat", bob, carol)

	d.say(alice, room, "hello")
	d.want(bob, room, 1, 0)
	d.want(carol, room, 1, 0)
	d.want(alice, room, 0, 0) // the sender is never notified

	second := d.say(alice, room, "hey Bobby Tables, look") // display name
	d.want(bob, room, 2, 1)
	d.want(carol, room, 2, 0)
	d.say(alice, room, "ping @bob:localhost") // user name (legacy content rule)
	d.want(bob, room, 3, 2)
	d.send(alice, room, `{"msgtype":"m.text","body":"x","m.mentions":{"user_ids":["@bob:localhost"]}}`)
	d.want(bob, room, 4, 3)
	d.want(carol, room, 4, 0)
	// m.mentions turns the legacy rules off: the display name alone does
	// not highlight, it is only a message.
	d.send(alice, room, `{"msgtype":"m.text","body":"Bobby Tables","m.mentions":{}}`)
	d.want(bob, room, 5, 3)
	// Notices and reactions do not notify.
	d.send(alice, room, `{"msgtype":"m.notice","body":"bot says Bobby Tables"}`)
	d.Do(machine.CmdSendEvent, alice, &machine.SendEvent{RoomID: room, Type: "m.reaction",
		Content: json.RawMessage(`{"m.relates_to":{"rel_type":"m.annotation","event_id":"` + second + `","key":"👍"}}`)})
	d.want(bob, room, 5, 3)

	// A receipt reads up to its event; a receipt behind it changes nothing;
	// m.read.private ahead of m.read reads further.
	d.receipt(bob, room, "m.read", second, "")
	d.want(bob, room, 3, 2)
	first := d.say(carol, room, "carol speaks") // notifies bob, not carol
	d.want(bob, room, 4, 2)
	d.want(carol, room, 0, 0) // her own message read carol's notifications up to it
	d.receipt(carol, room, "m.read", second, "")
	d.want(carol, room, 0, 0) // a receipt behind that changes nothing
	d.receipt(bob, room, "m.read.private", first, "")
	d.want(bob, room, 0, 0)
	d.receipt(bob, room, "m.read", second, "")
	d.want(bob, room, 0, 0)

	// @room highlights only from a sender with enough power.
	d.say(alice, room, "@room lunch")
	d.want(bob, room, 1, 1)
	d.want(carol, room, 1, 1)
	d.say(bob, room, "@room me too") // bob is at power 0
	d.want(carol, room, 2, 1)
	d.want(alice, room, 1, 0)

	// Leaving drops the counts.
	d.Do(machine.CmdMembership, carol, &machine.Membership{RoomID: room, Target: carol, Membership: "leave"})
	d.want(carol, room, 0, 0)
}

func TestOneToOneAndRules(t *testing.T) {
	d := newDriver(t)
	dm := d.room(alice, "trusted_private_chat", bob)
	group := d.room(alice, "public_chat", bob, carol)

	d.say(alice, dm, "psst")
	d.want(bob, dm, 1, 0)

	// Disabling .m.rule.message silences group messages but not the 1:1
	// rule, and not mentions.
	d.Do(machine.CmdPushRuleEnabled, bob, &machine.PushRuleEnabled{Kind: "underride", RuleID: ".m.rule.message", Enabled: false})
	d.say(alice, group, "anyone?")
	d.want(bob, group, 0, 0)
	d.want(carol, group, 1, 0)
	d.say(alice, dm, "still there?")
	d.want(bob, dm, 2, 0)
	d.say(alice, group, "bob?")
	d.want(bob, group, 1, 1)

	// A room rule with no actions mutes a room; deleting it unmutes.
	d.Do(machine.CmdPushRulePut, bob, &machine.PushRulePut{Kind: "room", RuleID: dm, Actions: json.RawMessage(`[]`)})
	d.say(alice, dm, "muted")
	d.want(bob, dm, 2, 0)
	d.Do(machine.CmdPushRuleDelete, bob, &machine.PushRuleDelete{Kind: "room", RuleID: dm})
	d.say(alice, dm, "unmuted")
	d.want(bob, dm, 3, 0)

	// A user override rule with a content.body condition, word bounded.
	d.Do(machine.CmdPushRulePut, bob, &machine.PushRulePut{Kind: "override", RuleID: "cake",
		Conditions: json.RawMessage(`[{"kind":"event_match","key":"content.body","pattern":"cake*"}]`),
		Actions:    json.RawMessage(`["notify",{"set_tweak":"highlight","value":true}]`)})
	d.say(alice, group, "pancake") // no word boundary before "cake"
	d.want(bob, group, 1, 1)
	d.say(alice, group, "Cakes!")
	d.want(bob, group, 2, 2)
	// Changing a default rule's actions: messages highlight now.
	d.Do(machine.CmdPushRuleEnabled, bob, &machine.PushRuleEnabled{Kind: "underride", RuleID: ".m.rule.message", Enabled: true})
	d.Do(machine.CmdPushRuleActions, bob, &machine.PushRuleActions{Kind: "underride", RuleID: ".m.rule.message",
		Actions: json.RawMessage(`["notify",{"set_tweak":"highlight"}]`)})
	d.say(alice, group, "plain")
	d.want(bob, group, 3, 3)
	// The master rule silences everything.
	d.Do(machine.CmdPushRuleEnabled, bob, &machine.PushRuleEnabled{Kind: "override", RuleID: ".m.rule.master", Enabled: true})
	d.say(alice, group, "bob cake")
	d.want(bob, group, 3, 3)
}

func TestThreadedCounts(t *testing.T) {
	d := newDriver(t)
	room := d.room(alice, "public_chat", bob, carol)
	root := d.say(alice, room, "root")
	r1 := d.inThread(carol, room, root, "one")
	d.inThread(carol, room, root, "two")
	// An edit of a thread event is in the thread too, but edits are
	// suppressed; a reply (m.in_reply_to, no rel_type) is in the main
	// timeline.
	d.send(alice, room, `{"msgtype":"m.text","body":"reply","m.relates_to":{"m.in_reply_to":{"event_id":"`+r1+`"}}}`)

	total, by := d.counts(bob, room)
	if total.Notify != 4 || by[""].Notify != 2 || by[root].Notify != 2 {
		t.Fatalf("bob's counts %+v by thread %+v", total, by)
	}
	// A threaded receipt reads only its thread.
	d.receipt(bob, room, "m.read", r1, root)
	_, by = d.counts(bob, room)
	if by[""].Notify != 2 || by[root].Notify != 1 {
		t.Fatalf("after thread receipt: %+v", by)
	}
	// "main" reads only the main timeline.
	d.receipt(bob, room, "m.read", root, "main")
	_, by = d.counts(bob, room)
	if by[""].Notify != 1 || by[root].Notify != 1 {
		t.Fatalf("after main receipt: %+v", by)
	}
	// Sending in a thread reads that thread only.
	d.inThread(bob, room, root, "me too")
	_, by = d.counts(bob, room)
	if by[""].Notify != 1 || by[root].Notify != 0 {
		t.Fatalf("after sending in the thread: %+v", by)
	}
	d.inThread(carol, room, root, "three")
	last := d.say(carol, room, "main again")
	// An unthreaded receipt reads every thread up to it.
	d.receipt(bob, room, "m.read", last, "")
	d.want(bob, room, 0, 0)
}

func TestNotificationList(t *testing.T) {
	d := newDriver(t)
	room := d.room(alice, "public_chat", bob, carol)
	var ids []string
	for i := range 5 {
		body := fmt.Sprint("message ", i)
		if i%2 == 0 {
			body += " bob"
		}
		ids = append(ids, d.say(alice, room, body))
	}
	d.receipt(bob, room, "m.read", ids[1], "")
	err := d.M.View(func(r pebble.Reader) error {
		eid := func(n notifications.Notif) string {
			ev, err := rooms.GetEvent(r, n.RoomID, n.Seq)
			if err != nil || ev == nil {
				t.Fatalf("event of %+v: %v", n, err)
			}
			return ev.EventID
		}
		all, next, err := notifications.List(r, bob, ^uint64(0), 3, false)
		if err != nil {
			return err
		}
		if len(all) != 3 || eid(all[0]) != ids[4] || eid(all[2]) != ids[2] || next == 0 {
			t.Fatalf("first page %+v next %d", all, next)
		}
		rest, next, err := notifications.List(r, bob, next, 10, false)
		if err != nil {
			return err
		}
		if len(rest) != 2 || eid(rest[1]) != ids[0] || next != 0 {
			t.Fatalf("second page %+v next %d", rest, next)
		}
		for i, n := range append(all, rest...) {
			if wantRead := i >= 3; n.Read != wantRead {
				t.Errorf("notification %d (%s) read %v", i, eid(n), n.Read)
			}
		}
		hl, _, err := notifications.List(r, bob, ^uint64(0), 10, true)
		if err != nil {
			return err
		}
		if len(hl) != 3 || eid(hl[0]) != ids[4] || eid(hl[1]) != ids[2] || !hl[0].Highlight {
			t.Fatalf("highlights %+v", hl)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The counts are a deterministic fold: a second machine fed the same
// commands, and a rebuild from the log, give the same digest.
func TestDeterministicAndRebuildable(t *testing.T) {
	d := newDriver(t)
	room := d.room(alice, "public_chat", bob, carol)
	root := d.say(alice, room, "root bob")
	for i := range 10 {
		d.inThread(carol, room, root, fmt.Sprint("t", i))
		d.say(bob, room, fmt.Sprint("m", i, " @room Carol"))
	}
	d.Do(machine.CmdPushRulePut, carol, &machine.PushRulePut{Kind: "sender", RuleID: bob, Actions: json.RawMessage(`["notify",{"set_tweak":"highlight"}]`)})
	d.say(bob, room, "loud")
	d.receipt(bob, room, "m.read", root, root)

	digest := func(m *machine.Machine) map[string][32]byte {
		var out map[string][32]byte
		if err := m.View(func(r pebble.Reader) error {
			var err error
			out, err = m.Engine().Digests(r)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := digest(d.M)

	other, err := machine.Open(t.TempDir(), machine.Config{ServerName: "localhost", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i, c := range d.Cmds {
		if _, err := other.Apply(uint64(i+1), c); err != nil {
			t.Fatal(err)
		}
	}
	if got := digest(other); !reflect.DeepEqual(got["notifications"], want["notifications"]) || got["pushrules"] != want["pushrules"] {
		t.Fatal("a replica fed the same commands has different notification digests")
	}

	d.M.Close()
	db, err := pebble.Open(d.Dir, &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := machine.NewEngine().Rebuild(db, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	got, err := machine.NewEngine().Digests(db)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got["notifications"] != want["notifications"] || got["pushrules"] != want["pushrules"] {
		t.Fatal("rebuilding from the log changed the notification digests")
	}
	if want["notifications"] == ([32]byte{}) {
		t.Fatal("no digest")
	}
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)         {}
func (quietPebble) Errorf(string, ...any)        {}
func (quietPebble) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

// Counts stay exact across many checkpoint windows, with receipts landing
// before and after checkpoints, in the main timeline and a thread.
func TestCountsAcrossCheckpoints(t *testing.T) {
	d := newDriver(t)
	room := d.room(alice, "public_chat", bob, carol)
	root := d.say(alice, room, "root")
	var main, thread []string // alice's events bob has not read, per timeline
	main = append(main, root)
	for i := range 400 {
		switch {
		case i%7 == 3:
			thread = append(thread, d.inThread(alice, room, root, "in thread"))
		case i%5 == 0:
			main = append(main, d.say(alice, room, "hey Bobby Tables")) // highlight
		default:
			main = append(main, d.say(alice, room, "hello"))
		}
		if i%53 == 52 && len(main) > 3 { // read all but the last 3 of main
			d.receipt(bob, room, "m.read", main[len(main)-4], "main")
			main = main[len(main)-3:]
		}
		if i%97 == 96 && len(thread) > 1 {
			d.receipt(bob, room, "m.read", thread[len(thread)-2], root)
			thread = thread[len(thread)-1:]
		}
		if i%41 == 40 {
			d.say(carol, room, "carol") // notifies bob; carol reads
			main = append(main, "carol")
		}
		_, by := d.counts(bob, room)
		if got := by[""].Notify; got != uint64(len(main)) {
			t.Fatalf("step %d: bob's main count %d, want %d", i, got, len(main))
		}
		if got := by[root].Notify; got != uint64(len(thread)) {
			t.Fatalf("step %d: bob's thread count %d, want %d", i, got, len(thread))
		}
		if _, c := d.counts(carol, room); i%41 == 40 && c[""].Notify != 0 {
			t.Fatalf("step %d: carol's main count %+v after speaking", i, c[""])
		}
	}
	// An unthreaded receipt at the latest event reads everything.
	last := d.say(carol, room, "end")
	d.receipt(bob, room, "m.read", last, "")
	d.want(bob, room, 0, 0)
}

// Members whose own rules differ from the shared result: a muted room
// neither counts nor lists; a rule that notifies where the shared result
// does not counts and lists for that member alone; leaving and rejoining
// starts afresh.
func TestExceptionsListAndRejoin(t *testing.T) {
	d := newDriver(t)
	room := d.room(alice, "public_chat", bob, carol)
	list := func(user string) []uint64 {
		t.Helper()
		var seqs []uint64
		if err := d.M.View(func(r pebble.Reader) error {
			all, _, err := notifications.List(r, user, ^uint64(0), 50, false)
			for _, n := range all {
				seqs = append(seqs, n.Seq)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return seqs
	}
	d.Do(machine.CmdPushRulePut, bob, &machine.PushRulePut{Kind: "room", RuleID: room, Actions: json.RawMessage(`[]`)})
	first := d.say(alice, room, "a1")
	d.want(bob, room, 0, 0)
	d.want(carol, room, 1, 0)
	if got := list(bob); len(got) != 0 {
		t.Fatalf("muted bob lists %v", got)
	}
	if got := list(carol); len(got) != 1 {
		t.Fatalf("carol lists %v", got)
	}

	d.Do(machine.CmdPushRulePut, bob, &machine.PushRulePut{Kind: "override", RuleID: "reactions",
		Conditions: json.RawMessage(`[{"kind":"event_match","key":"type","pattern":"m.reaction"}]`),
		Actions:    json.RawMessage(`["notify"]`)})
	d.Do(machine.CmdSendEvent, alice, &machine.SendEvent{RoomID: room, Type: "m.reaction",
		Content: json.RawMessage(`{"m.relates_to":{"rel_type":"m.annotation","event_id":"` + first + `","key":"x"}}`)})
	d.want(bob, room, 1, 0)
	d.want(carol, room, 1, 0) // reactions do not notify by the default rules
	if got := list(bob); len(got) != 1 {
		t.Fatalf("bob lists %v, want the reaction", got)
	}

	d.Do(machine.CmdMembership, bob, &machine.Membership{RoomID: room, Target: bob, Membership: "leave"})
	d.say(alice, room, "a2")
	d.Do(machine.CmdMembership, bob, &machine.Membership{RoomID: room, Target: bob, Membership: "join"})
	d.want(bob, room, 0, 0)
	d.say(alice, room, "a3") // still muted
	d.want(bob, room, 0, 0)
	d.Do(machine.CmdPushRuleDelete, bob, &machine.PushRuleDelete{Kind: "room", RuleID: room})
	d.say(alice, room, "a4")
	d.want(bob, room, 1, 0)
	if got := list(bob); len(got) != 1 {
		t.Fatalf("bob lists %v after rejoining, want only a4", got)
	}
	d.want(carol, room, 4, 0)
}
