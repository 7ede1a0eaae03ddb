package pushrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Validation errors: ErrBadJSON for a body of the wrong shape,
// ErrInvalid for a parameter the spec does not allow. Both wrap the
// detail.
var (
	ErrBadJSON = errors.New("malformed push rule")
	ErrInvalid = errors.New("invalid push rule")
)

// maxRuleID bounds rule IDs (room and user IDs, at most 255 bytes, are the
// longest the spec implies).
const maxRuleID = 255

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func badJSON(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadJSON, fmt.Sprintf(format, args...))
}

// CheckRuleID refuses IDs a user may not create: empty, too long, reserved
// for server-default rules (a leading dot), or with a slash or backslash.
func CheckRuleID(id string) error {
	switch {
	case id == "":
		return invalid("rule ID must not be empty")
	case len(id) > maxRuleID:
		return invalid("rule ID is longer than %d bytes", maxRuleID)
	case IsDefaultID(id):
		return invalid("rule IDs starting with a dot are reserved for server-default rules")
	case strings.ContainsAny(id, "/\\\x00"):
		return invalid("rule ID must not contain slashes or backslashes")
	}
	return nil
}

// NormalizeActions checks an actions array and returns it compacted:
// strings are notify and the historical dont_notify and coalesce; objects
// set a tweak.
func NormalizeActions(raw json.RawMessage) (json.RawMessage, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, badJSON("actions must be an array")
	}
	for _, it := range items {
		var s string
		if json.Unmarshal(it, &s) == nil {
			switch s {
			case "notify", "dont_notify", "coalesce":
				continue
			}
			return nil, invalid("unrecognised action %q", s)
		}
		var tweak struct {
			SetTweak *string `json:"set_tweak"`
		}
		if err := json.Unmarshal(it, &tweak); err != nil || tweak.SetTweak == nil {
			return nil, invalid("an action must be a string or an object with set_tweak")
		}
	}
	return compactJSON(raw)
}

// NormalizeConditions checks a conditions array (nil or null means none)
// and returns it compacted. Unknown condition kinds are kept: the spec
// says they never match.
func NormalizeConditions(raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return json.RawMessage("[]"), nil
	}
	var conds []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &conds); err != nil {
		return nil, badJSON("conditions must be an array of objects")
	}
	for i, c := range conds {
		if c == nil {
			return nil, badJSON("condition %d is not an object", i)
		}
		var kind string
		if err := json.Unmarshal(c["kind"], &kind); err != nil || kind == "" {
			return nil, badJSON("condition %d has no kind", i)
		}
		str := func(field string, required bool) error {
			v, ok := c[field]
			if !ok {
				if required {
					return badJSON("condition %d (%s) needs %s", i, kind, field)
				}
				return nil
			}
			var s string
			if json.Unmarshal(v, &s) != nil {
				return badJSON("condition %d (%s): %s must be a string", i, kind, field)
			}
			return nil
		}
		switch kind {
		case "event_match":
			if err := str("key", true); err != nil {
				return nil, err
			}
			if err := str("pattern", true); err != nil {
				return nil, err
			}
		case "event_property_is", "event_property_contains":
			if err := str("key", true); err != nil {
				return nil, err
			}
			v, ok := c["value"]
			if !ok {
				return nil, badJSON("condition %d (%s) needs value", i, kind)
			}
			if !scalar(v) {
				return nil, invalid("condition %d (%s): value must be a string, integer, boolean or null", i, kind)
			}
		case "room_member_count":
			if err := str("is", true); err != nil {
				return nil, err
			}
		case "sender_notification_permission":
			if err := str("key", true); err != nil {
				return nil, err
			}
		default:
			// contains_display_name has no parameters; unknown kinds
			// never match. Either way the known fields must have the
			// types the evaluator decodes.
			for _, f := range []string{"key", "pattern", "is", "rel_type"} {
				if err := str(f, false); err != nil {
					return nil, err
				}
			}
		}
	}
	return compactJSON(raw)
}

// scalar reports whether v is a JSON string, number, boolean or null.
func scalar(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return false
	}
	return v[0] != '{' && v[0] != '['
}

// CheckPattern checks a content rule's pattern.
func CheckPattern(p *string) error {
	if p == nil {
		return badJSON("content rules need a pattern")
	}
	if *p == "" {
		return invalid("pattern must not be empty")
	}
	return nil
}

func compactJSON(raw json.RawMessage) (json.RawMessage, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, badJSON("not valid JSON")
	}
	return b.Bytes(), nil
}

// NormalizeRule checks a rule a user puts and returns its stored parts:
// conditions only for override and underride rules, a pattern only for
// content rules.
func NormalizeRule(kind, id string, actions, conditions json.RawMessage, pattern *string) (json.RawMessage, json.RawMessage, *string, error) {
	if !ValidKind(kind) {
		return nil, nil, nil, invalid("unknown rule kind %q", kind)
	}
	if err := CheckRuleID(id); err != nil {
		return nil, nil, nil, err
	}
	acts, err := NormalizeActions(actions)
	if err != nil {
		return nil, nil, nil, err
	}
	switch kind {
	case KindOverride, KindUnderride:
		conds, err := NormalizeConditions(conditions)
		if err != nil {
			return nil, nil, nil, err
		}
		return acts, conds, nil, nil
	case KindContent:
		if err := CheckPattern(pattern); err != nil {
			return nil, nil, nil, err
		}
		return acts, nil, pattern, nil
	}
	return acts, nil, nil, nil
}
