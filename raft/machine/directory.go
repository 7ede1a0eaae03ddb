package machine

import (
	"encoding/json"
	"encoding/json/jsontext"
	"slices"
	"strings"
	"unicode/utf8"

	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"chronicle/projections/directory"
	"chronicle/projections/facts"
	"chronicle/projections/rooms"
)

// Commands of room aliases and the published room directory.
const (
	CmdCreateAlias       = "create_alias"
	CmdDeleteAlias       = "delete_alias"
	CmdSetRoomVisibility = "set_room_visibility"
)

// CreateAlias maps a local alias to a room. Admin is set by the API node
// for the server's configured administrators.
type CreateAlias struct {
	Alias  string `msgpack:"a"`
	RoomID string `msgpack:"r"`
	Admin  bool   `msgpack:"adm"`
}

// DeleteAlias removes a local alias.
type DeleteAlias struct {
	Alias string `msgpack:"a"`
	Admin bool   `msgpack:"adm"`
}

// SetRoomVisibility publishes a room in the directory ("public") or
// withdraws it ("private").
type SetRoomVisibility struct {
	RoomID     string `msgpack:"r"`
	Visibility string `msgpack:"v"`
	Admin      bool   `msgpack:"adm"`
}

// maxAliasBytes is the spec's limit on a room alias, sigil and domain
// included.
const maxAliasBytes = 255

// ParseAlias checks an alias's syntax (#localpart:server, at most 255
// bytes, a localpart of valid non-surrogate code points other than ':' and
// NUL, a valid server name) and returns its parts.
func ParseAlias(alias string) (localpart, server string, ok bool) {
	if len(alias) > maxAliasBytes || !strings.HasPrefix(alias, "#") || !utf8.ValidString(alias) {
		return "", "", false
	}
	localpart, server, found := strings.Cut(alias[1:], ":")
	if !found || localpart == "" || strings.ContainsRune(localpart, 0) || !id.ValidateServerName(server) {
		return "", "", false
	}
	return localpart, server, true
}

// localAlias validates an alias that must belong to this server.
func (x *applyCtx) localAlias(alias string) *Rejection {
	_, server, ok := ParseAlias(alias)
	if !ok {
		return reject(KindInvalidParam, "invalid room alias %q", alias)
	}
	if server != x.m.cfg.ServerName {
		return reject(KindInvalidParam, "room alias %s does not belong to this server (%s)", alias, x.m.cfg.ServerName)
	}
	return nil
}

func (x *applyCtx) createAlias() (*Result, error) {
	var p CreateAlias
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	if rej := x.localAlias(p.Alias); rej != nil {
		return &Result{Err: rej}, nil
	}
	if existing, err := directory.GetAlias(x.b, p.Alias); err != nil {
		return nil, err
	} else if existing != nil {
		return &Result{Err: reject(KindConflict, "room alias %s already exists", p.Alias)}, nil
	}
	missing := KindForbidden
	if p.Admin {
		missing = KindNotFound
	}
	if _, rej, err := x.roomVersion(p.RoomID, missing); err != nil || rej != nil {
		return &Result{Err: rej}, err
	}
	if !p.Admin {
		m, err := rooms.GetMembership(x.b, x.cmd.Actor, p.RoomID)
		if err != nil {
			return nil, err
		}
		if m == nil || m.Membership != "join" {
			return &Result{Err: reject(KindForbidden, "you must be in room %s to create an alias for it", p.RoomID)}, nil
		}
	}
	if err := x.emit(facts.TypeAliasCreated, &facts.AliasCreated{Alias: p.Alias, RoomID: p.RoomID, Creator: x.cmd.Actor}); err != nil {
		return nil, err
	}
	return &Result{RoomID: p.RoomID}, nil
}

// deleteAlias lets the alias's creator, a member with the power to send
// m.room.canonical_alias in its room, or an administrator remove it. The
// room's canonical alias event is left unchanged (see package directory).
func (x *applyCtx) deleteAlias() (*Result, error) {
	var p DeleteAlias
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	if rej := x.localAlias(p.Alias); rej != nil {
		return &Result{Err: rej}, nil
	}
	a, err := directory.GetAlias(x.b, p.Alias)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return &Result{Err: reject(KindNotFound, "room alias %s not found", p.Alias)}, nil
	}
	if !p.Admin && a.Creator != x.cmd.Actor {
		ok, err := x.mayEditDirectory(a.RoomID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return &Result{Err: reject(KindForbidden, "you may not delete room alias %s", p.Alias)}, nil
		}
	}
	if err := x.emit(facts.TypeAliasDeleted, &facts.AliasDeleted{Alias: p.Alias, RoomID: a.RoomID}); err != nil {
		return nil, err
	}
	return &Result{RoomID: a.RoomID}, nil
}

// setRoomVisibility lets a member with the power to send
// m.room.canonical_alias (the level Synapse requires too), or an
// administrator, publish or withdraw a room.
func (x *applyCtx) setRoomVisibility() (*Result, error) {
	var p SetRoomVisibility
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	if p.Visibility != "public" && p.Visibility != "private" {
		return &Result{Err: reject(KindInvalidParam, "visibility must be public or private, not %q", p.Visibility)}, nil
	}
	if _, rej, err := x.roomVersion(p.RoomID, KindNotFound); err != nil || rej != nil {
		return &Result{Err: rej}, err
	}
	if !p.Admin {
		ok, err := x.mayEditDirectory(p.RoomID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return &Result{Err: reject(KindForbidden, "you may not change the directory visibility of room %s", p.RoomID)}, nil
		}
	}
	published, err := directory.IsPublished(x.b, p.RoomID)
	if err != nil {
		return nil, err
	}
	if published == (p.Visibility == "public") {
		return &Result{RoomID: p.RoomID}, nil // no change, no record
	}
	if err := x.emit(facts.TypeRoomVisibilitySet, &facts.RoomVisibilitySet{RoomID: p.RoomID, Visibility: p.Visibility}); err != nil {
		return nil, err
	}
	return &Result{RoomID: p.RoomID}, nil
}

// mayEditDirectory reports whether the actor could send an
// m.room.canonical_alias state event into the room now: joined, with the
// power level that event type needs. It runs the room version's own auth
// rules on a hypothetical event, so creators' power in v12 and every
// power-level quirk count exactly as they would for the real event.
func (x *applyCtx) mayEditDirectory(roomID string) (bool, error) {
	return x.wouldAuthorize(roomID, "m.room.canonical_alias", "", jsontext.Value(`{}`))
}

// wouldAuthorize runs the auth rules on an event the actor might send,
// without appending anything.
func (x *applyCtx) wouldAuthorize(roomID, evType, sk string, content jsontext.Value) (bool, error) {
	room, err := rooms.GetRoom(x.b, roomID)
	if err != nil || room == nil {
		return false, err
	}
	version := id.RoomVersion(room.Version)
	p := &pdu.PDU{
		Type: evType, StateKey: &sk, Content: content, Sender: id.UserID(x.cmd.Actor),
		OriginServerTS: x.cmd.Time, RoomID: id.RoomID(roomID), AuthEvents: []id.EventID{},
		PrevEvents: []id.EventID{id.EventID(room.LastEventID)}, Depth: room.Depth + 1,
	}
	authEvents, ids, err := x.selectAuthEvents(p, version)
	if err != nil {
		return false, err
	}
	p.AuthEvents = ids
	if authEvents == nil {
		authEvents = []*pdu.PDU{}
	}
	return eventauth.Authorize(version, p, authEvents, x.getEvents, noKeys) == nil, nil
}

// checkCanonicalAlias validates an m.room.canonical_alias event a client
// sends, as the spec's PUT /state asks: every alias it adds (alias, and the
// entries of alt_aliases that the current event does not already have) must
// be a valid alias (else M_INVALID_PARAM) and, if it is one of this
// server's, map to this room (else M_BAD_ALIAS). Aliases of other servers
// cannot be resolved without federation and are accepted. Aliases the
// current event already lists are not checked again, so a room whose alias
// was deleted can still edit its canonical alias event. An event the actor
// may not send at all is left to the auth rules, so that their M_FORBIDDEN
// comes first.
func (x *applyCtx) checkCanonicalAlias(roomID, evType string, sk *string, content []byte) (*Rejection, error) {
	if evType != "m.room.canonical_alias" || sk == nil {
		return nil, nil
	}
	if ok, err := x.wouldAuthorize(roomID, evType, *sk, jsontext.Value(content)); err != nil || !ok {
		return nil, err
	}
	var prevAlias string
	var prevAlt []string
	if ev, err := rooms.StateEvent(x.b, roomID, evType, *sk); err != nil {
		return nil, err
	} else if ev != nil {
		var prev map[string]json.RawMessage
		_ = json.Unmarshal(ev.Content, &prev)
		_ = json.Unmarshal(prev["alias"], &prevAlias)
		var alt []json.RawMessage
		_ = json.Unmarshal(prev["alt_aliases"], &alt)
		for _, raw := range alt {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				prevAlt = append(prevAlt, s)
			}
		}
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(content, &c); err != nil {
		return reject(KindBadJSON, "m.room.canonical_alias content: %v", err), nil
	}
	var added []string
	if raw, ok := c["alias"]; ok && string(raw) != "null" {
		var alias string
		if err := json.Unmarshal(raw, &alias); err != nil {
			return reject(KindInvalidParam, "alias must be a string"), nil
		}
		if alias != "" && alias != prevAlias {
			added = append(added, alias)
		}
	}
	if raw, ok := c["alt_aliases"]; ok && string(raw) != "null" {
		var alt []string
		if err := json.Unmarshal(raw, &alt); err != nil {
			return reject(KindInvalidParam, "alt_aliases must be a list of strings"), nil
		}
		for _, a := range alt {
			if !slices.Contains(prevAlt, a) {
				added = append(added, a)
			}
		}
	}
	for _, alias := range added {
		_, server, ok := ParseAlias(alias)
		if !ok {
			return reject(KindInvalidParam, "invalid room alias %q", alias), nil
		}
		if server != x.m.cfg.ServerName {
			continue
		}
		a, err := directory.GetAlias(x.b, alias)
		if err != nil {
			return nil, err
		}
		if a == nil || a.RoomID != roomID {
			return reject(KindBadAlias, "room alias %s does not point to this room", alias), nil
		}
	}
	return nil, nil
}

// roomAliasFree checks createRoom's alias before any event is authored.
func (x *applyCtx) roomAliasFree(alias string) (*Rejection, error) {
	if alias == "" {
		return nil, nil
	}
	if rej := x.localAlias(alias); rej != nil {
		return rej, nil
	}
	existing, err := directory.GetAlias(x.b, alias)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		return reject(KindRoomInUse, "room alias %s is already in use", alias), nil
	}
	return nil, nil
}

// createRoomAlias is createRoom's step 4: the alias mapping, then the
// m.room.canonical_alias event naming it.
func (x *applyCtx) createRoomAlias(roomID string, version id.RoomVersion, alias string) (*Rejection, error) {
	if alias == "" {
		return nil, nil
	}
	if err := x.emit(facts.TypeAliasCreated, &facts.AliasCreated{Alias: alias, RoomID: roomID, Creator: x.cmd.Actor}); err != nil {
		return nil, err
	}
	_, _, rej, err := x.appendState(roomID, version, "m.room.canonical_alias", "", map[string]any{"alias": alias})
	return rej, err
}

// publishCreatedRoom lists a room created with visibility "public".
func (x *applyCtx) publishCreatedRoom(roomID, visibility string) error {
	if visibility != "public" {
		return nil
	}
	return x.emit(facts.TypeRoomVisibilitySet, &facts.RoomVisibilitySet{RoomID: roomID, Visibility: "public"})
}
