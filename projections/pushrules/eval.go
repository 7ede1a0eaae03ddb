package pushrules

import (
	"bytes"
	"encoding/json"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"math/bits"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/cockroachdb/pebble/v2"
	"go.mau.fi/util/glob"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	mpr "maunium.net/go/mautrix/pushrules"
)

// Event is a room event prepared once for evaluation against many users'
// rulesets.
type Event struct {
	mx       event.Event // by value: one allocation less per event
	mentions bool        // content has m.mentions: legacy mention rules are off
	// generic is, for rulesets made of the unchanged server-default rules,
	// the index of the first rule that is not per-member and matches (the
	// ruleset's length if none), computed by the first such Match (-1
	// before). An Event is matched in one room state (the room as it is
	// after the event), so this is the same for every member.
	generic int
	// sharedMatch is the rule at generic (nil if none), once computed.
	sharedMatch *Match
	// body is content.body when it is a string (hasBody), read once:
	// every member's legacy mention rules read it. bodyASCII: it is ASCII
	// (the literal word matching applies). lowerBody is it in lower case
	// once lowered (matchBody).
	body      string
	hasBody   bool
	bodyASCII bool
	lowered   bool
	lowerBody string
	// live is, for rulesets of unchanged server-default rules, the set
	// (bit i: rule i) of per-member rules ranked above generic that can
	// match some member (see planPerMember); planned once it is computed.
	// Most events rule out every per-member rule but the legacy mention
	// rules this way, so a member costs the few checks of their name.
	live    uint64
	planned bool
}

// contentOptions parse an event's content as the state machine stored
// it: canonical JSON (built and hashed as such), so names are unique and
// strings valid UTF-8, and those checks, a large part of the parse, are
// skipped. Every event of a room is parsed here, once per fold.
var contentOptions = jsonv2.JoinOptions(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))

// NewEvent prepares an event. Content that is not a JSON object has no
// properties for conditions to match.
func NewEvent(roomID, sender, typ string, stateKey *string, content json.RawMessage) *Event {
	var raw map[string]any
	_ = jsonv2.Unmarshal(content, &raw, contentOptions)
	_, mentions := raw["m.mentions"]
	body, hasBody := raw["body"].(string)
	return &Event{
		mx: event.Event{
			Type: event.Type{Type: typ}, Sender: id.UserID(sender), RoomID: id.RoomID(roomID), StateKey: stateKey,
			Content: event.Content{VeryRaw: content, Raw: raw},
		},
		mentions:  mentions,
		generic:   -1,
		body:      body,
		hasBody:   hasBody,
		bodyASCII: isASCII(body),
	}
}

// Match is the rule that matched an event and what its actions mean.
type Match struct {
	Kind    string
	RuleID  string
	Actions json.RawMessage
	// Notify: the actions contain notify. Highlight: they set the
	// highlight tweak (true when it has no value).
	Notify    bool
	Highlight bool
}

// compiledRule is a rule ready to match: conditions decoded, actions read.
type compiledRule struct {
	kind      string
	id        string
	enabled   bool
	actions   json.RawMessage
	notify    bool
	highlight bool
	conds     []*mpr.PushCondition
	pattern   string
	// globs[i] is conds[i]'s compiled pattern (event_match only);
	// patternGlob the content rule's.
	globs       []*matcher
	patternGlob *matcher
	// paths[i] is conds[i]'s key, split once (the key-reading kinds).
	paths []propPath
	// counts[i] is conds[i]'s room_member_count comparison, parsed once.
	counts []memberCount
	broken bool // conditions that do not decode never match
	// placeholder: a server-default rule naming its owner.
	placeholder bool
	// perMember: the rule's outcome depends on whose it is (it names its
	// owner or reads their display name); every other condition reads only
	// the event and the room, the same for every member.
	perMember bool
	// ownerConds[i]: conds[i] is one of those (a placeholder or
	// contains_display_name); the others read only the event and the room.
	ownerConds []bool
}

func compileRule(kind string, r *Rule) compiledRule {
	c := compiledRule{kind: kind, id: r.RuleID, enabled: r.Enabled}
	c.setActions(r.Actions)
	if len(r.Conditions) > 0 {
		if err := json.Unmarshal(r.Conditions, &c.conds); err != nil {
			c.broken = true
		}
		for _, cond := range c.conds {
			if cond == nil {
				c.broken = true
			}
		}
	}
	if r.Pattern != nil {
		c.pattern = *r.Pattern
	}
	c.placeholder = bytes.Contains(r.Conditions, []byte(userPlaceholder)) || c.pattern == localpartPlaceholder
	c.ownerConds = make([]bool, len(c.conds))
	for i, cond := range c.conds {
		c.ownerConds[i] = cond != nil && (cond.Kind == mpr.KindContainsDisplayName ||
			c.placeholder && (cond.Pattern == userPlaceholder || cond.Value == userPlaceholder))
	}
	c.perMember = c.placeholder || slices.Contains(c.ownerConds, true)
	c.compileGlobs()
	return c
}

// compileGlobs (re)compiles the rule's patterns.
func (c *compiledRule) compileGlobs() {
	c.globs = make([]*matcher, len(c.conds))
	c.paths = make([]propPath, len(c.conds))
	c.counts = make([]memberCount, len(c.conds))
	for i, cond := range c.conds {
		if cond == nil {
			continue
		}
		c.paths[i] = parsePath(cond.Key)
		if cond.Kind == mpr.KindRoomMemberCount {
			c.counts[i] = parseMemberCount(cond.MemberCountCondition)
		}
		if cond.Kind == mpr.KindEventMatch {
			c.globs[i] = cachedGlob(cond.Key == "content.body", cond.Pattern)
		}
	}
	if c.kind == KindContent {
		c.patternGlob = cachedGlob(true, c.pattern)
	}
}

func (c *compiledRule) setActions(raw json.RawMessage) {
	c.actions, c.notify, c.highlight = raw, false, false
	var items []json.RawMessage
	_ = json.Unmarshal(raw, &items)
	for _, it := range items {
		var s string
		if json.Unmarshal(it, &s) == nil {
			// dont_notify and coalesce are historical and ignored.
			c.notify = c.notify || s == "notify"
			continue
		}
		var tweak struct {
			SetTweak string           `json:"set_tweak"`
			Value    *json.RawMessage `json:"value"`
		}
		if json.Unmarshal(it, &tweak) != nil || tweak.SetTweak != "highlight" {
			continue
		}
		c.highlight = tweak.Value == nil || bytes.Equal(bytes.TrimSpace(*tweak.Value), []byte("true"))
	}
}

// withOwner substitutes the owner into a server-default rule's
// placeholders, copying what it changes (the base rules are shared).
func (c compiledRule) withOwner(user string) compiledRule {
	if !c.placeholder {
		return c
	}
	if c.pattern == localpartPlaceholder {
		c.pattern = Localpart(user)
	}
	conds := make([]*mpr.PushCondition, len(c.conds))
	for i, cond := range c.conds {
		if cond.Pattern == userPlaceholder || cond.Value == userPlaceholder {
			cp := *cond
			if cp.Pattern == userPlaceholder {
				cp.Pattern = user
			}
			if cp.Value == userPlaceholder {
				cp.Value = user
			}
			cond = &cp
		}
		conds[i] = cond
	}
	c.conds = conds
	c.compileGlobs()
	return c
}

// compiledDefaults are the server-default rules compiled once, with
// placeholders.
var compiledDefaults = func() (out struct{ prepend, override, content, underride []compiledRule }) {
	compileAll := func(kind string, rules []Rule) []compiledRule {
		l := make([]compiledRule, len(rules))
		for i := range rules {
			l[i] = compileRule(kind, &rules[i])
		}
		return l
	}
	out.prepend = compileAll(KindOverride, baseDefaults.prepend)
	out.override = compileAll(KindOverride, baseDefaults.Override)
	out.content = compileAll(KindContent, baseDefaults.Content)
	out.underride = compileAll(KindUnderride, baseDefaults.Underride)
	return out
}()

// Evaluator is one user's ruleset, ready to match events.
type Evaluator struct {
	user  string
	rules []compiledRule // every kind, in priority order
	// defaults: the ruleset is the unchanged server-default rules, so its
	// rules differ from any other such ruleset's only in the per-member
	// ones (see Match).
	defaults bool
}

// LoadEvaluator reads the user's rules and builds their evaluator.
func LoadEvaluator(r pebble.Reader, user string) (*Evaluator, error) {
	u, err := GetUser(r, user)
	if err != nil {
		return nil, err
	}
	return evaluatorOf(user, u), nil
}

// evaluatorOf builds user's evaluator. Most users never change a rule:
// their evaluator is a pure function of their user ID and is cached
// (bounded), which cannot affect what is decided.
func evaluatorOf(user string, u *UserRules) *Evaluator {
	if !u.unchanged() {
		return NewEvaluator(user, u)
	}
	defaultEvaluators.Lock()
	e := defaultEvaluators.m[user]
	defaultEvaluators.Unlock()
	if e != nil {
		return e
	}
	e = NewEvaluator(user, u)
	defaultEvaluators.Lock()
	if len(defaultEvaluators.m) >= maxDefaultEvaluators {
		defaultEvaluators.m = map[string]*Evaluator{}
	}
	defaultEvaluators.m[user] = e
	defaultEvaluators.Unlock()
	return e
}

// DefaultEvaluator returns the evaluator of a user who has only the
// server-default rules.
func DefaultEvaluator(user string) *Evaluator { return evaluatorOf(user, &UserRules{}) }

// HasOwnRules reports whether the user changed any push rule (their
// ruleset is not just the server-default rules).
func HasOwnRules(r pebble.Reader, user string) (bool, error) {
	u, err := GetUser(r, user)
	if err != nil {
		return false, err
	}
	return !u.unchanged(), nil
}

// defaultEvaluators caches the evaluators of users with only the
// server-default rules. An Evaluator is never modified once built.
var defaultEvaluators = struct {
	sync.Mutex
	m map[string]*Evaluator
}{m: map[string]*Evaluator{}}

const maxDefaultEvaluators = 16384

// unchanged reports whether the user has only the server-default rules.
func (u *UserRules) unchanged() bool {
	return len(u.Override)+len(u.Content)+len(u.Room)+len(u.Sender)+len(u.Underride)+len(u.Defaults) == 0
}

// NewEvaluator builds the evaluator of user's full ruleset (the same merge
// as Merge, compiled).
func NewEvaluator(user string, u *UserRules) *Evaluator {
	d := &compiledDefaults
	e := &Evaluator{user: user, rules: make([]compiledRule, 0, len(d.prepend)+len(d.override)+len(d.content)+len(d.underride)+
		len(u.Override)+len(u.Content)+len(u.Room)+len(u.Sender)+len(u.Underride))}
	defaults := func(kind string, base []compiledRule) {
		for _, c := range base {
			c = c.withOwner(user)
			if i, ok := slices.BinarySearchFunc(u.Defaults, [2]string{kind, c.id}, cmpChange); ok {
				ch := u.Defaults[i]
				if ch.Enabled != nil {
					c.enabled = *ch.Enabled
				}
				if ch.Actions != nil {
					c.setActions(ch.Actions)
				}
			}
			e.rules = append(e.rules, c)
		}
	}
	own := func(kind string, rules []Rule) {
		for i := range rules {
			e.rules = append(e.rules, compileRule(kind, &rules[i]))
		}
	}
	defaults(KindOverride, d.prepend)
	own(KindOverride, u.Override)
	defaults(KindOverride, d.override)
	own(KindContent, u.Content)
	defaults(KindContent, d.content)
	own(KindRoom, u.Room)
	own(KindSender, u.Sender)
	own(KindUnderride, u.Underride)
	defaults(KindUnderride, d.underride)
	e.defaults = u.unchanged()
	return e
}

// Match returns the highest-priority enabled rule matching ev, or nil.
// room supplies what room-dependent conditions read (the owner's display
// name, the member count, and, if it implements
// mautrix's PowerLevelfulRoom, the power levels).
//
// For a ruleset of unchanged server-default rules, the rules that are the
// same for every member are evaluated once per event (ev.generic): a
// member's Match only tries the per-member rules ranked above the first of
// them that matched. The result is the same as trying every rule in order.
func (e *Evaluator) Match(room mpr.Room, ev *Event) *Match {
	if !e.defaults {
		for i := range e.rules {
			if c := &e.rules[i]; c.usable(ev) && c.matches(room, ev) {
				return c.match()
			}
		}
		return nil
	}
	if m := e.PerMember(room, ev); m != nil {
		return m
	}
	return e.shared(room, ev)
}

// Defaults reports whether the ruleset is the unchanged server-default
// rules (see Shared and PerMember).
func (e *Evaluator) Defaults() bool { return e.defaults }

// Shared returns what the server-default rules give ev for any member
// whom no per-member rule matches (nil: no rule matches): the same for
// every such member, so it is evaluated once per event. room must be one
// member's view of the room; only its member-independent parts are read.
func Shared(room mpr.Room, ev *Event) *Match {
	return sharedEvaluator.shared(room, ev)
}

// sharedEvaluator is a ruleset of server-default rules; whose it is does
// not matter to the rules that are not per-member.
var sharedEvaluator = NewEvaluator("", &UserRules{})

func (e *Evaluator) shared(room mpr.Room, ev *Event) *Match {
	if ev.generic < 0 {
		ev.generic = len(e.rules)
		for i := range e.rules {
			if c := &e.rules[i]; !c.perMember && c.usable(ev) && c.matches(room, ev) {
				ev.generic = i
				break
			}
		}
		if ev.generic < len(e.rules) {
			ev.sharedMatch = e.rules[ev.generic].match()
		}
	}
	return ev.sharedMatch
}

// PerMember returns, for a ruleset of unchanged server-default rules, the
// per-member rule (one naming the owner, their display name or their
// localpart) ranked above Shared's that matches ev, or nil when the
// owner gets the shared result. For other rulesets it returns nil.
func (e *Evaluator) PerMember(room mpr.Room, ev *Event) *Match {
	if !e.defaults {
		return nil
	}
	for live := planPerMember(room, ev); live != 0; live &= live - 1 {
		if c := &e.rules[bits.TrailingZeros64(live)]; c.matches(room, ev) {
			return c.match()
		}
	}
	return nil
}

// AnyPerMember reports whether PerMember can return a match for any
// member with unchanged server-default rules: when it cannot, the caller
// need not build their evaluators.
func AnyPerMember(room mpr.Room, ev *Event) bool {
	if ev.planned { // inlined: the fold asks once per member
		return ev.live != 0
	}
	return planPerMember(room, ev) != 0
}

// planPerMember returns (computing it once per event) ev.live: the
// per-member rules ranked above Shared's match that some member's
// ruleset of unchanged server-default rules could match. Every such
// ruleset has the same rules in the same order (sharedEvaluator's) but
// for the owner's user ID, localpart and display name, so what does not
// read them is decided once here:
//   - whether the rule is usable for ev at all;
//   - its conditions before the first one that reads the owner: they are
//     evaluated in order and short-circuit, so if one fails the rule fails
//     for everyone, and evaluating them here has the same effects as for
//     the first member;
//   - whether that first owner condition (or a content rule) can hold for
//     anyone: it cannot when the property it compares is absent or of the
//     wrong type, whatever the owner.
//
// A rule that stays live is matched in full for each member, so the
// result is the same as PerMember trying every per-member rule in order.
func planPerMember(room mpr.Room, ev *Event) uint64 {
	e := sharedEvaluator
	e.shared(room, ev)
	if ev.planned {
		return ev.live
	}
	ev.planned = true
	for i := 0; i < ev.generic; i++ {
		if c := &e.rules[i]; c.perMember && c.usable(ev) && c.mayMatchSomeone(room, ev) {
			ev.live |= 1 << i
		}
	}
	return ev.live
}

// ev.live has a bit per server-default rule.
func init() {
	if len(sharedEvaluator.rules) > 64 {
		panic("pushrules: more than 64 server-default rules; Event.live must grow")
	}
}

// mayMatchSomeone reports whether the per-member rule c (any owner's copy)
// might match ev for some owner; false only when it matches for none (see
// planPerMember).
func (c *compiledRule) mayMatchSomeone(room mpr.Room, ev *Event) bool {
	switch c.kind {
	case KindContent:
		return ev.hasBody
	case KindOverride, KindUnderride:
	default:
		return true
	}
	for i, cond := range c.conds {
		if !c.ownerConds[i] {
			if !c.condMatches(i, cond, room, ev) {
				return false
			}
			continue
		}
		switch cond.Kind {
		case mpr.KindEventMatch:
			_, ok := ev.propertyString(c.paths[i])
			return ok
		case mpr.KindEventPropertyContains:
			v, _ := ev.property(c.paths[i])
			_, isArr := v.([]any)
			return isArr
		case mpr.KindContainsDisplayName:
			return ev.hasBody
		}
		return true
	}
	return true
}

// usable reports whether the rule takes part in matching ev.
func (c *compiledRule) usable(ev *Event) bool {
	return c.enabled && !c.broken && !(ev.mentions && legacyMentionRules[c.id])
}

func (c *compiledRule) match() *Match {
	return &Match{Kind: c.kind, RuleID: c.id, Actions: c.actions, Notify: c.notify, Highlight: c.highlight}
}

func (c *compiledRule) matches(room mpr.Room, ev *Event) bool {
	switch c.kind {
	case KindOverride, KindUnderride:
		for i, cond := range c.conds {
			if !c.condMatches(i, cond, room, ev) {
				return false
			}
		}
		return true
	case KindContent:
		return ev.hasBody && c.patternGlob != nil && c.patternGlob.matchBody(ev)
	case KindRoom:
		return c.id == string(ev.mx.RoomID)
	case KindSender:
		return c.id == string(ev.mx.Sender)
	}
	return false
}

// condMatches evaluates one condition. The kinds that are evaluated per
// member (event_property_is/contains for mentions, contains_display_name)
// and event_match are evaluated here with the key split once, with
// mautrix's semantics; the rest by mautrix. A condition that panics (it
// should not, given validation) does not match, the same way on every
// node.
func (c *compiledRule) condMatches(i int, cond *mpr.PushCondition, room mpr.Room, ev *Event) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	switch cond.Kind {
	case mpr.KindEventMatch:
		return eventMatch(c.paths[i], c.globs[i], ev)
	case mpr.KindEventPropertyIs:
		v, ok := ev.property(c.paths[i])
		return ok && valueEquals(v, cond.Value)
	case mpr.KindEventPropertyContains:
		v, ok := ev.property(c.paths[i])
		arr, isArr := v.([]any)
		return ok && isArr && slices.ContainsFunc(arr, func(item any) bool { return valueEquals(item, cond.Value) })
	case mpr.KindContainsDisplayName:
		return containsDisplayName(ev, room.GetOwnDisplayname())
	case mpr.KindRoomMemberCount:
		return c.counts[i].matches(room.GetMemberCount())
	}
	return cond.Match(room, &ev.mx)
}

// memberCount is a room_member_count condition's "is": an operator (==
// when absent) and a count; ok false when it does not parse, which never
// matches (as in mautrix, whose regexp it follows).
type memberCount struct {
	op    string
	count int
	ok    bool
}

func parseMemberCount(is string) memberCount {
	op := ""
	for _, prefix := range []string{"==", ">=", "<=", ">", "<"} {
		if strings.HasPrefix(is, prefix) {
			op, is = prefix, is[len(prefix):]
			break
		}
	}
	if is == "" || strings.Trim(is, "0123456789") != "" {
		return memberCount{}
	}
	n, err := strconv.Atoi(is)
	return memberCount{op: op, count: n, ok: err == nil}
}

func (m memberCount) matches(n int) bool {
	if !m.ok {
		return false
	}
	switch m.op {
	case "==", "":
		return n == m.count
	case ">":
		return n > m.count
	case ">=":
		return n >= m.count
	case "<":
		return n < m.count
	case "<=":
		return n <= m.count
	}
	return false
}

// valueEquals is mautrix's comparison of event_property_is/contains:
// numbers compare as integers (JSON decodes them as floats), anything else
// with ==.
func valueEquals(a, b any) bool {
	fa, aNum := a.(float64)
	switch bv := b.(type) {
	case float64:
		return aNum && int64(fa) == int64(bv)
	case int:
		return aNum && int64(fa) == int64(bv)
	case int64:
		return aNum && int64(fa) == bv
	}
	return a == b
}

// containsDisplayName is mautrix's contains_display_name: the display
// name appears in the body with whitespace, punctuation or the body's
// start or end on both sides.
func containsDisplayName(ev *Event, name string) bool {
	if name == "" {
		return false
	}
	msg, ok := ev.body, ev.hasBody
	if !ok {
		return false
	}
	acceptable := func(r uint8) bool { return unicode.IsSpace(rune(r)) || unicode.IsPunct(rune(r)) }
	for index := strings.Index(msg, name); index != -1; index = strings.Index(msg, name) {
		if (index <= 0 || acceptable(msg[index-1])) && (index+len(name) >= len(msg) || acceptable(msg[index+len(name)])) {
			return true
		}
		msg = msg[index+len(name):]
	}
	return false
}

// eventMatch is the spec's event_match: a case-insensitive glob against
// the whole string value of key, or for content.body against any
// substring bounded by word boundaries. Absent and non-string values do not
// match.
func eventMatch(p propPath, m *matcher, ev *Event) bool {
	if m == nil {
		return false
	}
	s, ok := ev.propertyString(p)
	if !ok {
		return false
	}
	if p.isBody {
		return m.matchBody(ev) // s is ev.body
	}
	return m.match(s)
}

// propPath is a condition's dot-separated property path, split once (the
// spec's escaping: "\." is a literal dot, "\\" a backslash).
type propPath struct {
	top, rest string
	parts     []string // rest split, for content
	isBody    bool     // content.body
}

func parsePath(key string) propPath {
	top, rest, _ := strings.Cut(key, ".")
	p := propPath{top: top, rest: rest, isBody: key == "content.body"}
	if top == "content" {
		p.parts = splitPath(rest)
	}
	return p
}

// topField resolves the event's top-level string fields; named reports
// whether p names one.
func (ev *Event) topField(p propPath) (s string, ok, named bool) {
	switch p.top {
	case "type":
		return ev.mx.Type.Type, p.rest == "", true
	case "sender":
		return string(ev.mx.Sender), p.rest == "", true
	case "room_id":
		return string(ev.mx.RoomID), p.rest == "", true
	}
	return "", false, false
}

// property resolves a property path of the event.
func (ev *Event) property(p propPath) (any, bool) {
	if s, ok, named := ev.topField(p); named {
		return s, ok
	}
	switch p.top {
	case "state_key":
		if ev.mx.StateKey == nil || p.rest != "" {
			return nil, false
		}
		return *ev.mx.StateKey, true
	case "content":
		if ev.mx.Content.Raw == nil {
			return nil, false
		}
		return nestedGet(ev.mx.Content.Raw, p.parts)
	}
	return nil, false
}

// propertyString is property for a string value (ok false when absent or
// not a string), without boxing the top-level fields into an interface
// (an allocation per member and condition otherwise).
func (ev *Event) propertyString(p propPath) (string, bool) {
	if s, ok, named := ev.topField(p); named {
		return s, ok
	}
	v, ok := ev.property(p)
	s, isStr := v.(string)
	return s, ok && isStr
}

func splitPath(s string) []string {
	var parts []string
	var cur []byte
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			cur = append(cur, s[i])
		case s[i] == '.':
			parts = append(parts, string(cur))
			cur = cur[:0]
		default:
			cur = append(cur, s[i])
		}
	}
	return append(parts, string(cur))
}

// nestedGet walks path through nested objects. Like mautrix, when a part
// is missing it also tries it joined with the next part, so unescaped
// legacy keys ("content.m.relates_to.rel_type") still resolve.
func nestedGet(data map[string]any, path []string) (any, bool) {
	return nestedGetJoined(data, path[0], nil, path[1:])
}

// nestedGetJoined is nestedGet of the path whose first part is first, or
// when joined is not nil, first's parts joined by dots (joined's bytes;
// looking a []byte up as a string does not allocate, unlike building the
// joined string), followed by rest.
func nestedGetJoined(data map[string]any, first string, joined []byte, rest []string) (any, bool) {
	var v any
	var ok bool
	if joined != nil {
		v, ok = data[string(joined)]
	} else {
		v, ok = data[first]
	}
	if len(rest) == 0 {
		return v, ok
	}
	if ok {
		if m, isMap := v.(map[string]any); isMap {
			if v, ok := nestedGetJoined(m, rest[0], nil, rest[1:]); ok {
				return v, true
			}
		}
	}
	if joined == nil {
		var buf [64]byte
		joined = append(buf[:0], first...)
	}
	joined = append(append(joined, '.'), rest[0]...)
	return nestedGetJoined(data, "", joined, rest[1:])
}

// matcher is a compiled glob: a plain (wildcard-free, ASCII) pattern is
// compared without a regexp, which is what almost every rule holds (event
// types, the owner's localpart).
type matcher struct {
	re    *regexp.Regexp
	lit   string // lower-cased literal when re is nil
	words bool
	// unicode is the regexp form of a words literal, for non-ASCII values
	// (Unicode case folding can change lengths).
	unicode *regexp.Regexp
}

func (m *matcher) match(s string) bool {
	switch {
	case m.re != nil:
		return m.re.MatchString(s)
	case !m.words:
		return strings.EqualFold(s, m.lit)
	case !isASCII(s):
		return m.unicode != nil && m.unicode.MatchString(s)
	}
	return m.wordIn(strings.ToLower(s))
}

// matchBody is match of ev's body (which it must have): an event's body
// is matched against every member's localpart, so whether it is ASCII and
// its lower-case form are worked out once per event.
func (m *matcher) matchBody(ev *Event) bool {
	switch {
	case m.re != nil:
		return m.re.MatchString(ev.body)
	case !m.words:
		return strings.EqualFold(ev.body, m.lit)
	case !ev.bodyASCII:
		return m.unicode != nil && m.unicode.MatchString(ev.body)
	}
	if !ev.lowered {
		ev.lowerBody, ev.lowered = strings.ToLower(ev.body), true
	}
	return m.wordIn(ev.lowerBody)
}

// wordIn reports whether the words literal occurs in ls (ASCII, lower
// case) between word boundaries.
func (m *matcher) wordIn(ls string) bool {
	for off := 0; ; {
		i := strings.Index(ls[off:], m.lit)
		if i < 0 {
			return false
		}
		start, end := off+i, off+i+len(m.lit)
		if (start == 0 || !isWordByte(ls[start-1])) && (end == len(ls) || !isWordByte(ls[end])) {
			return true
		}
		off = start + 1
	}
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// globCache holds compiled glob patterns. It is bounded (cleared when
// full); it only memoises a pure function, so it cannot affect what is
// decided.
var globCache = struct {
	sync.Mutex
	m map[string]*matcher
}{m: map[string]*matcher{}}

const maxGlobCache = 4096

// cachedGlob compiles a glob: matching the whole value, or (words) any
// substring starting and ending at a word boundary (start or end of the
// value, or a character outside [A-Za-z0-9_]). nil if it does not compile.
func cachedGlob(words bool, pattern string) *matcher {
	key := "f" + pattern
	if words {
		key = "w" + pattern
	}
	globCache.Lock()
	m, ok := globCache.m[key]
	globCache.Unlock()
	if ok {
		return m
	}
	switch {
	case !strings.ContainsAny(pattern, "*?") && isASCII(pattern) && pattern != "":
		m = &matcher{lit: strings.ToLower(pattern), words: words}
		if words {
			m.unicode = wordRegexp(pattern)
		}
	case words:
		if re := wordRegexp(pattern); re != nil {
			m = &matcher{re: re, words: true}
		}
	default:
		if re := globRegexp(`(?is)^(?:`, pattern, `)$`); re != nil {
			m = &matcher{re: re}
		}
	}
	globCache.Lock()
	if len(globCache.m) >= maxGlobCache {
		globCache.m = map[string]*matcher{}
	}
	globCache.m[key] = m
	globCache.Unlock()
	return m
}

func wordRegexp(pattern string) *regexp.Regexp {
	return globRegexp(`(?is)(?:^|[^A-Za-z0-9_])(?:`, pattern, `)(?:[^A-Za-z0-9_]|$)`)
}

func globRegexp(prefix, pattern, suffix string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(prefix)
	if glob.ToRegexPattern(pattern, &b) != nil {
		return nil
	}
	b.WriteString(suffix)
	re, _ := regexp.Compile(b.String())
	return re
}
