package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	"chronicle/projections/notifications"
	"chronicle/projections/pushrules"
	"chronicle/projections/rooms"
)

// Notification counts in /sync, m.push_rules in /sync account data, and
// GET /notifications (projections/notifications).

// unreadCounts is the spec's unread_notifications object.
type unreadCounts struct {
	HighlightCount    uint64 `json:"highlight_count"`
	NotificationCount uint64 `json:"notification_count"`
}

// unreadThreadsWanted reports whether the sync filter asked for
// per-thread counts (room.timeline.unread_thread_notifications).
func unreadThreadsWanted(req *syncRequest) bool {
	return req.filter.Room.Timeline.UnreadThreadNotifications
}

// addUnreadCounts fills a joined room's unread_notifications and, when the
// filter asks for them, unread_thread_notifications: then the room's
// counts are the main timeline's only and each thread with anything unread
// is listed by its root.
func addUnreadCounts(r pebble.Reader, req *syncRequest, roomID string, jr *joinedRoom) error {
	tcs, err := notifications.RoomCounts(r, req.viewer.UserID, roomID)
	if err != nil {
		return err
	}
	if !unreadThreadsWanted(req) {
		t := notifications.Total(tcs)
		jr.UnreadNotifications = &unreadCounts{HighlightCount: t.Highlight, NotificationCount: t.Notify}
		return nil
	}
	jr.UnreadNotifications = &unreadCounts{}
	for _, tc := range tcs {
		c := &unreadCounts{HighlightCount: tc.Highlight, NotificationCount: tc.Notify}
		if tc.Thread == "" {
			jr.UnreadNotifications = c
			continue
		}
		if jr.UnreadThreadNotifications == nil {
			jr.UnreadThreadNotifications = map[string]*unreadCounts{}
		}
		jr.UnreadThreadNotifications[tc.Thread] = c
	}
	return nil
}

// pushRulesEvent returns the m.push_rules account data event when the
// sync needs it: on a sync from scratch (or full_state), or when the
// user's rules changed after the token.
func pushRulesEvent(r pebble.Reader, user string, after uint64) (*basicEvent, error) {
	if after != 0 {
		changed, err := pushrules.ChangedAt(r, user)
		if err != nil || changed <= after {
			return nil, err
		}
	}
	rs, err := pushrules.Load(r, user)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(map[string]any{"global": rs})
	if err != nil {
		return nil, err
	}
	return &basicEvent{Type: "m.push_rules", Content: raw}, nil
}

const (
	defaultNotificationsLimit = 20
	maxNotificationsLimit     = 100
)

// notificationsList is GET /notifications: the user's recent notifications,
// newest first. from is the next_token of an earlier page.
func (s *Server) notificationsList(c echo.Context) error {
	r := requester(c)
	from := ^uint64(0)
	if v := c.QueryParam("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return errInvalidParam("invalid from token")
		}
		from = n
	}
	limit := defaultNotificationsLimit
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errInvalidParam("limit must be a non-negative integer")
		}
		limit = min(n, maxNotificationsLimit)
	}
	onlyHighlight := c.QueryParam("only") == "highlight"
	type notification struct {
		Actions json.RawMessage `json:"actions"`
		Event   clientEvent     `json:"event"`
		Read    bool            `json:"read"`
		RoomID  string          `json:"room_id"`
		TS      int64           `json:"ts"`
	}
	out := struct {
		NextToken     string         `json:"next_token,omitempty"`
		Notifications []notification `json:"notifications"`
	}{Notifications: []notification{}}
	v := viewer{UserID: r.UserID, DeviceID: r.DeviceID, OmitRoomID: true}
	err := s.state.View(func(rd pebble.Reader) error {
		list, next, err := notifications.List(rd, r.UserID, from, limit, onlyHighlight)
		if err != nil {
			return err
		}
		if next != 0 {
			out.NextToken = strconv.FormatUint(next, 10)
		}
		for i := range list {
			n := &list[i]
			ev, err := rooms.GetEvent(rd, n.RoomID, n.Seq)
			if err != nil {
				return err
			}
			if ev == nil {
				continue
			}
			// ts: when the notification was made, which is when its
			// event was (both are decided in the same fold).
			out.Notifications = append(out.Notifications, notification{
				Actions: n.Actions, Event: v.render(ev), Read: n.Read, RoomID: n.RoomID, TS: ev.OriginServerTS,
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}
