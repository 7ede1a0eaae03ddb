package machine

import (
	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/rooms"
)

type pebbleReader = pebble.Reader

func stateEventForTest(r pebble.Reader, roomID, evType string) ([]byte, error) {
	ev, err := rooms.StateEvent(r, roomID, evType, "")
	if err != nil || ev == nil {
		return nil, err
	}
	return ev.Content, nil
}
