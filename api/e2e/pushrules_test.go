package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/pushrules"

	"chronicle/api/apitest"
)

func ruleIDs(rules pushrules.PushRuleArray) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.RuleID)
	}
	return out
}

// pushRulesInSync returns the m.push_rules event of a sync's account data.
func pushRulesInSync(t *testing.T, resp *mautrix.RespSync) *pushrules.PushRuleset {
	t.Helper()
	for _, ev := range resp.AccountData.Events {
		if ev.Type.Type == "m.push_rules" {
			rs, err := pushrules.EventToPushRules(ev)
			if err != nil {
				t.Fatalf("m.push_rules in sync: %v", err)
			}
			return rs
		}
	}
	return nil
}

// TestPushRulesDefaults: a new user has the server-default rules, through
// GET /pushrules/ and in the account data of their first sync.
func TestPushRulesDefaults(t *testing.T) {
	srv := apitest.Start(t, "")
	bob := newUser(t, srv, "bob")
	rs, err := bob.GetPushRules(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	override := ruleIDs(rs.Override)
	for _, id := range []string{".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event",
		".m.rule.is_user_mention", ".m.rule.is_room_mention", ".m.rule.tombstone", ".m.rule.reaction", ".m.rule.suppress_edits"} {
		if !slices.Contains(override, id) {
			t.Errorf("override rules %v lack %s", override, id)
		}
	}
	if override[0] != ".m.rule.master" || rs.Override[0].Enabled || !rs.Override[0].Default {
		t.Errorf("first override rule %+v, want the disabled master rule", rs.Override[0])
	}
	if got := ruleIDs(rs.Underride); !slices.Contains(got, ".m.rule.message") || !slices.Contains(got, ".m.rule.room_one_to_one") {
		t.Errorf("underride rules %v", got)
	}
	if len(rs.Content) != 1 || rs.Content[0].Pattern != "bob" {
		t.Errorf("content rules %+v", rs.Content)
	}
	first, err := syncOnce(t.Context(), bob, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	inSync := pushRulesInSync(t, first)
	if inSync == nil || len(inSync.Override) != len(rs.Override) || len(inSync.Underride) != len(rs.Underride) {
		t.Fatalf("initial sync m.push_rules %+v", inSync)
	}
	// Nothing changed: an incremental sync does not repeat it.
	next, err := syncOnce(t.Context(), bob, first.NextBatch, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if pushRulesInSync(t, next) != nil {
		t.Fatal("unchanged push rules sent again")
	}
	// The account data API cannot set them.
	_, err = bob.MakeRequest(t.Context(), http.MethodPut, bob.BuildClientURL("v3", "user", bob.UserID, "account_data", "m.push_rules"), map[string]any{"global": map[string]any{}}, nil)
	if err == nil {
		t.Fatal("PUT account_data m.push_rules accepted")
	}
}

// TestPushRulesCRUD: create, read, order, enable, change actions and delete
// rules; every change reaches the next incremental sync.
func TestPushRulesCRUD(t *testing.T) {
	srv := apitest.Start(t, "")
	bob := newUser(t, srv, "bob")
	ctx := t.Context()
	first, err := syncOnce(ctx, bob, "", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	notify := []*pushrules.PushAction{{Action: pushrules.ActionNotify}}
	cond := func(p string) []*pushrules.PushCondition {
		return []*pushrules.PushCondition{{Kind: pushrules.KindEventMatch, Key: "content.body", Pattern: p}}
	}
	for _, r := range []struct {
		id, before, after string
	}{{"a", "", ""}, {"b", "", ""}, {"c", "", "a"}, {"d", "a", ""}} {
		if err := bob.PutPushRule(ctx, "global", pushrules.OverrideRule, r.id, &mautrix.ReqPutPushRule{
			Actions: notify, Conditions: cond(r.id), Before: r.before, After: r.after,
		}); err != nil {
			t.Fatalf("put %s: %v", r.id, err)
		}
	}
	rs, err := bob.GetPushRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := ruleIDs(rs.Override)[:5]; !slices.Equal(got, []string{".m.rule.master", "b", "d", "a", "c"}) {
		t.Fatalf("override order %v", got)
	}
	rule, err := bob.GetPushRule(ctx, "global", pushrules.OverrideRule, "a")
	if err != nil {
		t.Fatal(err)
	}
	if rule.RuleID != "a" || rule.Default || !rule.Enabled || len(rule.Conditions) != 1 || rule.Conditions[0].Pattern != "a" {
		t.Fatalf("rule a %+v", rule)
	}
	// A content rule with a pattern, a room rule.
	if err := bob.PutPushRule(ctx, "global", pushrules.ContentRule, "cake", &mautrix.ReqPutPushRule{Actions: notify, Pattern: "cake*lie"}); err != nil {
		t.Fatal(err)
	}
	if err := bob.PutPushRule(ctx, "global", pushrules.RoomRule, "!room:localhost", &mautrix.ReqPutPushRule{Actions: []*pushrules.PushAction{}}); err != nil {
		t.Fatal(err)
	}
	if r, err := bob.GetPushRule(ctx, "global", pushrules.ContentRule, "cake"); err != nil || r.Pattern != "cake*lie" {
		t.Fatalf("content rule %+v (%v)", r, err)
	}
	// Enabled and actions, of a user rule and of a server-default rule.
	if err := bob.SetPushRuleEnabled(ctx, "global", pushrules.OverrideRule, "a", false); err != nil {
		t.Fatal(err)
	}
	var enabled struct {
		Enabled *bool `json:"enabled"`
	}
	if _, err := bob.MakeRequest(ctx, http.MethodGet, bob.BuildClientURL("v3", "pushrules", "global", "override", "a", "enabled"), nil, &enabled); err != nil || enabled.Enabled == nil || *enabled.Enabled {
		t.Fatalf("enabled of a: %+v (%v)", enabled, err)
	}
	if err := bob.SetPushRuleEnabled(ctx, "global", pushrules.OverrideRule, ".m.rule.master", true); err != nil {
		t.Fatal(err)
	}
	highlight := []*pushrules.PushAction{{Action: pushrules.ActionNotify}, {Action: pushrules.ActionSetTweak, Tweak: pushrules.TweakHighlight, Value: true}}
	if err := bob.PutPushRuleActions(ctx, "global", pushrules.UnderrideRule, ".m.rule.message", highlight); err != nil {
		t.Fatal(err)
	}
	var actions struct {
		Actions pushrules.PushActionArray `json:"actions"`
	}
	if _, err := bob.MakeRequest(ctx, http.MethodGet, bob.BuildClientURL("v3", "pushrules", "global", "underride", ".m.rule.message", "actions"), nil, &actions); err != nil {
		t.Fatal(err)
	}
	if !actions.Actions.Should().Highlight {
		t.Fatalf("actions of .m.rule.message %+v", actions.Actions)
	}
	if r, err := bob.GetPushRule(ctx, "global", pushrules.OverrideRule, ".m.rule.master"); err != nil || !r.Enabled || !r.Default {
		t.Fatalf("master %+v (%v)", r, err)
	}
	if err := bob.DeletePushRule(ctx, "global", pushrules.OverrideRule, "b"); err != nil {
		t.Fatal(err)
	}
	_, err = bob.GetPushRule(ctx, "global", pushrules.OverrideRule, "b")
	wantMatrixError(t, err, mautrix.MNotFound, 404)

	// The change is in the next sync's account data.
	next := syncUntil(t, bob, first.NextBatch, func(r *mautrix.RespSync) bool { return pushRulesInSync(t, r) != nil })
	rs = pushRulesInSync(t, next)
	if got := ruleIDs(rs.Override)[:4]; !slices.Equal(got, []string{".m.rule.master", "d", "a", "c"}) || !rs.Override[0].Enabled {
		t.Fatalf("synced override rules %v", got)
	}
	if len(rs.Room.Map) != 1 || rs.Room.Map["!room:localhost"] == nil {
		t.Fatalf("synced room rules %+v", rs.Room.Map)
	}

	// Errors.
	wantMatrixError(t, bob.PutPushRule(ctx, "global", pushrules.OverrideRule, ".mine", &mautrix.ReqPutPushRule{Actions: notify}), mautrix.MInvalidParam, 400)
	wantMatrixError(t, bob.PutPushRule(ctx, "global", "bogus", "x", &mautrix.ReqPutPushRule{Actions: notify}), mautrix.MInvalidParam, 400)
	wantMatrixError(t, bob.PutPushRule(ctx, "global", pushrules.OverrideRule, "x", &mautrix.ReqPutPushRule{Actions: notify, Before: "nope"}), mautrix.MInvalidParam, 400)
	wantMatrixError(t, bob.PutPushRule(ctx, "global", pushrules.OverrideRule, "x", &mautrix.ReqPutPushRule{Actions: notify, After: ".m.rule.master"}), mautrix.MInvalidParam, 400)
	wantMatrixError(t, bob.PutPushRule(ctx, "global", pushrules.ContentRule, "nopattern", &mautrix.ReqPutPushRule{Actions: notify}), mautrix.MBadJSON, 400)
	wantMatrixError(t, bob.PutPushRule(ctx, "elsewhere", pushrules.OverrideRule, "x", &mautrix.ReqPutPushRule{Actions: notify}), mautrix.MInvalidParam, 400)
	wantMatrixError(t, bob.DeletePushRule(ctx, "global", pushrules.OverrideRule, ".m.rule.master"), mautrix.MInvalidParam, 400)
	wantMatrixError(t, bob.DeletePushRule(ctx, "global", pushrules.OverrideRule, "nope"), mautrix.MNotFound, 404)
	wantMatrixError(t, bob.SetPushRuleEnabled(ctx, "global", pushrules.SenderRule, "@nobody:localhost", true), mautrix.MNotFound, 404)
	_, err = bob.MakeRequest(ctx, http.MethodPut, bob.BuildClientURL("v3", "pushrules", "global", "override", "x"), map[string]any{"actions": []any{"explode"}}, nil)
	wantMatrixError(t, err, mautrix.MInvalidParam, 400)
	_, err = bob.MakeRequest(ctx, http.MethodPut, bob.BuildClientURL("v3", "pushrules", "global", "override", "x"), map[string]any{
		"actions": []any{"notify"}, "conditions": []any{map[string]any{"kind": "event_property_is", "key": "content.x", "value": map[string]any{}}},
	}, nil)
	wantMatrixError(t, err, mautrix.MInvalidParam, 400)
	_, err = bob.MakeRequest(ctx, http.MethodPut, bob.BuildClientURL("v3", "pushrules", "global", "override", "x"), map[string]any{}, nil)
	wantMatrixError(t, err, mautrix.RespError{ErrCode: "M_MISSING_PARAM"}, 400)
	// Another user's rules are their own.
	carol := newUser(t, srv, "carol")
	_, err = carol.GetPushRule(ctx, "global", pushrules.OverrideRule, "a")
	wantMatrixError(t, err, mautrix.MNotFound, 404)
}

// TestPushRulesBadInput: malformed bodies get the spec's errors, never a
// 500, and write nothing.
func TestPushRulesBadInput(t *testing.T) {
	srv := apitest.Start(t, "")
	bob := newUser(t, srv, "bob")
	for _, tc := range []struct {
		path, body, code string
	}{
		{"/pushrules/global/override/x", `{"actions":`, "M_NOT_JSON"},
		{"/pushrules/global/override/x", `{"actions":"notify"}`, "M_BAD_JSON"},
		{"/pushrules/global/override/x", `{"actions":["notify"],"conditions":{}}`, "M_BAD_JSON"},
		{"/pushrules/global/override/x", `{"actions":["notify"],"conditions":[{"kind":"event_match","key":"type"}]}`, "M_BAD_JSON"},
		{"/pushrules/global/override/x", `{"actions":[{"no_tweak":1}]}`, "M_INVALID_PARAM"},
		{"/pushrules/global/content/x", `{"actions":[],"pattern":5}`, "M_BAD_JSON"},
		{"/pushrules/global/override/.m.rule.master/enabled", `{"enabled":"yes"}`, "M_BAD_JSON"},
		{"/pushrules/global/override/.m.rule.master/enabled", `{}`, "M_MISSING_PARAM"},
		{"/pushrules/global/override/.m.rule.master/actions", `{"actions":null}`, "M_BAD_JSON"},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL+"/_matrix/client/v3"+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+bob.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			ErrCode string `json:"errcode"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 400 || body.ErrCode != tc.code {
			t.Errorf("PUT %s %s: %d %s, want 400 %s", tc.path, tc.body, resp.StatusCode, body.ErrCode, tc.code)
		}
	}
	rs, err := bob.GetPushRules(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Override) != 12 || rs.Override[0].Enabled {
		t.Fatalf("bad input changed the rules: %v", ruleIDs(rs.Override))
	}
}
