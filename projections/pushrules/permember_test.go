package pushrules

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	mpr "maunium.net/go/mautrix/pushrules"
)

// The per-event shortcuts of PerMember (planPerMember ruling rules out
// once per event, shared by every member) give what the plain evaluation
// gives: every per-member rule ranked above the shared match tried in
// order, and every rule tried in order, on a fresh Event per member.

// permRoom is one member's view of a room.
type permRoom struct {
	name  string
	count int
	power *event.PowerLevelsEventContent
}

func (r permRoom) GetOwnDisplayname() string                      { return r.name }
func (r permRoom) GetMemberCount() int                            { return r.count }
func (r permRoom) GetPowerLevels() *event.PowerLevelsEventContent { return r.power }

// refPerMember is PerMember before the shortcuts, with the conditions
// evaluated by refMatches.
func refPerMember(e *Evaluator, room permRoom, ev *Event) *Match {
	sharedEvaluator.shared(room, ev)
	for i := 0; i < ev.generic; i++ {
		if c := &e.rules[i]; c.perMember && c.usable(ev) && refMatches(c, room, ev) {
			return c.match()
		}
	}
	return nil
}

// fullWalk tries every rule in order.
func fullWalk(e *Evaluator, room permRoom, ev *Event) *Match {
	for i := range e.rules {
		if c := &e.rules[i]; c.usable(ev) && refMatches(c, room, ev) {
			return c.match()
		}
	}
	return nil
}

// refMatches is compiledRule.matches without the code the shortcuts
// touched: property lookups by refNestedGet, globs by their regexps,
// contains_display_name by mautrix.
func refMatches(c *compiledRule, room permRoom, ev *Event) bool {
	body, hasBody := ev.mx.Content.Raw["body"].(string)
	switch c.kind {
	case KindContent:
		re := refRegexp(true, c.pattern)
		return hasBody && re != nil && re.MatchString(body)
	case KindOverride, KindUnderride:
	default:
		return c.matches(room, ev)
	}
	prop := func(key string) (any, bool) {
		top, rest, _ := strings.Cut(key, ".")
		switch top {
		case "type":
			return ev.mx.Type.Type, rest == ""
		case "state_key":
			if ev.mx.StateKey == nil || rest != "" {
				return nil, false
			}
			return *ev.mx.StateKey, true
		case "content":
			return refNestedGet(ev.mx.Content.Raw, splitPath(rest))
		}
		panic("unexpected key " + key)
	}
	for i, cond := range c.conds {
		var ok bool
		switch cond.Kind {
		case mpr.KindContainsDisplayName:
			ok = cond.Match(room, &ev.mx)
		case mpr.KindEventMatch:
			v, found := prop(cond.Key)
			s, isStr := v.(string)
			re := refRegexp(cond.Key == "content.body", cond.Pattern)
			ok = found && isStr && re != nil && re.MatchString(s)
		case mpr.KindEventPropertyIs:
			v, found := prop(cond.Key)
			ok = found && valueEquals(v, cond.Value)
		case mpr.KindEventPropertyContains:
			v, found := prop(cond.Key)
			arr, isArr := v.([]any)
			ok = found && isArr && slices.ContainsFunc(arr, func(item any) bool { return valueEquals(item, cond.Value) })
		default:
			ok = c.condMatches(i, cond, room, ev)
		}
		if !ok {
			return false
		}
	}
	return true
}

// refRegexp is the regexp of a glob (words: wordRegexp), memoised
// for the test's speed.
func refRegexp(words bool, pattern string) *regexp.Regexp {
	k := fmt.Sprint(words, pattern)
	re, ok := refRegexps[k]
	if !ok {
		if words {
			re = wordRegexp(pattern)
		} else {
			re = globRegexp(`(?is)^(?:`, pattern, `)$`)
		}
		refRegexps[k] = re
	}
	return re
}

var refRegexps = map[string]*regexp.Regexp{}

// refNestedGet is nestedGet before it stopped allocating the joined path.
func refNestedGet(data map[string]any, path []string) (any, bool) {
	v, ok := data[path[0]]
	if len(path) == 1 {
		return v, ok
	}
	if ok {
		if m, isMap := v.(map[string]any); isMap {
			if v, ok := refNestedGet(m, path[1:]); ok {
				return v, true
			}
		}
	}
	joined := append([]string{path[0] + "." + path[1]}, path[2:]...)
	return refNestedGet(data, joined)
}

func ruleID(m *Match) string {
	if m == nil {
		return "<nil>"
	}
	return m.RuleID
}

// Tricky users and names: glob metacharacters, punctuation, spaces,
// non-ASCII (with case folds that change lengths), names that are words
// of other names, empty names.
var (
	permUsers = []string{
		"@alice:localhost", "@Bob:example.org", "@a.b-c=d/e:x", "@*:x", "@a?c:x", "@émile:x",
		"@İstanbul:x", "@room:x", "@k:x", "@ſam:x", "@x_y:x", "@bob:localhost", "@[a]:x", "@a\\b:x", "@:x",
	}
	permNames = []string{
		"", "Alice", "alice", "Bob Smith", "Dr. Who", "a*b", "ÉMILE", "émile", " ", "x", "...",
		"[x]", "K", "Ǆ", "bob", "Bob", "\u00a0Bob", "🎉", "a?c", "room", "@room",
	}
	permWords = []string{
		"hello", "alice", "ALICE", "Alice", "bob", "BOB", "Bob Smith", "bob smith", "Dr. Who", "a.b-c=d/e",
		"A.B-C=D/E", "a*b", "axb", "a?c", "abc", "émile", "ÉMILE", "Émile", "istanbul", "İstanbul", "i̇stanbul",
		"k", "K", "ſam", "sam", "x_y", "x", "room", "@room", "[a]", "a\\b", "Ǆ", "ǆ", "🎉", "", "member1",
	}
	permSeps = []string{" ", ",", ".", "\u00a0", "_", "-", "@", ":", "\n", "é", "!", "", "'", "\t", "\u0085", "«"}
)

func randBody(r *rand.Rand) string {
	var b strings.Builder
	for n := r.IntN(6); n >= 0; n-- {
		b.WriteString(permSeps[r.IntN(len(permSeps))])
		b.WriteString(permWords[r.IntN(len(permWords))])
	}
	if r.IntN(2) == 0 {
		b.WriteString(permSeps[r.IntN(len(permSeps))])
	}
	return b.String()
}

// randEvent returns an event's arguments: type, state key, content.
func randEvent(r *rand.Rand, users []string) (string, *string, json.RawMessage) {
	content := map[string]any{}
	pick := func(l []string) string { return l[r.IntN(len(l))] }
	switch r.IntN(4) {
	case 0, 1:
		content["body"] = randBody(r)
	case 2:
		content["body"] = 5
	}
	if r.IntN(3) == 0 {
		content["msgtype"] = pick([]string{"m.text", "m.notice", "M.NOTICE"})
	}
	switch r.IntN(8) {
	case 0:
		content["m.mentions"] = map[string]any{}
	case 1:
		content["m.mentions"] = map[string]any{"user_ids": []any{pick(users), pick(permUsers)}}
	case 2:
		content["m.mentions"] = map[string]any{"user_ids": pick(users)}
	case 3:
		content["m.mentions"] = map[string]any{"room": r.IntN(2) == 0}
	case 4:
		// The legacy unescaped key nestedGet also resolves.
		content["m.mentions.user_ids"] = []any{pick(users)}
	case 5:
		content["m.mentions"] = "x"
	}
	if r.IntN(6) == 0 {
		content["m.relates_to"] = map[string]any{"rel_type": pick([]string{"m.replace", "m.thread"}), "event_id": "$x"}
	}
	typ := pick([]string{"m.room.message", "m.room.message", "m.room.member", "m.room.encrypted", "m.reaction", "m.room.tombstone", "m.call.invite"})
	var sk *string
	if typ == "m.room.member" || typ == "m.room.tombstone" || r.IntN(8) == 0 {
		s := pick(append([]string{"", "@BOB:localhost"}, users...))
		sk = &s
		if typ == "m.room.member" {
			content["membership"] = pick([]string{"invite", "join", "leave", "INVITE"})
		}
	}
	b, err := json.Marshal(content)
	if err != nil {
		panic(err)
	}
	return typ, sk, b
}

// checkEvent evaluates one event for every member, the fast way on one
// shared Event (as the fold does) and the plain ways on fresh ones.
func checkEvent(t *testing.T, sender, typ string, sk *string, content json.RawMessage, users, names []string, count int, power *event.PowerLevelsEventContent) {
	t.Helper()
	const roomID = "!r:localhost"
	shared := NewEvent(roomID, sender, typ, sk, content)
	sharedRoom := permRoom{count: count, power: power}
	Shared(sharedRoom, shared)
	for i, user := range users {
		room := permRoom{name: names[i], count: count, power: power}
		e := DefaultEvaluator(user)
		got := e.PerMember(room, shared)
		want := refPerMember(e, room, NewEvent(roomID, sender, typ, sk, content))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s %v %s, %s named %q: PerMember %s, plain %s", typ, sk, content, user, names[i], ruleID(got), ruleID(want))
		}
		if want != nil && !AnyPerMember(room, shared) {
			t.Fatalf("%s %v %s: AnyPerMember false but %s matches %s", typ, sk, content, user, want.RuleID)
		}
		gotAll := e.Match(room, shared)
		wantAll := fullWalk(e, room, NewEvent(roomID, sender, typ, sk, content))
		if !reflect.DeepEqual(gotAll, wantAll) {
			t.Fatalf("%s %v %s, %s named %q: Match %s, every rule %s", typ, sk, content, user, names[i], ruleID(gotAll), ruleID(wantAll))
		}
	}
}

func TestPerMemberShortcutMatchesPlainEvaluation(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	power := &event.PowerLevelsEventContent{Users: map[id.UserID]int{"@alice:localhost": 100}}
	ruledOut, perMember := 0, 0
	for range 20000 {
		n := 1 + r.IntN(6)
		users, names := make([]string, n), make([]string, n)
		for i := range users {
			users[i] = permUsers[r.IntN(len(permUsers))]
			names[i] = permNames[r.IntN(len(permNames))]
			if r.IntN(3) == 0 {
				// A name that is (a case variant of) a word of bodies.
				names[i] = permWords[r.IntN(len(permWords))]
			}
		}
		typ, sk, content := randEvent(r, users)
		pl := power
		if r.IntN(4) == 0 {
			pl = nil
		}
		count := []int{2, 3, 33}[r.IntN(3)]
		checkEvent(t, "@alice:localhost", typ, sk, content, users, names, count, pl)
		ev := NewEvent("!r:localhost", "@alice:localhost", typ, sk, content)
		if AnyPerMember(permRoom{count: count, power: pl}, ev) {
			perMember++
		} else {
			ruledOut++
		}
	}
	// Both ways are exercised.
	if ruledOut < 1000 || perMember < 1000 {
		t.Fatalf("%d events ruled every per-member rule out, %d did not", ruledOut, perMember)
	}
}

// The known cases: each per-member rule can still match, and is ruled out
// when its property is absent.
func TestPerMemberRulesStillMatch(t *testing.T) {
	const bob = "@bob:localhost"
	sk := bob
	room := permRoom{name: "Bobby T.", count: 3}
	for _, tc := range []struct {
		typ     string
		sk      *string
		content string
		want    string
		any     bool
	}{
		{"m.room.member", &sk, `{"membership":"invite"}`, ".m.rule.invite_for_me", true},
		{"m.room.member", &sk, `{"membership":"join"}`, "<nil>", false},
		{"m.room.message", nil, `{"body":"x","m.mentions":{"user_ids":["@bob:localhost"]}}`, ".m.rule.is_user_mention", true},
		{"m.room.message", nil, `{"body":"x","m.mentions.user_ids":["@bob:localhost"]}`, ".m.rule.is_user_mention", true},
		{"m.room.message", nil, `{"body":"x","m.mentions":{"user_ids":"@bob:localhost"}}`, "<nil>", false},
		{"m.room.message", nil, `{"body":"hi Bobby T.!"}`, ".m.rule.contains_display_name", true},
		{"m.room.message", nil, `{"body":"hi BOB"}`, ".m.rule.contains_user_name", true},
		{"m.room.message", nil, `{"body":"hi"}`, "<nil>", true},
		{"m.room.message", nil, `{"body":5}`, "<nil>", false},
		{"m.room.message", nil, `{"body":"hi bob","m.mentions":{}}`, "<nil>", false},
		{"m.room.message", nil, `{"msgtype":"m.notice","body":"bob"}`, "<nil>", false},
	} {
		ev := NewEvent("!r:localhost", "@alice:localhost", tc.typ, tc.sk, json.RawMessage(tc.content))
		if got := ruleID(DefaultEvaluator(bob).PerMember(room, ev)); got != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.typ, tc.content, got, tc.want)
		}
		if got := AnyPerMember(room, ev); got != tc.any {
			t.Errorf("%s %s: AnyPerMember %v, want %v", tc.typ, tc.content, got, tc.any)
		}
	}
}

// nestedGet and propertyString agree with the allocating lookups they
// replace, legacy dotted keys included.
func TestNestedGetMatchesReference(t *testing.T) {
	var data map[string]any
	if err := json.Unmarshal([]byte(`{"a":{"b":{"c":"1"},"b.c":"2","x":5},"a.b":{"c":"3","d":"4"},"a.b.c.d":"5",
		"m.mentions":{"user_ids":["@a:x"]},"m.mentions.user_ids":["@b:x"],"p":{"q.r":{"s":"6"}},"long`+strings.Repeat("k", 100)+`":{"v":"7"}}`), &data); err != nil {
		t.Fatal(err)
	}
	keys := []string{"a", "b", "c", "d", "x", "m", "mentions", "user_ids", "q", "r", "s", "p", "long" + strings.Repeat("k", 100), "v", "", "a.b"}
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		path := make([]string, 1+r.IntN(5))
		for i := range path {
			path[i] = keys[r.IntN(len(keys))]
		}
		gv, gok := nestedGet(data, path)
		wv, wok := refNestedGet(data, path)
		if gok != wok || !reflect.DeepEqual(gv, wv) {
			t.Fatalf("%q: %v %v, want %v %v", path, gv, gok, wv, wok)
		}
		key := "content." + strings.Join(path, ".")
		if r.IntN(3) == 0 {
			key = []string{"type", "sender", "room_id", "state_key", "type.x", "nope"}[r.IntN(6)]
		}
		sk := "s"
		ev := NewEvent("!r:x", "@s:x", "t", &sk, nil)
		ev.mx.Content.Raw = data
		p := parsePath(key)
		v, ok := ev.property(p)
		ws, isStr := v.(string)
		if gs, gok := ev.propertyString(p); gok != (ok && isStr) || gs != ws {
			t.Fatalf("%s: propertyString %q %v, property %v %v", key, gs, gok, v, ok)
		}
	}
}

// FuzzPerMember compares the shortcut with the plain evaluation for
// arbitrary bodies, names, localparts and mentions.
func FuzzPerMember(f *testing.F) {
	f.Add("hello Bob Smith, bob!", "Bob Smith", "bob", `{"user_ids":["@bob:x"]}`, "m.room.message", "")
	f.Add("ÉMILE ſam", "émile", "ſam", ``, "m.room.message", "")
	f.Add("a*b axb", "a*b", "a?c", `{}`, "m.room.member", "@a?c:x")
	f.Fuzz(func(t *testing.T, body, name, localpart, mentions, typ, stateKey string) {
		content := map[string]any{"body": body}
		if mentions != "" {
			var m any
			if json.Unmarshal([]byte(mentions), &m) != nil {
				return
			}
			content["m.mentions"] = m
		}
		if typ == "m.room.member" {
			content["membership"] = "invite"
		}
		b, err := json.Marshal(content)
		if err != nil {
			return
		}
		var sk *string
		if stateKey != "" {
			sk = &stateKey
		}
		user := fmt.Sprintf("@%s:x", localpart)
		checkEvent(t, "@alice:localhost", typ, sk, b, []string{user, "@alice:localhost", "@bob:x"}, []string{name, strings.ToUpper(name), body}, 3, nil)
	})
}

// matchBody (the body's ASCII check and lower case shared by every
// member) agrees with match and with the pattern's regexp.
func TestMatchBodyMatchesRegexp(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	patterns := append(append([]string{"*", "a*", "?ob", "b?b", "[a]", "@room", "émile*"}, permWords...), permNames...)
	for _, u := range permUsers {
		patterns = append(patterns, Localpart(u))
	}
	for range 20000 {
		body := randBody(r)
		pattern := patterns[r.IntN(len(patterns))]
		content, _ := json.Marshal(map[string]any{"body": body})
		ev := NewEvent("!r:x", "@s:x", "m.room.message", nil, content)
		m, re := cachedGlob(true, pattern), wordRegexp(pattern)
		if (m == nil) != (re == nil) {
			t.Fatalf("pattern %q: matcher %v, regexp %v", pattern, m, re)
		}
		if m == nil {
			continue
		}
		want := re.MatchString(body)
		if got := m.matchBody(ev); got != want {
			t.Fatalf("pattern %q in %q: matchBody %v, regexp %v", pattern, body, got, want)
		}
		if got := m.match(body); got != want {
			t.Fatalf("pattern %q in %q: match %v, regexp %v", pattern, body, got, want)
		}
		// Again on the same Event, now lowered.
		if got := m.matchBody(ev); got != want {
			t.Fatalf("pattern %q in %q: second matchBody %v, regexp %v", pattern, body, got, want)
		}
	}
}
