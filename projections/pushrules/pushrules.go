package pushrules

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Prefix is the key space of this projection.
const Prefix byte = 0x91

const (
	tagUser byte = 'u' // u userID -> UserRules
)

func userKey(user string) []byte { return projections.NewKey(Prefix, tagUser).Str(user) }

// The rule kinds, in the order they are checked.
const (
	KindOverride  = "override"
	KindContent   = "content"
	KindRoom      = "room"
	KindSender    = "sender"
	KindUnderride = "underride"
)

// Kinds lists the rule kinds in priority order.
var Kinds = []string{KindOverride, KindContent, KindRoom, KindSender, KindUnderride}

// ValidKind reports whether kind is one of the spec's rule kinds.
func ValidKind(kind string) bool { return slices.Contains(Kinds, kind) }

// Rule is one push rule, stored (user-defined rules) and rendered (both).
type Rule struct {
	RuleID  string          `msgpack:"i" json:"rule_id"`
	Default bool            `msgpack:"-" json:"default"`
	Enabled bool            `msgpack:"e" json:"enabled"`
	Actions json.RawMessage `msgpack:"a" json:"actions"`
	// Conditions: override and underride rules only ([] when none).
	Conditions json.RawMessage `msgpack:"c,omitempty" json:"conditions,omitempty"`
	// Pattern: content rules only.
	Pattern *string `msgpack:"p,omitempty" json:"pattern,omitempty"`
}

// DefaultChange is a user's change to one server-default rule.
type DefaultChange struct {
	Kind    string          `msgpack:"k"`
	RuleID  string          `msgpack:"i"`
	Enabled *bool           `msgpack:"e,omitempty"`
	Actions json.RawMessage `msgpack:"a,omitempty"`
}

// UserRules is everything one user changed: their own rules per kind, most
// important first, and their changes to server-default rules ordered by
// (kind, rule ID). Slices, not maps, so that the stored bytes are
// deterministic.
type UserRules struct {
	Override  []Rule          `msgpack:"o,omitempty"`
	Content   []Rule          `msgpack:"c,omitempty"`
	Room      []Rule          `msgpack:"r,omitempty"`
	Sender    []Rule          `msgpack:"s,omitempty"`
	Underride []Rule          `msgpack:"n,omitempty"`
	Defaults  []DefaultChange `msgpack:"d,omitempty"`
	// Seq is the position of the user's latest change, for /sync.
	Seq uint64 `msgpack:"q"`
}

// list returns the user's rules of kind (nil for an unknown kind).
func (u *UserRules) list(kind string) *[]Rule {
	switch kind {
	case KindOverride:
		return &u.Override
	case KindContent:
		return &u.Content
	case KindRoom:
		return &u.Room
	case KindSender:
		return &u.Sender
	case KindUnderride:
		return &u.Underride
	}
	return nil
}

// Rules returns the user's own rules of kind, most important first.
func (u *UserRules) Rules(kind string) []Rule {
	if l := u.list(kind); l != nil {
		return *l
	}
	return nil
}

// HasRule reports whether the user defined a rule (kind, id).
func (u *UserRules) HasRule(kind, id string) bool { return indexOf(u.Rules(kind), id) >= 0 }

func indexOf(rules []Rule, id string) int {
	return slices.IndexFunc(rules, func(r Rule) bool { return r.RuleID == id })
}

// change returns the user's change to a default rule, creating it.
func (u *UserRules) change(kind, id string) *DefaultChange {
	i, found := slices.BinarySearchFunc(u.Defaults, [2]string{kind, id}, cmpChange)
	if !found {
		u.Defaults = slices.Insert(u.Defaults, i, DefaultChange{Kind: kind, RuleID: id})
	}
	return &u.Defaults[i]
}

// Projection folds push rule records.
type Projection struct{}

func (Projection) Name() string    { return "pushrules" }
func (Projection) Version() uint32 { return 1 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record. The state machine checked every record against
// the state it folds into (the rule exists, before/after name user rules),
// so a record that does not fit is a bug, not input.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	var user string
	var edit func(u *UserRules) error
	switch rec.Type {
	case facts.TypePushRuleSet:
		var f facts.PushRuleSet
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		user, edit = f.UserID, func(u *UserRules) error { return u.set(&f) }
	case facts.TypePushRuleDeleted:
		var f facts.PushRuleDeleted
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		user, edit = f.UserID, func(u *UserRules) error {
			l := u.list(f.Kind)
			if l == nil {
				return fmt.Errorf("delete push rule of unknown kind %q", f.Kind)
			}
			if i := indexOf(*l, f.RuleID); i >= 0 {
				*l = slices.Delete(*l, i, i+1)
			}
			return nil
		}
	case facts.TypePushRuleEnabled:
		var f facts.PushRuleEnabled
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		user, edit = f.UserID, func(u *UserRules) error {
			if IsDefaultID(f.RuleID) {
				en := f.Enabled
				u.change(f.Kind, f.RuleID).Enabled = &en
				return nil
			}
			return u.edit(f.Kind, f.RuleID, func(r *Rule) { r.Enabled = f.Enabled })
		}
	case facts.TypePushRuleActions:
		var f facts.PushRuleActions
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		user, edit = f.UserID, func(u *UserRules) error {
			if IsDefaultID(f.RuleID) {
				u.change(f.Kind, f.RuleID).Actions = f.Actions
				return nil
			}
			return u.edit(f.Kind, f.RuleID, func(r *Rule) { r.Actions = f.Actions })
		}
	default:
		return nil
	}
	u, err := GetUser(w, user)
	if err != nil {
		return err
	}
	if err := edit(u); err != nil {
		return fmt.Errorf("push rules of %s at %d: %w", user, rec.Seq, err)
	}
	u.Seq = rec.Seq
	return projections.SetMsgpack(w, userKey(user), u)
}

func (u *UserRules) edit(kind, id string, fn func(*Rule)) error {
	l := u.list(kind)
	if l == nil {
		return fmt.Errorf("unknown kind %q", kind)
	}
	i := indexOf(*l, id)
	if i < 0 {
		return fmt.Errorf("no rule %s/%s", kind, id)
	}
	fn(&(*l)[i])
	return nil
}

// set creates or replaces a user rule and places it (see
// facts.PushRuleSet).
func (u *UserRules) set(f *facts.PushRuleSet) error {
	l := u.list(f.Kind)
	if l == nil {
		return fmt.Errorf("unknown kind %q", f.Kind)
	}
	r := Rule{RuleID: f.RuleID, Enabled: true, Actions: f.Actions, Conditions: f.Conditions, Pattern: f.Pattern}
	at := indexOf(*l, f.RuleID)
	if at >= 0 {
		r.Enabled = (*l)[at].Enabled
		if f.Before == "" && f.After == "" {
			(*l)[at] = r
			return nil
		}
		*l = slices.Delete(*l, at, at+1)
	}
	pos := 0 // a new rule is the most important of its kind
	switch {
	case f.Before != "":
		if pos = indexOf(*l, f.Before); pos < 0 {
			return fmt.Errorf("before rule %q not found", f.Before)
		}
	case f.After != "":
		if pos = indexOf(*l, f.After); pos < 0 {
			return fmt.Errorf("after rule %q not found", f.After)
		}
		pos++
	}
	*l = slices.Insert(*l, pos, r)
	return nil
}

// GetUser returns what the user changed (an empty value if nothing).
func GetUser(r pebble.Reader, user string) (*UserRules, error) {
	u, err := projections.Lookup[UserRules](r, userKey(user))
	if err != nil {
		return nil, err
	}
	if u == nil {
		u = &UserRules{}
	}
	return u, nil
}

// ChangedAt is the position of the user's latest push rule change (0 if
// they never changed anything).
func ChangedAt(r pebble.Reader, user string) (uint64, error) {
	u, err := projections.Lookup[UserRules](r, userKey(user))
	if err != nil || u == nil {
		return 0, err
	}
	return u.Seq, nil
}

// Ruleset is a user's full ruleset as the spec renders it: every kind in
// priority order.
type Ruleset struct {
	Override  []Rule `json:"override"`
	Content   []Rule `json:"content"`
	Room      []Rule `json:"room"`
	Sender    []Rule `json:"sender"`
	Underride []Rule `json:"underride"`
}

// Rules returns the rules of kind in priority order.
func (rs *Ruleset) Rules(kind string) []Rule {
	switch kind {
	case KindOverride:
		return rs.Override
	case KindContent:
		return rs.Content
	case KindRoom:
		return rs.Room
	case KindSender:
		return rs.Sender
	case KindUnderride:
		return rs.Underride
	}
	return nil
}

// Find returns the rule (kind, id), or nil.
func (rs *Ruleset) Find(kind, id string) *Rule {
	rules := rs.Rules(kind)
	if i := indexOf(rules, id); i >= 0 {
		return &rules[i]
	}
	return nil
}

// Load returns the user's full ruleset: the server-default rules with the
// user's changes, merged with the user's own rules.
func Load(r pebble.Reader, user string) (*Ruleset, error) {
	u, err := GetUser(r, user)
	if err != nil {
		return nil, err
	}
	return Merge(user, u), nil
}

// Merge builds the full ruleset of user from their stored changes:
// .m.rule.master, the user's rules, then the server-default rules, per
// kind.
func Merge(user string, u *UserRules) *Ruleset {
	d := defaultsFor(user)
	apply := func(kind string, rules []Rule) []Rule {
		out := make([]Rule, 0, len(rules))
		for _, r := range rules {
			if i, ok := slices.BinarySearchFunc(u.Defaults, [2]string{kind, r.RuleID}, cmpChange); ok {
				c := u.Defaults[i]
				if c.Enabled != nil {
					r.Enabled = *c.Enabled
				}
				if c.Actions != nil {
					r.Actions = c.Actions
				}
			}
			out = append(out, r)
		}
		return out
	}
	override := apply(KindOverride, d.prepend)
	override = append(override, u.Override...)
	override = append(override, apply(KindOverride, d.Override)...)
	return &Ruleset{
		Override:  override,
		Content:   append(slices.Clone(u.Content), apply(KindContent, d.Content)...),
		Room:      append([]Rule{}, u.Room...),
		Sender:    append([]Rule{}, u.Sender...),
		Underride: append(slices.Clone(u.Underride), apply(KindUnderride, d.Underride)...),
	}
}

func cmpChange(d DefaultChange, k [2]string) int {
	if d.Kind != k[0] {
		if d.Kind < k[0] {
			return -1
		}
		return 1
	}
	switch {
	case d.RuleID < k[1]:
		return -1
	case d.RuleID > k[1]:
		return 1
	}
	return 0
}
