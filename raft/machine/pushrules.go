package machine

import (
	"encoding/json"
	"errors"

	"chronicle/projections/facts"
	"chronicle/projections/pushrules"
)

// Commands of the push rules API (PUT/DELETE /pushrules/global/...).
const (
	CmdPushRulePut     = "push_rule_put"
	CmdPushRuleDelete  = "push_rule_delete"
	CmdPushRuleEnabled = "push_rule_enabled"
	CmdPushRuleActions = "push_rule_actions"
)

// PushRulePut creates or replaces one of the actor's rules; Before or
// After (user rule IDs of the same kind) place it.
type PushRulePut struct {
	Kind       string          `msgpack:"k"`
	RuleID     string          `msgpack:"i"`
	Actions    json.RawMessage `msgpack:"a"`
	Conditions json.RawMessage `msgpack:"c"`
	Pattern    *string         `msgpack:"p"`
	Before     string          `msgpack:"b"`
	After      string          `msgpack:"f"`
}

// PushRuleDelete deletes one of the actor's rules.
type PushRuleDelete struct {
	Kind   string `msgpack:"k"`
	RuleID string `msgpack:"i"`
}

// PushRuleEnabled enables or disables a rule, the actor's own or a
// server-default one.
type PushRuleEnabled struct {
	Kind    string `msgpack:"k"`
	RuleID  string `msgpack:"i"`
	Enabled bool   `msgpack:"e"`
}

// PushRuleActions replaces a rule's actions, the actor's own or a
// server-default one.
type PushRuleActions struct {
	Kind    string          `msgpack:"k"`
	RuleID  string          `msgpack:"i"`
	Actions json.RawMessage `msgpack:"a"`
}

// decidePushRules handles the commands above; ok is false for other
// types. It is called from decide the way decideUserData is.
func (x *applyCtx) decidePushRules() (res *Result, ok bool, err error) {
	switch x.cmd.Type {
	case CmdPushRulePut:
		res, err = x.pushRulePut()
	case CmdPushRuleDelete:
		res, err = x.pushRuleDelete()
	case CmdPushRuleEnabled:
		res, err = x.pushRuleEnabled()
	case CmdPushRuleActions:
		res, err = x.pushRuleActions()
	default:
		return nil, false, nil
	}
	return res, true, err
}

// pushRuleRejection maps a validation error of package pushrules.
func pushRuleRejection(err error) *Rejection {
	if errors.Is(err, pushrules.ErrBadJSON) {
		return reject(KindBadJSON, "%v", err)
	}
	return reject(KindInvalidParam, "%v", err)
}

func (x *applyCtx) pushRulePut() (*Result, error) {
	var p PushRulePut
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	actions, conds, pattern, err := pushrules.NormalizeRule(p.Kind, p.RuleID, p.Actions, p.Conditions, p.Pattern)
	if err != nil {
		return &Result{Err: pushRuleRejection(err)}, nil
	}
	u, err := pushrules.GetUser(x.b, x.cmd.Actor)
	if err != nil {
		return nil, err
	}
	for _, rel := range []string{p.Before, p.After} {
		if rel != "" && (rel == p.RuleID || !u.HasRule(p.Kind, rel)) {
			return &Result{Err: reject(KindInvalidParam, "before/after rule not found: %s", rel)}, nil
		}
	}
	return &Result{}, x.emit(facts.TypePushRuleSet, &facts.PushRuleSet{
		UserID: x.cmd.Actor, Kind: p.Kind, RuleID: p.RuleID, Actions: actions, Conditions: conds, Pattern: pattern,
		Before: p.Before, After: p.After,
	})
}

func (x *applyCtx) pushRuleDelete() (*Result, error) {
	var p PushRuleDelete
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	if !pushrules.ValidKind(p.Kind) {
		return &Result{Err: reject(KindInvalidParam, "unknown rule kind %q", p.Kind)}, nil
	}
	if pushrules.IsDefaultRule(p.Kind, p.RuleID) {
		return &Result{Err: reject(KindInvalidParam, "server-default rules cannot be deleted")}, nil
	}
	u, err := pushrules.GetUser(x.b, x.cmd.Actor)
	if err != nil {
		return nil, err
	}
	if !u.HasRule(p.Kind, p.RuleID) {
		return &Result{Err: reject(KindNotFound, "The push rule was not found.")}, nil
	}
	return &Result{}, x.emit(facts.TypePushRuleDeleted, &facts.PushRuleDeleted{UserID: x.cmd.Actor, Kind: p.Kind, RuleID: p.RuleID})
}

// ruleExists refuses a rule the actor does not have (their own or a
// server-default one).
func (x *applyCtx) ruleExists(kind, ruleID string) (*Rejection, error) {
	if !pushrules.ValidKind(kind) {
		return reject(KindInvalidParam, "unknown rule kind %q", kind), nil
	}
	if pushrules.IsDefaultRule(kind, ruleID) {
		return nil, nil
	}
	u, err := pushrules.GetUser(x.b, x.cmd.Actor)
	if err != nil {
		return nil, err
	}
	if !u.HasRule(kind, ruleID) {
		return reject(KindNotFound, "The push rule was not found."), nil
	}
	return nil, nil
}

func (x *applyCtx) pushRuleEnabled() (*Result, error) {
	var p PushRuleEnabled
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	if rej, err := x.ruleExists(p.Kind, p.RuleID); rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	return &Result{}, x.emit(facts.TypePushRuleEnabled, &facts.PushRuleEnabled{UserID: x.cmd.Actor, Kind: p.Kind, RuleID: p.RuleID, Enabled: p.Enabled})
}

func (x *applyCtx) pushRuleActions() (*Result, error) {
	var p PushRuleActions
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	actions, err := pushrules.NormalizeActions(p.Actions)
	if err != nil {
		return &Result{Err: pushRuleRejection(err)}, nil
	}
	if rej, err := x.ruleExists(p.Kind, p.RuleID); rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	return &Result{}, x.emit(facts.TypePushRuleActions, &facts.PushRuleActions{UserID: x.cmd.Actor, Kind: p.Kind, RuleID: p.RuleID, Actions: actions})
}
