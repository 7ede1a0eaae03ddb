package pushrules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// The server-default rules, in the spec's order (push.md, "Predefined
// Rules"), plus the legacy mention rules in the places Synapse keeps them.
// userPlaceholder and localpartPlaceholder stand for the rule owner's user
// ID and localpart; defaultsFor substitutes them.
const (
	userPlaceholder      = "@USER@"
	localpartPlaceholder = "@LOCALPART@"
)

// masterRule always comes first, before the user's override rules.
const masterRule = `{"rule_id":".m.rule.master","default":true,"enabled":false,"conditions":[],"actions":[]}`

const defaultOverride = `[
{"rule_id":".m.rule.suppress_notices","default":true,"enabled":true,
 "conditions":[{"kind":"event_match","key":"content.msgtype","pattern":"m.notice"}],"actions":[]},
{"rule_id":".m.rule.invite_for_me","default":true,"enabled":true,
 "conditions":[{"key":"type","kind":"event_match","pattern":"m.room.member"},
   {"key":"content.membership","kind":"event_match","pattern":"invite"},
   {"key":"state_key","kind":"event_match","pattern":"@USER@"}],
 "actions":["notify",{"set_tweak":"sound","value":"default"}]},
{"rule_id":".m.rule.member_event","default":true,"enabled":true,
 "conditions":[{"key":"type","kind":"event_match","pattern":"m.room.member"}],"actions":[]},
{"rule_id":".m.rule.is_user_mention","default":true,"enabled":true,
 "conditions":[{"kind":"event_property_contains","key":"content.m\\.mentions.user_ids","value":"@USER@"}],
 "actions":["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}]},
{"rule_id":".m.rule.contains_display_name","default":true,"enabled":true,
 "conditions":[{"kind":"contains_display_name"}],
 "actions":["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}]},
{"rule_id":".m.rule.is_room_mention","default":true,"enabled":true,
 "conditions":[{"kind":"event_property_is","key":"content.m\\.mentions.room","value":true},
   {"kind":"sender_notification_permission","key":"room"}],
 "actions":["notify",{"set_tweak":"highlight"}]},
{"rule_id":".m.rule.roomnotif","default":true,"enabled":true,
 "conditions":[{"kind":"event_match","key":"content.body","pattern":"@room"},
   {"kind":"sender_notification_permission","key":"room"}],
 "actions":["notify",{"set_tweak":"highlight"}]},
{"rule_id":".m.rule.tombstone","default":true,"enabled":true,
 "conditions":[{"kind":"event_match","key":"type","pattern":"m.room.tombstone"},
   {"kind":"event_match","key":"state_key","pattern":""}],
 "actions":["notify",{"set_tweak":"highlight"}]},
{"rule_id":".m.rule.reaction","default":true,"enabled":true,
 "conditions":[{"kind":"event_match","key":"type","pattern":"m.reaction"}],"actions":[]},
{"rule_id":".m.rule.room.server_acl","default":true,"enabled":true,
 "conditions":[{"kind":"event_match","key":"type","pattern":"m.room.server_acl"},
   {"kind":"event_match","key":"state_key","pattern":""}],"actions":[]},
{"rule_id":".m.rule.suppress_edits","default":true,"enabled":true,
 "conditions":[{"kind":"event_property_is","key":"content.m\\.relates_to.rel_type","value":"m.replace"}],"actions":[]}
]`

const defaultContent = `[
{"rule_id":".m.rule.contains_user_name","default":true,"enabled":true,"pattern":"@LOCALPART@",
 "actions":["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}]}
]`

const defaultUnderride = `[
{"rule_id":".m.rule.call","default":true,"enabled":true,
 "conditions":[{"key":"type","kind":"event_match","pattern":"m.call.invite"}],
 "actions":["notify",{"set_tweak":"sound","value":"ring"}]},
{"rule_id":".m.rule.encrypted_room_one_to_one","default":true,"enabled":true,
 "conditions":[{"kind":"room_member_count","is":"2"},{"kind":"event_match","key":"type","pattern":"m.room.encrypted"}],
 "actions":["notify",{"set_tweak":"sound","value":"default"}]},
{"rule_id":".m.rule.room_one_to_one","default":true,"enabled":true,
 "conditions":[{"kind":"room_member_count","is":"2"},{"kind":"event_match","key":"type","pattern":"m.room.message"}],
 "actions":["notify",{"set_tweak":"sound","value":"default"}]},
{"rule_id":".m.rule.message","default":true,"enabled":true,
 "conditions":[{"kind":"event_match","key":"type","pattern":"m.room.message"}],"actions":["notify"]},
{"rule_id":".m.rule.encrypted","default":true,"enabled":true,
 "conditions":[{"kind":"event_match","key":"type","pattern":"m.room.encrypted"}],"actions":["notify"]}
]`

// legacyMentionRules are disabled for events whose content has m.mentions
// (the spec, "Intentional mentions").
var legacyMentionRules = map[string]bool{
	".m.rule.contains_display_name": true,
	".m.rule.contains_user_name":    true,
	".m.rule.roomnotif":             true,
}

// defaultSet is the server-default rules of one kind group.
type defaultSet struct {
	prepend   []Rule // .m.rule.master
	Override  []Rule
	Content   []Rule
	Underride []Rule
}

// baseDefaults holds the rules with placeholders; it is never mutated.
var baseDefaults = func() defaultSet {
	var d defaultSet
	var master Rule
	for _, part := range []struct {
		raw  string
		into *[]Rule
	}{{defaultOverride, &d.Override}, {defaultContent, &d.Content}, {defaultUnderride, &d.Underride}} {
		if err := json.Unmarshal([]byte(part.raw), part.into); err != nil {
			panic(fmt.Sprintf("server-default push rules: %v", err))
		}
	}
	if err := json.Unmarshal([]byte(masterRule), &master); err != nil {
		panic(fmt.Sprintf("server-default push rules: %v", err))
	}
	d.prepend = []Rule{master}
	for _, l := range [][]Rule{d.prepend, d.Override, d.Content, d.Underride} {
		for i := range l {
			l[i].Default = true
			l[i].Actions = compact(l[i].Actions)
			l[i].Conditions = compact(l[i].Conditions)
		}
	}
	return d
}()

func compact(raw json.RawMessage) json.RawMessage {
	if raw == nil {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// Localpart returns the localpart of a user ID.
func Localpart(user string) string {
	lp, _, _ := strings.Cut(strings.TrimPrefix(user, "@"), ":")
	return lp
}

// jsonString returns s escaped for use inside a JSON string literal.
func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b[1 : len(b)-1]
}

// defaultsFor returns the server-default rules of user, placeholders
// substituted. Rules without placeholders share the base rules' bytes,
// which nobody mutates.
func defaultsFor(user string) defaultSet {
	subst := func(rules []Rule) []Rule {
		out := make([]Rule, len(rules))
		copy(out, rules)
		for i := range out {
			r := &out[i]
			if bytes.Contains(r.Conditions, []byte(userPlaceholder)) {
				r.Conditions = bytes.ReplaceAll(r.Conditions, []byte(userPlaceholder), jsonString(user))
			}
			if r.Pattern != nil && *r.Pattern == localpartPlaceholder {
				lp := Localpart(user)
				r.Pattern = &lp
			}
		}
		return out
	}
	return defaultSet{
		prepend:   subst(baseDefaults.prepend),
		Override:  subst(baseDefaults.Override),
		Content:   subst(baseDefaults.Content),
		Underride: subst(baseDefaults.Underride),
	}
}

// IsDefaultID reports whether a rule ID names a server-default rule (they
// all start with a dot).
func IsDefaultID(id string) bool { return strings.HasPrefix(id, ".") }

// IsDefaultRule reports whether (kind, id) is one of the server-default
// rules.
func IsDefaultRule(kind, id string) bool {
	var lists [][]Rule
	switch kind {
	case KindOverride:
		lists = [][]Rule{baseDefaults.prepend, baseDefaults.Override}
	case KindContent:
		lists = [][]Rule{baseDefaults.Content}
	case KindUnderride:
		lists = [][]Rule{baseDefaults.Underride}
	}
	for _, l := range lists {
		if indexOf(l, id) >= 0 {
			return true
		}
	}
	return false
}
