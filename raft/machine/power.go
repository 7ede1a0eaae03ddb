package machine

import (
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"chronicle/projections/rooms"
)

// currentPower returns a room's current power levels as the auth rules
// read them (rooms.CurrentPower). The machine asks it before authoring
// events whose shape depends on power (who may authorise a restricted
// join, whether an upgrade may begin); the auth rules still check every
// event itself.
func (x *applyCtx) currentPower(roomID string, version id.RoomVersion) (*event.PowerLevelsEventContent, error) {
	return rooms.CurrentPower(x.b, roomID, version)
}
