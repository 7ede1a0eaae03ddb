package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	rlog "chronicle/log"
	"chronicle/projections/rooms"
)

// Reading single events and their surroundings. Every read goes through
// the reader's history visibility (rooms.Visibility.CanSee): an event the
// reader may not see is answered exactly like one that does not exist
// (404 M_NOT_FOUND), as the spec asks for /event, so that nobody learns
// which event IDs a room holds.

// visibleEvent loads an event of roomID that the user may see, or returns
// 404. It also returns the user's visibility for further checks.
func visibleEvent(r pebble.Reader, userID, roomID, eventID string) (*rooms.Event, *rooms.Visibility, error) {
	ref, err := rooms.LocateEvent(r, eventID)
	if err != nil {
		return nil, nil, err
	}
	if ref == nil || ref.RoomID != roomID {
		return nil, nil, errNotFound("Event not found")
	}
	ev, err := rooms.GetEvent(r, roomID, ref.Seq)
	if err != nil {
		return nil, nil, err
	}
	if ev == nil {
		return nil, nil, errNotFound("Event not found")
	}
	v, err := rooms.LoadVisibility(r, roomID, userID)
	if err != nil {
		return nil, nil, err
	}
	if !v.CanSee(ev) {
		return nil, nil, errNotFound("Event not found")
	}
	return ev, v, nil
}

func validRoomAndEvent(roomID, eventID string) error {
	if !strings.HasPrefix(roomID, "!") || !validKeyPart(roomID) {
		return errInvalidParam("invalid room ID")
	}
	if !strings.HasPrefix(eventID, "$") || !validKeyPart(eventID) {
		return errNotFound("Event not found")
	}
	return nil
}

// getEvent is GET /rooms/{roomId}/event/{eventId}.
func (s *Server) getEvent(c echo.Context) error {
	roomID, eventID := c.Param("roomId"), c.Param("eventId")
	if err := validRoomAndEvent(roomID, eventID); err != nil {
		return err
	}
	r := requester(c)
	var ev *rooms.Event
	err := s.state.View(func(rd pebble.Reader) error {
		var err error
		ev, _, err = visibleEvent(rd, r.UserID, roomID, eventID)
		return err
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewer{UserID: r.UserID, DeviceID: r.DeviceID}.render(ev))
}

// eventContext is GET /rooms/{roomId}/context/{eventId}: up to limit
// events around the event (half before, the rest after, as Synapse
// splits), each filtered by visibility and the filter, and the state at
// the last event returned. start and end are /messages tokens (log
// positions) just outside the events examined.
func (s *Server) eventContext(c echo.Context) error {
	roomID, eventID := c.Param("roomId"), c.Param("eventId")
	if err := validRoomAndEvent(roomID, eventID); err != nil {
		return err
	}
	limit, err := parseLimit(c, 10)
	if err != nil {
		return err
	}
	filter, err := s.resolveRoomEventFilter(requester(c).UserID, c.QueryParam("filter"))
	if err != nil {
		return err
	}
	r := requester(c)
	var ev *rooms.Event
	var before, after, state []*rooms.Event
	var start, end uint64
	err = s.state.View(func(rd pebble.Reader) error {
		var v *rooms.Visibility
		var err error
		if ev, v, err = visibleEvent(rd, r.UserID, roomID, eventID); err != nil {
			return err
		}
		head, err := rlog.ReadHead(rd)
		if err != nil {
			return err
		}
		nBefore := limit / 2
		var lastBefore, lastAfter uint64
		if before, lastBefore, _, err = filter.scan(rd, v, roomID, 0, ev.Seq-1, nBefore, true, nil); err != nil {
			return err
		}
		if after, lastAfter, _, err = filter.scan(rd, v, roomID, ev.Seq, head.Seq, limit-nBefore, false, nil); err != nil {
			return err
		}
		start, end = ev.Seq-1, ev.Seq
		if lastBefore != 0 {
			start = lastBefore - 1
		}
		if lastAfter != 0 {
			end = lastAfter
		}
		stateAt := ev.Seq
		if len(after) > 0 {
			stateAt = after[len(after)-1].Seq
		}
		all, err := rooms.StateAt(rd, roomID, stateAt)
		if err != nil {
			return err
		}
		state = contextState(all, filter, ev, before, after)
		return nil
	})
	if err != nil {
		return err
	}
	vw := viewer{UserID: r.UserID, DeviceID: r.DeviceID}
	return c.JSON(http.StatusOK, map[string]any{
		"event":         vw.render(ev),
		"events_before": vw.renderAll(before),
		"events_after":  vw.renderAll(after),
		"state":         vw.renderAll(state),
		"start":         formatToken(start),
		"end":           formatToken(end),
	})
}

// contextState applies the filter to the state, and with lazy-loading
// keeps only the member events of the returned events' senders.
func contextState(all []*rooms.Event, f *roomEventFilter, ev *rooms.Event, before, after []*rooms.Event) []*rooms.Event {
	senders := map[string]bool{ev.Sender: true}
	for _, e := range before {
		senders[e.Sender] = true
	}
	for _, e := range after {
		senders[e.Sender] = true
	}
	out := all[:0:0]
	for _, e := range all {
		if f.LazyLoadMembers && e.Type == "m.room.member" && !senders[*e.StateKey] {
			continue
		}
		if f.matchesEvent(e) {
			out = append(out, e)
		}
	}
	return out
}

// timestampToEvent is GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event:
// the visible event nearest to ts in the direction dir (rooms'
// timestamp index), or 404.
func (s *Server) timestampToEvent(c echo.Context) error {
	roomID := c.Param("roomId")
	if !strings.HasPrefix(roomID, "!") || !validKeyPart(roomID) {
		return errInvalidParam("invalid room ID")
	}
	tsParam := c.QueryParam("ts")
	if tsParam == "" {
		return errMissingParam("ts is required")
	}
	ts, err := strconv.ParseInt(tsParam, 10, 64)
	if err != nil {
		return errInvalidParam("ts must be an integer")
	}
	dir := c.QueryParam("dir")
	switch dir {
	case "f", "b":
	case "":
		return errMissingParam("dir is required")
	default:
		return errInvalidParam("dir must be f or b")
	}
	r := requester(c)
	var found *rooms.Event
	err = s.state.View(func(rd pebble.Reader) error {
		v, err := rooms.LoadVisibility(rd, roomID, r.UserID)
		if err != nil {
			return err
		}
		head, err := rlog.ReadHead(rd)
		if err != nil {
			return err
		}
		found, err = rooms.EventNearTimestamp(rd, roomID, ts, dir == "b", head.Seq, v.CanSee)
		return err
	})
	if err != nil {
		return err
	}
	if found == nil {
		direction := "forward"
		if dir == "b" {
			direction = "backward"
		}
		return errNotFound("Unable to find event from " + tsParam + " in " + direction + " direction")
	}
	return c.JSON(http.StatusOK, map[string]any{"event_id": found.EventID, "origin_server_ts": found.OriginServerTS})
}
