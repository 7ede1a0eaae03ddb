package notifications

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/projections/rooms"
)

// roomState is what the push rule conditions read about the room, shared
// by every member's evaluation of one event and loaded lazily.
type roomState struct {
	r        pebble.Reader
	roomID   string
	version  string
	members  int
	power    *event.PowerLevelsEventContent
	powerSet bool
	err      error // the first read error; the fold fails with it
}

// memberRoom is the room from one member's point of view (mautrix's
// pushrules.Room and PowerLevelfulRoom).
type memberRoom struct {
	*roomState
	user        string
	displayName string
}

func (m *memberRoom) GetMemberCount() int { return m.members }

func (m *memberRoom) GetOwnDisplayname() string { return m.displayName }

func (m *memberRoom) GetPowerLevels() *event.PowerLevelsEventContent {
	if !m.powerSet {
		m.powerSet = true
		pl, err := loadPower(m.r, m.roomID, m.version)
		if err != nil {
			m.fail(err)
		}
		m.power = pl
	}
	return m.power
}

func (s *roomState) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

// loadPower reads the room's power levels as far as
// sender_notification_permission needs them: user levels, users_default
// and notifications.room, read leniently (older room versions allow levels
// as strings); the creator at 100 without a power levels event, and in
// room versions with privileged creators the creators above everyone.
func loadPower(r pebble.Reader, roomID, version string) (*event.PowerLevelsEventContent, error) {
	plEv, err := rooms.StateEvent(r, roomID, "m.room.power_levels", "")
	if err != nil {
		return nil, err
	}
	createEv, err := rooms.StateEvent(r, roomID, "m.room.create", "")
	if err != nil {
		return nil, err
	}
	pl := &event.PowerLevelsEventContent{Users: map[id.UserID]int{}}
	if plEv != nil {
		var c struct {
			Users         map[string]json.RawMessage `json:"users"`
			UsersDefault  json.RawMessage            `json:"users_default"`
			Notifications struct {
				Room json.RawMessage `json:"room"`
			} `json:"notifications"`
		}
		_ = json.Unmarshal(plEv.Content, &c)
		for u, v := range c.Users {
			if n, ok := level(v); ok {
				pl.Users[id.UserID(u)] = n
			}
		}
		if n, ok := level(c.UsersDefault); ok {
			pl.UsersDefault = n
		}
		if n, ok := level(c.Notifications.Room); ok {
			pl.Notifications = &event.NotificationPowerLevels{RoomPtr: &n}
		}
	}
	if createEv == nil {
		return pl, nil
	}
	rv := id.RoomVersion(version)
	if rv.PrivilegedRoomCreators() {
		var cc event.CreateEventContent
		_ = json.Unmarshal(createEv.Content, &cc)
		cc.RoomVersion = rv
		pl.CreateEvent = &event.Event{Type: event.StateCreate, Sender: id.UserID(createEv.Sender), Content: event.Content{Parsed: &cc}}
	} else if plEv == nil {
		creator := createEv.Sender
		if rv.CreatorInContent() {
			var c struct {
				Creator string `json:"creator"`
			}
			_ = json.Unmarshal(createEv.Content, &c)
			creator = c.Creator
		}
		pl.Users[id.UserID(creator)] = 100
	}
	return pl, nil
}

// level reads a power level: an integer, or a string holding one.
func level(raw json.RawMessage) (int, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0, false
	}
	s := string(raw)
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		s = strings.TrimSpace(s)
	}
	if n, err := strconv.Atoi(s); err == nil {
		return n, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= -1<<53 && f <= 1<<53 {
		return int(f), true
	}
	return 0, false
}
