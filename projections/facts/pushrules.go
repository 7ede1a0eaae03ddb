package facts

import "encoding/json"

// Record types of users' push rules (the spec's push rules API). Only
// user-defined rules and the user's changes to server-default rules are
// recorded: the server-default rules themselves are code
// (projections/pushrules).
const (
	TypePushRuleSet     = "push_rule.set"
	TypePushRuleDeleted = "push_rule.deleted"
	TypePushRuleEnabled = "push_rule.enabled"
	TypePushRuleActions = "push_rule.actions"
)

// PushRuleSet creates or replaces a user-defined rule. A new rule goes
// before Before or after After (both already checked to name user rules of
// the same kind), or first of its kind when neither is set; a replaced rule
// keeps its place and its enabled state unless Before or After move it.
type PushRuleSet struct {
	UserID     string          `msgpack:"u"`
	Kind       string          `msgpack:"k"`
	RuleID     string          `msgpack:"i"`
	Actions    json.RawMessage `msgpack:"a"`
	Conditions json.RawMessage `msgpack:"c,omitempty"`
	Pattern    *string         `msgpack:"p,omitempty"`
	Before     string          `msgpack:"b,omitempty"`
	After      string          `msgpack:"f,omitempty"`
}

// PushRuleDeleted removes a user-defined rule.
type PushRuleDeleted struct {
	UserID string `msgpack:"u"`
	Kind   string `msgpack:"k"`
	RuleID string `msgpack:"i"`
}

// PushRuleEnabled enables or disables a rule (user-defined or
// server-default).
type PushRuleEnabled struct {
	UserID  string `msgpack:"u"`
	Kind    string `msgpack:"k"`
	RuleID  string `msgpack:"i"`
	Enabled bool   `msgpack:"e"`
}

// PushRuleActions replaces a rule's actions (user-defined or
// server-default).
type PushRuleActions struct {
	UserID  string          `msgpack:"u"`
	Kind    string          `msgpack:"k"`
	RuleID  string          `msgpack:"i"`
	Actions json.RawMessage `msgpack:"a"`
}
