package notifications

import (
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

// loadPower reads the room's power levels as the auth rules read them
// (sender_notification_permission compares the sender's level with
// notifications.room).
func loadPower(r pebble.Reader, roomID, version string) (*event.PowerLevelsEventContent, error) {
	return rooms.CurrentPower(r, roomID, id.RoomVersion(version))
}
