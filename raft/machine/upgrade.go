package machine

import (
	"encoding/json"
	"maps"
	"slices"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/projections/directory"
	"chronicle/projections/facts"
	"chronicle/projections/rooms"
)

// CmdUpgradeRoom replaces a room by a new one in another room version.
const CmdUpgradeRoom = "upgrade_room"

// UpgradeRoom is POST /rooms/{roomId}/upgrade.
type UpgradeRoom struct {
	RoomID     string `msgpack:"r"`
	NewVersion string `msgpack:"v"`
	// NewRoomID is chosen by the API node for versions whose room ID is
	// not derived from the create event (1-11).
	NewRoomID string `msgpack:"n"`
	// AdditionalCreators are the new room's additional creators (v12+);
	// the old room's are not carried over, per the spec.
	AdditionalCreators []string `msgpack:"ac"`
}

// transferredState are the state events (state key "") an upgrade copies
// into the new room after its power levels: the spec's recommended list.
var transferredState = []string{
	"m.room.join_rules", "m.room.history_visibility", "m.room.guest_access",
	"m.room.name", "m.room.topic", "m.room.avatar", "m.room.encryption", "m.room.server_acl",
}

// upgradeRoom follows the spec's server behaviour for room upgrades, as
// one command, so an upgrade either happens completely or not at all:
//
//  1. the sender must be able to send m.room.tombstone in the old room;
//  2. the new room's create event names its predecessor and copies the
//     room type; the upgrader is the new room's creator;
//  3. the power levels (the upgrader raised to the highest level the room
//     uses, where creators have no infinite power) and the transferable
//     state are copied;
//  4. the old room's local aliases move to the new room, with the local
//     entries of its m.room.canonical_alias, and its listing in the
//     published room directory (as Synapse does);
//  5. the old room gets the tombstone pointing at the new room;
//  6. the old room's power levels are raised so that ordinary members can
//     no longer send or invite (events_default and invite to the greater
//     of 50 and users_default+1), if the upgrader may change them.
func (x *applyCtx) upgradeRoom() (*Result, error) {
	var p UpgradeRoom
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	oldVersion, rej, err := x.roomVersion(p.RoomID, KindForbidden)
	if err != nil || rej != nil {
		return &Result{Err: rej}, err
	}
	// 1. The sender may send the tombstone that will end the old room.
	if ok, err := x.wouldAuthorize(p.RoomID, "m.room.tombstone", "", []byte(`{"body":"","replacement_room":""}`)); err != nil {
		return nil, err
	} else if !ok {
		return &Result{Err: reject(KindForbidden, "you are not allowed to upgrade room %s", p.RoomID)}, nil
	}
	version, newRoomID, rej, err := x.newRoomTarget(p.NewVersion, p.NewRoomID)
	if err != nil || rej != nil {
		return &Result{Err: rej}, err
	}
	for _, u := range p.AdditionalCreators {
		if !ValidUserID(u) {
			return &Result{Err: reject(KindInvalidParam, "invalid user ID %q in additional_creators", u)}, nil
		}
	}
	old, err := rooms.GetRoom(x.b, p.RoomID)
	if err != nil {
		return nil, err
	}
	oldPower, err := x.currentPower(p.RoomID, oldVersion)
	if err != nil {
		return nil, err
	}

	// 2. The new room.
	oldCreate, err := x.stateObject(p.RoomID, "m.room.create")
	if err != nil {
		return nil, err
	}
	create := map[string]any{"predecessor": map[string]any{"room_id": p.RoomID, "event_id": old.LastEventID}}
	if t, ok := oldCreate["type"]; ok {
		create["type"] = t
	}
	creators := []string{x.cmd.Actor}
	if version.PrivilegedRoomCreators() {
		var extra []string
		for _, u := range p.AdditionalCreators {
			if u != x.cmd.Actor && !slices.Contains(extra, u) {
				extra = append(extra, u)
			}
		}
		if len(extra) > 0 {
			create["additional_creators"] = extra
		}
		creators = append(creators, extra...)
	}
	newRoomID, rej, err = x.openRoom(newRoomID, version, create)
	if err != nil || rej != nil {
		return &Result{Err: rej}, err
	}

	// 3. Power levels, then the transferable state, copied as they are.
	oldPL, err := x.stateObject(p.RoomID, "m.room.power_levels")
	if err != nil {
		return nil, err
	}
	base := oldPL
	if len(base) == 0 {
		// A room without power levels: the new one gets the defaults.
		base = defaultPowerLevels(x.cmd.Actor, version.PrivilegedRoomCreators(), "private_chat", nil)
	}
	pl := upgradedPowerLevels(base, oldPower, x.cmd.Actor, creators, version)
	if _, _, rej, err := x.appendState(newRoomID, version, "m.room.power_levels", "", pl); err != nil || rej != nil {
		return &Result{Err: rej}, err
	}
	for _, evType := range transferredState {
		ev, err := rooms.StateEvent(x.b, p.RoomID, evType, "")
		if err != nil {
			return nil, err
		}
		if ev == nil {
			continue
		}
		sk := ""
		if _, _, rej, err := x.appendEvent(&newEvent{RoomID: newRoomID, Version: version, Type: evType, StateKey: &sk, Content: []byte(ev.Content)}); err != nil || rej != nil {
			return &Result{Err: rej}, err
		}
	}

	// 4. Local aliases, the canonical alias and the directory listing.
	if err := x.moveAliases(p.RoomID, oldVersion, newRoomID, version); err != nil {
		return nil, err
	}

	// 5. The tombstone.
	tombstoneID, _, rej, err := x.appendState(p.RoomID, oldVersion, "m.room.tombstone", "", map[string]any{
		"body": "This room has been replaced", "replacement_room": newRoomID,
	})
	if err != nil || rej != nil {
		return &Result{Err: rej}, err
	}

	// 6. Restrict the old room, where the upgrader's power allows it: the
	// auth rules refuse a change above the sender's own level, and a
	// refused change leaves nothing behind.
	if restricted, changed := restrictedPowerLevels(oldPL, oldPower); changed && len(oldPL) > 0 {
		if _, _, _, err := x.appendState(p.RoomID, oldVersion, "m.room.power_levels", "", restricted); err != nil {
			return nil, err
		}
	}
	return &Result{RoomID: newRoomID, EventID: tombstoneID}, nil
}

// stateObject returns the content of a current state event (key "") as an
// object with numbers kept exact; empty when there is none.
func (x *applyCtx) stateObject(roomID, evType string) (map[string]any, error) {
	ev, err := rooms.StateEvent(x.b, roomID, evType, "")
	if err != nil || ev == nil {
		return map[string]any{}, err
	}
	obj, err := objectOf(ev.Content)
	if err != nil {
		return map[string]any{}, nil // accepted by the auth rules as an object; unreachable
	}
	return obj, nil
}

// upgradedPowerLevels is the new room's power levels: the old ones with
// every level written as an integer (room versions before 10 allowed
// strings; later ones refuse them), the new room's creators removed from
// users where creators have infinite power (v12+ refuses them listed), and
// otherwise the upgrader raised to the highest level the room uses, so
// they can copy the state and keep administering the room.
func upgradedPowerLevels(old map[string]any, parsed *event.PowerLevelsEventContent, actor string, creators []string, version id.RoomVersion) map[string]any {
	pl := maps.Clone(old)
	for _, k := range []string{"users_default", "events_default", "state_default", "ban", "kick", "redact", "invite"} {
		if _, ok := pl[k]; ok {
			if v := rooms.PowerLevel(rawOf(pl[k])); v != nil {
				pl[k] = *v
			} else {
				delete(pl, k)
			}
		}
	}
	for _, k := range []string{"users", "events", "notifications"} {
		m, ok := pl[k].(map[string]any)
		if !ok {
			delete(pl, k)
			continue
		}
		out := map[string]any{}
		for name, raw := range m {
			if v := rooms.PowerLevel(rawOf(raw)); v != nil {
				out[name] = *v
			}
		}
		pl[k] = out
	}
	users, _ := pl["users"].(map[string]any)
	if users == nil {
		users = map[string]any{}
	}
	if version.PrivilegedRoomCreators() {
		for _, c := range creators {
			delete(users, c)
		}
	} else {
		needed := 100
		for _, v := range []int{parsed.StateDefault(), parsed.EventsDefault, parsed.Ban(), parsed.Kick(), parsed.Redact(), parsed.Invite()} {
			needed = max(needed, v)
		}
		for _, v := range parsed.Events {
			needed = max(needed, v)
		}
		if own, ok := parsed.Users[id.UserID(actor)]; ok {
			needed = max(needed, own)
		}
		users[actor] = needed
	}
	pl["users"] = users
	return pl
}

// restrictedPowerLevels raises events_default and invite of the old room
// to the greater of 50 and users_default+1, as the spec suggests; changed
// is false when they already are at least that.
func restrictedPowerLevels(old map[string]any, parsed *event.PowerLevelsEventContent) (map[string]any, bool) {
	level := max(50, parsed.UsersDefault+1)
	pl := maps.Clone(old)
	changed := false
	if parsed.EventsDefault < level {
		pl["events_default"], changed = level, true
	}
	if parsed.Invite() < level {
		pl["invite"], changed = level, true
	}
	return pl, changed
}

// rawOf re-encodes a decoded JSON value for rooms.PowerLevel.
func rawOf(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// moveAliases moves the old room's local aliases to the new room, keeping
// each alias's creator, and moves the directory listing if the old room
// was published. The local entries of the old room's canonical alias event
// move too: the new room gets them, the old room keeps only the others.
// Canonical alias events the upgrader has no power to send are skipped
// (the spec's "if possible"); the alias mappings move regardless.
func (x *applyCtx) moveAliases(oldRoom string, oldVersion id.RoomVersion, newRoom string, newVersion id.RoomVersion) error {
	aliases, err := directory.RoomAliases(x.b, oldRoom)
	if err != nil {
		return err
	}
	for _, alias := range aliases {
		a, err := directory.GetAlias(x.b, alias)
		if err != nil {
			return err
		}
		creator := x.cmd.Actor
		if a != nil {
			creator = a.Creator
		}
		if err := x.emit(facts.TypeAliasDeleted, &facts.AliasDeleted{Alias: alias, RoomID: oldRoom}); err != nil {
			return err
		}
		if err := x.emit(facts.TypeAliasCreated, &facts.AliasCreated{Alias: alias, RoomID: newRoom, Creator: creator}); err != nil {
			return err
		}
	}
	if published, err := directory.IsPublished(x.b, oldRoom); err != nil {
		return err
	} else if published {
		if err := x.emit(facts.TypeRoomVisibilitySet, &facts.RoomVisibilitySet{RoomID: oldRoom, Visibility: "private"}); err != nil {
			return err
		}
		if err := x.emit(facts.TypeRoomVisibilitySet, &facts.RoomVisibilitySet{RoomID: newRoom, Visibility: "public"}); err != nil {
			return err
		}
	}

	old, err := x.stateObject(oldRoom, "m.room.canonical_alias")
	if err != nil || len(old) == 0 {
		return err
	}
	local := func(alias string) bool {
		_, server, ok := ParseAlias(alias)
		return ok && server == x.m.cfg.ServerName
	}
	moved := map[string]any{}
	if a, ok := old["alias"].(string); ok && local(a) {
		moved["alias"] = a
		delete(old, "alias")
	}
	if alts, ok := old["alt_aliases"].([]any); ok {
		var keep, move []any
		for _, v := range alts {
			if a, ok := v.(string); ok && local(a) {
				move = append(move, a)
			} else {
				keep = append(keep, v)
			}
		}
		if len(move) > 0 {
			moved["alt_aliases"] = move
			if keep == nil {
				keep = []any{}
			}
			old["alt_aliases"] = keep
		}
	}
	if len(moved) == 0 {
		return nil
	}
	if _, _, _, err := x.appendState(newRoom, newVersion, "m.room.canonical_alias", "", moved); err != nil {
		return err
	}
	_, _, _, err = x.appendState(oldRoom, oldVersion, "m.room.canonical_alias", "", old)
	return err
}
