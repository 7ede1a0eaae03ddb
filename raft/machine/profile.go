package machine

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"unicode/utf8"

	"chronicle/projections/accounts"
	"chronicle/projections/facts"
	"chronicle/projections/profiles"
	"chronicle/projections/rooms"
)

// User profiles (/profile/{userId}/{keyName}). One command changes one
// field; a change of displayname or avatar_url is also a new m.room.member
// join event in every room the user is joined to, authored here in room ID
// order, so every node writes the same events in the same order.
const (
	CmdSetProfileField    = "set_profile_field"
	CmdDeleteProfileField = "delete_profile_field"
)

// ProfileField sets (CmdSetProfileField) or deletes (CmdDeleteProfileField,
// Value unused) one field of the actor's profile.
type ProfileField struct {
	Key   string          `msgpack:"k"`
	Value json.RawMessage `msgpack:"v"`
}

// Profile limits. The total size and the key length are the spec's; the
// displayname and avatar_url lengths are Synapse's, so that a profile set
// here fits there too.
const (
	MaxProfileSize     = 64 * 1024 // the profile as a JSON object, in bytes
	MaxProfileKeyBytes = 255
	MaxDisplayNameLen  = 256 // code points
	MaxAvatarURLBytes  = 1000
)

// The profile fields the spec defines. displayname and avatar_url are
// also copied into member events.
const (
	ProfileDisplayName = "displayname"
	ProfileAvatarURL   = "avatar_url"
	ProfileTimeZone    = "m.tz"
)

// profileKeyGrammar is the keyName pattern of the spec's profile API: the
// defined fields or a namespaced identifier.
var profileKeyGrammar = regexp.MustCompile(`^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$`)

// CheckProfileKey refuses a key the spec does not allow (M_KEY_TOO_LARGE
// over 255 bytes, else M_INVALID_PARAM). The API checks before submitting;
// the machine checks again, since a command may come from anywhere.
func CheckProfileKey(key string) *Rejection {
	if len(key) > MaxProfileKeyBytes {
		return reject(KindKeyTooLarge, "profile key is longer than %d bytes", MaxProfileKeyBytes)
	}
	if !profileKeyGrammar.MatchString(key) {
		return reject(KindInvalidParam, "invalid profile key %q", key)
	}
	return nil
}

// ProfileValue checks a field's new value and returns it as compact JSON;
// nil means the field is to be removed (an empty displayname or
// avatar_url clears it, as Synapse does).
func ProfileValue(key string, value json.RawMessage) (json.RawMessage, *Rejection) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, value); err != nil || buf.Len() == 0 {
		return nil, reject(KindBadJSON, "the value of %s is not JSON", key)
	}
	compact := json.RawMessage(buf.Bytes())
	switch key {
	case ProfileDisplayName, ProfileAvatarURL, ProfileTimeZone:
		var s string
		// null would unmarshal as "" (a deletion); it is not a string.
		if compact[0] != '"' || json.Unmarshal(compact, &s) != nil {
			return nil, reject(KindInvalidParam, "%s must be a string", key)
		}
		switch {
		case s == "" && key != ProfileTimeZone:
			return nil, nil
		case key == ProfileDisplayName && utf8.RuneCountInString(s) > MaxDisplayNameLen:
			return nil, reject(KindInvalidParam, "displayname is longer than %d characters", MaxDisplayNameLen)
		case key == ProfileAvatarURL && len(s) > MaxAvatarURLBytes:
			return nil, reject(KindInvalidParam, "avatar_url is longer than %d bytes", MaxAvatarURLBytes)
		case key == ProfileAvatarURL && !validMXC(s):
			return nil, reject(KindInvalidParam, "avatar_url must be an mxc:// URI")
		case strings.ContainsRune(s, 0):
			return nil, reject(KindInvalidParam, "%s must not contain NUL", key)
		}
	}
	return compact, nil
}

// validMXC accepts mxc://<server-name>/<media-id>.
func validMXC(s string) bool {
	rest, ok := strings.CutPrefix(s, "mxc://")
	server, media, ok2 := strings.Cut(rest, "/")
	return ok && ok2 && server != "" && media != "" && !strings.ContainsAny(media, "/?#")
}

// profileSize is the length of the profile as a JSON object, with field
// key set to value (nil: removed). Keys follow the key grammar, so they
// need no escaping.
func profileSize(fields []profiles.Field, key string, value json.RawMessage) int {
	size, n := 2, 0 // {} and the number of members
	add := func(k string, v json.RawMessage) {
		size += len(k) + 3 + len(v) // "k":v
		n++
	}
	for _, f := range fields {
		if f.Key != key {
			add(f.Key, f.Value)
		}
	}
	if value != nil {
		add(key, value)
	}
	return size + max(n-1, 0) // commas
}

// decideProfile handles the commands above; ok is false for other types.
func (x *applyCtx) decideProfile() (res *Result, ok bool, err error) {
	switch x.cmd.Type {
	case CmdSetProfileField:
		res, err = x.changeProfileField(false)
	case CmdDeleteProfileField:
		res, err = x.changeProfileField(true)
	default:
		return nil, false, nil
	}
	return res, true, err
}

func (x *applyCtx) changeProfileField(remove bool) (*Result, error) {
	var p ProfileField
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	if rej := CheckProfileKey(p.Key); rej != nil {
		return &Result{Err: rej}, nil
	}
	user := x.cmd.Actor
	if u, err := accounts.GetUser(x.b, user); err != nil {
		return nil, err
	} else if u == nil {
		return &Result{Err: reject(KindNotFound, "unknown user %s", user)}, nil
	}
	var value json.RawMessage
	if !remove {
		var rej *Rejection
		if value, rej = ProfileValue(p.Key, p.Value); rej != nil {
			return &Result{Err: rej}, nil
		}
	}
	fields, err := profiles.Profile(x.b, user)
	if err != nil {
		return nil, err
	}
	var current json.RawMessage
	for _, f := range fields {
		if f.Key == p.Key {
			current = f.Value
		}
	}
	switch {
	case value == nil && current != nil:
		if err := x.emit(facts.TypeProfileFieldDeleted, &facts.ProfileFieldDeleted{UserID: user, Key: p.Key}); err != nil {
			return nil, err
		}
	case value != nil && !bytes.Equal(value, current):
		if size := profileSize(fields, p.Key, value); size >= MaxProfileSize {
			return &Result{Err: reject(KindProfileTooLarge, "the profile would be %d bytes, over the %d allowed", size, MaxProfileSize)}, nil
		}
		if err := x.emit(facts.TypeProfileFieldSet, &facts.ProfileFieldSet{UserID: user, Key: p.Key, Value: value}); err != nil {
			return nil, err
		}
	}
	// Propagated even when the value did not change: a retried request
	// finishes what it started, and a room whose member event already
	// matches gets none (propagateProfile).
	if p.Key == ProfileDisplayName || p.Key == ProfileAvatarURL {
		if err := x.propagateProfile(user); err != nil {
			return nil, err
		}
	}
	return &Result{}, nil
}

// propagateProfile sends a join with the user's profile to every room they
// are joined to, as the spec's "Events on Change of Profile Information"
// asks and as Synapse does: the content is built afresh (a per-room name
// is replaced), and a room whose member event already says the same gets
// none. A room whose auth rules refuse the event (a join rule that no
// longer admits the user) is skipped, as Synapse skips it.
func (x *applyCtx) propagateProfile(user string) error {
	list, err := rooms.UserRooms(x.b, user) // in room ID order
	if err != nil {
		return err
	}
	for _, ur := range list {
		if ur.Membership.Membership != "join" {
			continue
		}
		version, rej, err := x.roomVersion(ur.RoomID, KindForbidden)
		if err != nil {
			return err
		}
		if rej != nil {
			continue
		}
		content := map[string]any{"membership": "join"}
		if err := x.withProfile(user, content); err != nil {
			return err
		}
		if same, err := x.memberContentIs(ur.RoomID, user, content); err != nil {
			return err
		} else if same {
			continue
		}
		if _, _, rej, err := x.appendState(ur.RoomID, version, "m.room.member", user, content); err != nil {
			return err
		} else if rej != nil {
			x.m.cfg.Logger.Debug("profile change not propagated", "room", ur.RoomID, "user", user, "reason", rej.Msg)
		}
	}
	return nil
}

// memberContentIs reports whether the user's current member event in a
// room has exactly this content.
func (x *applyCtx) memberContentIs(roomID, user string, content map[string]any) (bool, error) {
	ev, err := rooms.StateEvent(x.b, roomID, "m.room.member", user)
	if err != nil || ev == nil {
		return false, err
	}
	cur, err := objectOf(ev.Content)
	if err != nil {
		return false, nil // unreadable content is never the same
	}
	a, errA := json.Marshal(cur) // map keys marshal sorted
	b, errB := json.Marshal(content)
	return errA == nil && errB == nil && bytes.Equal(a, b), nil
}

// withProfile adds the target's displayname and avatar_url to a member
// event's content where it gives none: the spec asks a server to include
// them in the membership events of its own users (joins, invites, knocks),
// so that clients have them without another request. Users of other
// servers have no profile here and get nothing.
func (x *applyCtx) withProfile(target string, content map[string]any) error {
	for _, key := range []string{ProfileDisplayName, ProfileAvatarURL} {
		if _, given := content[key]; given {
			continue
		}
		v, err := profiles.StringField(x.b, target, key)
		if err != nil {
			return err
		}
		if v != "" {
			content[key] = v
		}
	}
	return nil
}

// defaultDisplayName is a new account's displayname: its localpart, as
// Synapse gives it.
func defaultDisplayName(userID string) string {
	local, _, _ := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	return local
}
