package machine

import (
	"bytes"
	"encoding/json"
	"slices"

	"maunium.net/go/mautrix/id"

	"chronicle/projections/rooms"
)

// DefaultRoomVersion is used when /createRoom names none.
const DefaultRoomVersion = "12"

// SupportedRoomVersions are the versions rooms can be created in. Versions
// 1 and 2 use their own PDU format, with server-chosen event IDs
// (v1events.go).
var SupportedRoomVersions = []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"}

func (x *applyCtx) createRoom() (*Result, error) {
	var p CreateRoom
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	version, newID, rej, err := x.newRoomTarget(p.RoomVersion, p.RoomID)
	if err != nil || rej != nil {
		return &Result{Err: rej}, err
	}
	p.RoomVersion, p.RoomID = string(version), newID
	v12 := version.RoomIDIsCreateEventID()
	for _, u := range p.Invite {
		if !ValidUserID(u) {
			return &Result{Err: reject(KindInvalidParam, "invalid user ID %q in invite", u)}, nil
		}
	}
	preset := p.Preset
	if preset == "" {
		preset = "private_chat"
		if p.Visibility == "public" {
			preset = "public_chat"
		}
	}
	if preset != "private_chat" && preset != "public_chat" && preset != "trusted_private_chat" {
		return &Result{Err: reject(KindBadJSON, "unknown preset %q", preset)}, nil
	}
	if rej, err := x.roomAliasFree(p.Alias); err != nil || rej != nil {
		return &Result{Err: rej}, err
	}

	// 1. m.room.create
	create, err := objectOf(p.CreationContent)
	if err != nil {
		return &Result{Err: reject(KindBadJSON, "creation_content: %v", err)}, nil
	}
	if v12 && preset == "trusted_private_chat" {
		creators := stringList(create["additional_creators"])
		for _, u := range p.Invite {
			if !slices.Contains(creators, u) {
				creators = append(creators, u)
			}
		}
		if len(creators) > 0 {
			create["additional_creators"] = creators
		}
	}
	// 1. m.room.create and 2. the creator's join
	roomID, rej, err := x.openRoom(p.RoomID, version, create)
	if err != nil || rej != nil {
		return &Result{Err: rej}, err
	}

	state := func(evType, sk string, content any) (*Rejection, error) {
		_, _, rej, err := x.appendState(roomID, version, evType, sk, content)
		return rej, err
	}
	steps := []func() (*Rejection, error){
		// 3. power levels, with the override applied on top
		func() (*Rejection, error) {
			pl := defaultPowerLevels(x.cmd.Actor, v12, preset, p.Invite)
			override, err := objectOf(p.PowerLevelContentOverride)
			if err != nil {
				return reject(KindBadJSON, "power_level_content_override: %v", err), nil
			}
			for k, v := range override {
				pl[k] = v
			}
			return state("m.room.power_levels", "", pl)
		},
		// 4. the alias of room_alias_name and its m.room.canonical_alias
		func() (*Rejection, error) { return x.createRoomAlias(roomID, version, p.Alias) },
		// 5. preset state
		func() (*Rejection, error) {
			joinRule, guest := "invite", "can_join"
			if preset == "public_chat" {
				joinRule, guest = "public", "forbidden"
			}
			if rej, err := state("m.room.join_rules", "", map[string]any{"join_rule": joinRule}); rej != nil || err != nil {
				return rej, err
			}
			if rej, err := state("m.room.history_visibility", "", map[string]any{"history_visibility": "shared"}); rej != nil || err != nil {
				return rej, err
			}
			return state("m.room.guest_access", "", map[string]any{"guest_access": guest})
		},
		// 6. initial_state, in order
		func() (*Rejection, error) {
			for _, se := range p.InitialState {
				content, err := objectOf(se.Content)
				if err != nil {
					return reject(KindBadJSON, "initial_state %s: %v", se.Type, err), nil
				}
				if rej, err := x.checkCanonicalAlias(roomID, se.Type, &se.StateKey, se.Content); rej != nil || err != nil {
					return rej, err
				}
				if rej, err := state(se.Type, se.StateKey, content); rej != nil || err != nil {
					return rej, err
				}
			}
			return nil, nil
		},
		// 7. name and topic
		func() (*Rejection, error) {
			if p.Name != nil {
				if rej, err := state("m.room.name", "", map[string]any{"name": *p.Name}); rej != nil || err != nil {
					return rej, err
				}
			}
			if p.Topic != nil {
				return state("m.room.topic", "", topicContent(*p.Topic))
			}
			return nil, nil
		},
		// 8. invites
		func() (*Rejection, error) {
			for _, u := range p.Invite {
				content := map[string]any{"membership": "invite"}
				if p.IsDirect {
					content["is_direct"] = true
				}
				if err := x.withProfile(u, content); err != nil {
					return nil, err
				}
				if rej, err := state("m.room.member", u, content); rej != nil || err != nil {
					return rej, err
				}
			}
			return nil, nil
		},
	}
	for _, step := range steps {
		if rej, err := step(); rej != nil || err != nil {
			return &Result{Err: rej}, err
		}
	}
	if err := x.publishCreatedRoom(roomID, p.Visibility); err != nil {
		return nil, err
	}
	return &Result{RoomID: roomID}, nil
}

// newRoomTarget checks the room version and room ID a new room is to get
// (by /createRoom or an upgrade): the version must be supported ("" is the
// default); versions 1-11 need an unused room ID chosen by the API node,
// while v12+ derive it from the create event, so any given one is dropped.
func (x *applyCtx) newRoomTarget(versionName, roomID string) (id.RoomVersion, string, *Rejection, error) {
	if versionName == "" {
		versionName = DefaultRoomVersion
	}
	if !slices.Contains(SupportedRoomVersions, versionName) {
		return "", "", reject(KindUnsupportedRoomVersion, "room version %q is not supported", versionName), nil
	}
	version := id.RoomVersion(versionName)
	if version.RoomIDIsCreateEventID() {
		return version, "", nil, nil
	}
	if roomID == "" {
		return "", "", reject(KindInvalidParam, "room ID missing for room version %s", versionName), nil
	}
	if existing, err := rooms.GetRoom(x.b, roomID); err != nil {
		return "", "", nil, err
	} else if existing != nil {
		return "", "", reject(KindBadState, "room ID %s is already in use", roomID), nil
	}
	return version, roomID, nil, nil
}

// openRoom starts a new room: its m.room.create event, with room_version
// (and, in versions that want it, creator) set over the given content,
// then the creator's join. It returns the room ID.
func (x *applyCtx) openRoom(roomID string, version id.RoomVersion, create map[string]any) (string, *Rejection, error) {
	create["room_version"] = string(version)
	if !version.CreatorInContent() {
		delete(create, "creator")
	} else {
		create["creator"] = x.cmd.Actor
	}
	_, roomID, rej, err := x.appendState(roomID, version, "m.room.create", "", create)
	if err != nil || rej != nil {
		return "", rej, err
	}
	join := map[string]any{"membership": "join"}
	if err := x.withProfile(x.cmd.Actor, join); err != nil {
		return "", nil, err
	}
	_, _, rej, err = x.appendState(roomID, version, "m.room.member", x.cmd.Actor, join)
	return roomID, rej, err
}

// appendState authors a state event from a Go value.
func (x *applyCtx) appendState(roomID string, version id.RoomVersion, evType, sk string, content any) (string, string, *Rejection, error) {
	raw, err := json.Marshal(content) // map keys marshal sorted: deterministic
	if err != nil {
		return "", "", reject(KindBadJSON, "content of %s: %v", evType, err), nil
	}
	return x.appendEvent(&newEvent{RoomID: roomID, Version: version, Type: evType, StateKey: &sk, Content: raw})
}

func defaultPowerLevels(creator string, v12 bool, preset string, invite []string) map[string]any {
	users := map[string]any{}
	tombstone := 100
	if v12 {
		// Creators have infinite power in v12 and must not be listed.
		tombstone = 150
	} else {
		users[creator] = 100
		if preset == "trusted_private_chat" {
			for _, u := range invite {
				users[u] = 100
			}
		}
	}
	return map[string]any{
		"users":          users,
		"users_default":  0,
		"events_default": 0,
		"state_default":  50,
		"ban":            50,
		"kick":           50,
		"redact":         50,
		"invite":         0,
		"events": map[string]any{
			"m.room.name":               50,
			"m.room.power_levels":       100,
			"m.room.history_visibility": 100,
			"m.room.canonical_alias":    50,
			"m.room.avatar":             50,
			"m.room.tombstone":          tombstone,
			"m.room.server_acl":         100,
			"m.room.encryption":         100,
		},
		"notifications": map[string]any{"room": 50},
	}
}

func topicContent(topic string) map[string]any {
	return map[string]any{
		"topic": topic,
		"m.topic": map[string]any{
			"m.text": []any{map[string]any{"mimetype": "text/plain", "body": topic}},
		},
	}
}

// objectOf decodes a JSON object (numbers kept exact); empty means {}.
func objectOf(raw json.RawMessage) (map[string]any, error) {
	out := map[string]any{}
	if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
		return out, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

func stringList(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
