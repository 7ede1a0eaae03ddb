package pushrules_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/projections/pushrules"
	"chronicle/raft/machine"
	"chronicle/raft/machine/machinetest"
)

const bob = "@bob:localhost"

// driver applies commands to a real machine (machinetest).
type driver struct{ *machinetest.Driver }

func newDriver(t *testing.T) *driver {
	t.Helper()
	d := &driver{machinetest.New(t)}
	d.Register(bob)
	return d
}

func (d *driver) must(typ, actor string, payload any) {
	d.T.Helper()
	if res := d.Try(typ, actor, payload); res.Err != nil {
		d.T.Fatalf("%s: %v", typ, res.Err)
	}
}

func (d *driver) refused(kind machine.Kind, typ, actor string, payload any) {
	d.T.Helper()
	res := d.Try(typ, actor, payload)
	if res.Err == nil || res.Err.Kind != kind {
		d.T.Fatalf("%s %+v: result %+v, want rejection kind %d", typ, payload, res.Err, kind)
	}
}

func (d *driver) ruleset() *pushrules.Ruleset {
	d.T.Helper()
	var rs *pushrules.Ruleset
	if err := d.M.View(func(r pebble.Reader) error {
		var err error
		rs, err = pushrules.Load(r, bob)
		return err
	}); err != nil {
		d.T.Fatal(err)
	}
	return rs
}

func ids(rules []pushrules.Rule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.RuleID)
	}
	return out
}

func put(kind, id, before, after string) *machine.PushRulePut {
	return &machine.PushRulePut{Kind: kind, RuleID: id, Actions: json.RawMessage(`["notify"]`), Before: before, After: after,
		Conditions: json.RawMessage(`[{"kind":"event_match","key":"content.body","pattern":"` + id + `"}]`)}
}

func TestDefaultsAndOrdering(t *testing.T) {
	d := newDriver(t)
	rs := d.ruleset()
	if got := ids(rs.Override); got[0] != ".m.rule.master" || !slices.Contains(got, ".m.rule.is_user_mention") || len(got) != 12 {
		t.Fatalf("default override rules %v", got)
	}
	if c := rs.Find("content", ".m.rule.contains_user_name"); c == nil || c.Pattern == nil || *c.Pattern != "bob" || !c.Default {
		t.Fatalf("contains_user_name %+v", c)
	}
	if r := rs.Find("override", ".m.rule.invite_for_me"); r == nil || !json.Valid(r.Conditions) || !slices.Contains([]string{string(r.Conditions)}, `[{"key":"type","kind":"event_match","pattern":"m.room.member"},{"key":"content.membership","kind":"event_match","pattern":"invite"},{"key":"state_key","kind":"event_match","pattern":"@bob:localhost"}]`) {
		t.Fatalf("invite_for_me %+v", r)
	}
	if got := ids(rs.Underride); !slices.Equal(got, []string{".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one", ".m.rule.message", ".m.rule.encrypted"}) {
		t.Fatalf("underride %v", got)
	}
	if rs.Room == nil || rs.Sender == nil {
		t.Fatal("room and sender must render as [] not null")
	}

	d.must(machine.CmdPushRulePut, bob, put("override", "a", "", ""))
	d.must(machine.CmdPushRulePut, bob, put("override", "b", "", "")) // new rules go first
	d.must(machine.CmdPushRulePut, bob, put("override", "c", "", "a"))
	d.must(machine.CmdPushRulePut, bob, put("override", "d", "a", ""))
	// Replacing keeps the place; with before/after it moves.
	d.must(machine.CmdPushRulePut, bob, put("override", "b", "", ""))
	d.must(machine.CmdPushRulePut, bob, put("override", "c", "b", ""))
	got := ids(d.ruleset().Override)
	if want := []string{".m.rule.master", "c", "b", "d", "a", ".m.rule.suppress_notices"}; !slices.Equal(got[:len(want)], want) {
		t.Fatalf("override order %v, want prefix %v", got, want)
	}
	// Disabled rules stay disabled when replaced.
	d.must(machine.CmdPushRuleEnabled, bob, &machine.PushRuleEnabled{Kind: "override", RuleID: "a", Enabled: false})
	d.must(machine.CmdPushRulePut, bob, put("override", "a", "", ""))
	if r := d.ruleset().Find("override", "a"); r == nil || r.Enabled || r.Default {
		t.Fatalf("rule a %+v", r)
	}
	d.must(machine.CmdPushRuleDelete, bob, &machine.PushRuleDelete{Kind: "override", RuleID: "d"})
	if d.ruleset().Find("override", "d") != nil {
		t.Fatal("deleted rule still there")
	}
	// Server-default rules: enabled and actions change, deletion does not.
	d.must(machine.CmdPushRuleActions, bob, &machine.PushRuleActions{Kind: "underride", RuleID: ".m.rule.message", Actions: json.RawMessage(`[ "notify", {"set_tweak":"sound","value":"x"} ]`)})
	d.must(machine.CmdPushRuleEnabled, bob, &machine.PushRuleEnabled{Kind: "override", RuleID: ".m.rule.master", Enabled: true})
	rs = d.ruleset()
	if r := rs.Find("underride", ".m.rule.message"); string(r.Actions) != `["notify",{"set_tweak":"sound","value":"x"}]` || !r.Default {
		t.Fatalf("message rule %+v", r)
	}
	if r := rs.Find("override", ".m.rule.master"); !r.Enabled {
		t.Fatal("master not enabled")
	}

	// Refusals.
	d.refused(machine.KindInvalidParam, machine.CmdPushRuleDelete, bob, &machine.PushRuleDelete{Kind: "override", RuleID: ".m.rule.master"})
	d.refused(machine.KindNotFound, machine.CmdPushRuleDelete, bob, &machine.PushRuleDelete{Kind: "override", RuleID: "nope"})
	d.refused(machine.KindNotFound, machine.CmdPushRuleEnabled, bob, &machine.PushRuleEnabled{Kind: "content", RuleID: ".m.rule.master"})
	d.refused(machine.KindInvalidParam, machine.CmdPushRulePut, bob, put("override", ".mine", "", ""))
	d.refused(machine.KindInvalidParam, machine.CmdPushRulePut, bob, put("override", "x/y", "", ""))
	d.refused(machine.KindInvalidParam, machine.CmdPushRulePut, bob, put("override", "e", "nope", ""))
	d.refused(machine.KindInvalidParam, machine.CmdPushRulePut, bob, put("override", "e", ".m.rule.master", ""))
	d.refused(machine.KindInvalidParam, machine.CmdPushRulePut, bob, put("bogus", "e", "", ""))
	d.refused(machine.KindBadJSON, machine.CmdPushRulePut, bob, &machine.PushRulePut{Kind: "content", RuleID: "e", Actions: json.RawMessage(`["notify"]`)})
	d.refused(machine.KindBadJSON, machine.CmdPushRulePut, bob, &machine.PushRulePut{Kind: "room", RuleID: "e", Actions: json.RawMessage(`{}`)})
	d.refused(machine.KindInvalidParam, machine.CmdPushRulePut, bob, &machine.PushRulePut{Kind: "override", RuleID: "e", Actions: json.RawMessage(`["notify"]`),
		Conditions: json.RawMessage(`[{"kind":"event_property_is","key":"content.x","value":{"a":1}}]`)})
	d.refused(machine.KindInvalidParam, machine.CmdPushRuleActions, bob, &machine.PushRuleActions{Kind: "underride", RuleID: ".m.rule.message", Actions: json.RawMessage(`["explode"]`)})
}

func TestEventMatchFollowsTheSpec(t *testing.T) {
	u := &pushrules.UserRules{Override: []pushrules.Rule{
		{RuleID: "type", Enabled: true, Actions: json.RawMessage(`["notify"]`), Conditions: json.RawMessage(`[{"kind":"event_match","key":"type","pattern":"org.example"}]`)},
		{RuleID: "glob", Enabled: true, Actions: json.RawMessage(`["notify"]`), Conditions: json.RawMessage(`[{"kind":"event_match","key":"content.topic","pattern":"lunc?*"}]`)},
		{RuleID: "escaped", Enabled: true, Actions: json.RawMessage(`["notify",{"set_tweak":"highlight","value":false}]`), Conditions: json.RawMessage(`[{"kind":"event_match","key":"content.a\\.b","pattern":"yes"}]`)},
		{RuleID: "number", Enabled: true, Actions: json.RawMessage(`["notify"]`), Conditions: json.RawMessage(`[{"kind":"event_match","key":"content.n","pattern":"*"}]`)},
		{RuleID: "unknown", Enabled: true, Actions: json.RawMessage(`["notify"]`), Conditions: json.RawMessage(`[{"kind":"org.example.future"}]`)},
	}}
	e := pushrules.NewEvaluator(bob, u)
	room := fakeRoom{members: 3}
	match := func(typ string, sk *string, content string) string {
		m := e.Match(room, pushrules.NewEvent("!r:localhost", "@alice:localhost", typ, sk, json.RawMessage(content)))
		if m == nil {
			return ""
		}
		return m.RuleID
	}
	empty, other := "", "x"
	for _, tc := range []struct {
		typ, content string
		sk           *string
		want         string
	}{
		{"org.example", `{}`, nil, "type"},
		{"ORG.EXAMPLE", `{}`, nil, "type"},            // case-insensitive
		{"org.example.more", `{}`, nil, ""},           // the whole value, not a substring
		{"x", `{"topic":"Lunch plans"}`, nil, "glob"}, // the spec's example
		{"x", `{"topic":"lunc"}`, nil, ""},
		{"x", `{"topic":" lunch"}`, nil, ""},
		{"x", `{"a.b":"yes"}`, nil, "escaped"},
		{"x", `{"a":{"b":"yes"}}`, nil, ""},
		{"x", `{"n":5}`, nil, ""}, // not a string
		{"m.room.tombstone", `{}`, &empty, ".m.rule.tombstone"},
		{"m.room.tombstone", `{}`, &other, ""},
		{"m.room.message", `{"msgtype":"m.notice","body":"bob"}`, nil, ".m.rule.suppress_notices"},
		{"m.room.message", `{"body":"hi @room"}`, nil, ".m.rule.roomnotif"},
		{"m.room.message", `{"body":"hi@roomy"}`, nil, ".m.rule.message"},
		{"m.room.message", `{"body":"BOB!"}`, nil, ".m.rule.contains_user_name"},
		{"m.room.message", `{"body":"bobby"}`, nil, ".m.rule.message"},
		{"m.room.message", `{"body":"hi Bobby T."}`, nil, ".m.rule.contains_display_name"},
		{"m.room.message", `{"body":"edit","m.relates_to":{"rel_type":"m.replace","event_id":"$x"}}`, nil, ".m.rule.suppress_edits"},
		{"m.room.member", `{"membership":"invite"}`, &empty, ".m.rule.member_event"},
		{"m.room.member", `{"membership":"invite"}`, strp(bob), ".m.rule.invite_for_me"},
	} {
		if got := match(tc.typ, tc.sk, tc.content); got != tc.want {
			t.Errorf("%s %s: matched %q, want %q", tc.typ, tc.content, got, tc.want)
		}
	}
	m := e.Match(room, pushrules.NewEvent("!r:localhost", "@alice:localhost", "x", nil, json.RawMessage(`{"a.b":"yes"}`)))
	if m == nil || !m.Notify || m.Highlight {
		t.Fatalf("highlight false: %+v", m)
	}
}

func strp(s string) *string { return &s }

// fakeRoom is a room where alice (the sender) may notify the room.
type fakeRoom struct{ members int }

func (r fakeRoom) GetOwnDisplayname() string { return "Bobby T." }
func (r fakeRoom) GetMemberCount() int       { return r.members }
func (r fakeRoom) GetPowerLevels() *event.PowerLevelsEventContent {
	return &event.PowerLevelsEventContent{Users: map[id.UserID]int{"@alice:localhost": 100}}
}
