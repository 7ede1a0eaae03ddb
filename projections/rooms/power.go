package rooms

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// CurrentPower returns a room's current power levels as the auth rules
// read them: parsed leniently (ParsePowerLevels), the create event's sender
// at 100 when the room has no power levels yet, and in versions with
// privileged creators (v12+) the creators at infinite power. The state
// machine asks it before authoring events whose shape depends on power,
// and the notifications projection for sender_notification_permission;
// the auth rules still check every event themselves.
func CurrentPower(r pebble.Reader, roomID string, version id.RoomVersion) (*event.PowerLevelsEventContent, error) {
	createEv, err := StateEvent(r, roomID, "m.room.create", "")
	if err != nil {
		return nil, err
	}
	plEv, err := StateEvent(r, roomID, "m.room.power_levels", "")
	if err != nil {
		return nil, err
	}
	pl := &event.PowerLevelsEventContent{}
	if plEv != nil {
		pl = ParsePowerLevels(plEv.Content)
	}
	if createEv == nil {
		return pl, nil
	}
	if version.PrivilegedRoomCreators() {
		var cc event.CreateEventContent
		_ = json.Unmarshal(createEv.Content, &cc) // accepted by the auth rules; a bad field only loses creators
		cc.RoomVersion = version
		pl.CreateEvent = &event.Event{Type: event.StateCreate, Sender: id.UserID(createEv.Sender), Content: event.Content{Parsed: &cc}}
	} else if plEv == nil {
		creator := createEv.Sender
		if version.CreatorInContent() {
			var c struct {
				Creator string `json:"creator"`
			}
			_ = json.Unmarshal(createEv.Content, &c)
			creator = c.Creator
		}
		pl.Users = map[id.UserID]int{id.UserID(creator): 100}
	}
	return pl, nil
}

// ParsePowerLevels reads power levels the way the auth rules of every room
// version accept them: integers, and in versions before 10 also numeric
// strings and floats (truncated). Entries that are neither are skipped.
func ParsePowerLevels(raw json.RawMessage) *event.PowerLevelsEventContent {
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(raw, &fields)
	pl := &event.PowerLevelsEventContent{Users: map[id.UserID]int{}, Events: map[string]int{}}
	if v := PowerLevel(fields["users_default"]); v != nil {
		pl.UsersDefault = *v
	}
	if v := PowerLevel(fields["events_default"]); v != nil {
		pl.EventsDefault = *v
	}
	pl.StateDefaultPtr = PowerLevel(fields["state_default"])
	pl.InvitePtr = PowerLevel(fields["invite"])
	pl.KickPtr = PowerLevel(fields["kick"])
	pl.BanPtr = PowerLevel(fields["ban"])
	pl.RedactPtr = PowerLevel(fields["redact"])
	var notifications map[string]json.RawMessage
	_ = json.Unmarshal(fields["notifications"], &notifications)
	if v := PowerLevel(notifications["room"]); v != nil {
		pl.Notifications = &event.NotificationPowerLevels{RoomPtr: v}
	}
	for name, into := range map[string]func(k string, v int){
		"users":  func(k string, v int) { pl.Users[id.UserID(k)] = v },
		"events": func(k string, v int) { pl.Events[k] = v },
	} {
		var m map[string]json.RawMessage
		_ = json.Unmarshal(fields[name], &m)
		for k, raw := range m {
			if v := PowerLevel(raw); v != nil {
				into(k, *v)
			}
		}
	}
	return pl
}

// PowerLevel parses one power level: a JSON number, or a string holding an
// integer (older room versions); nil if it is neither.
func PowerLevel(raw json.RawMessage) *int {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	var s string
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return nil
		}
		s = strings.TrimSpace(s)
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil
		}
		return &n
	}
	var f json.Number
	if json.Unmarshal(raw, &f) != nil {
		return nil
	}
	if n, err := f.Int64(); err == nil {
		v := int(n)
		return &v
	}
	fl, err := f.Float64()
	if err != nil || math.IsNaN(fl) || math.IsInf(fl, 0) {
		return nil
	}
	v := int(fl)
	return &v
}
