package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	"chronicle/projections/reports"
	"chronicle/raft/machine"
)

// Reporting content (spec: "Reporting content"). Every report is a record
// in the log; administrators list them with GET /_chronicle/v1/reports.

type reportRequest struct {
	Reason *string `json:"reason"`
	// Score is accepted from clients of spec versions before 1.18.
	Score *int `json:"score"`
}

func (s *Server) fileReport(c echo.Context, rep *machine.Report) error {
	r := requester(c)
	return s.submitAndAck(c, r, machine.CmdReport, rep)
}

// readReport reads a report's body. The spec requires reason for room and
// user reports but lets it be blank; clients that omit a blank reason
// (mautrix-go does) are accepted as if they had sent "".
func readReport(c echo.Context) (*reportRequest, error) {
	var req reportRequest
	if err := readJSON(c, &req, true); err != nil {
		return nil, err
	}
	return &req, nil
}

func (req *reportRequest) reason() string {
	if req.Reason == nil {
		return ""
	}
	return *req.Reason
}

// reportEvent is POST /rooms/{roomId}/report/{eventId}. The reporter must
// be joined to the room; an unknown event and a room the reporter is not
// in both answer M_NOT_FOUND.
func (s *Server) reportEvent(c echo.Context) error {
	roomID, eventID := c.Param("roomId"), c.Param("eventId")
	if !strings.HasPrefix(roomID, "!") {
		return errInvalidParam("invalid room ID")
	}
	if !strings.HasPrefix(eventID, "$") {
		return errNotFound("the event was not found or you are not joined to the room")
	}
	req, err := readReport(c)
	if err != nil {
		return err
	}
	if req.Score != nil && (*req.Score < -100 || *req.Score > 0) {
		return errInvalidParam("score must be between -100 and 0")
	}
	return s.fileReport(c, &machine.Report{RoomID: roomID, EventID: eventID, Reason: req.reason(), Score: req.Score})
}

// reportRoom is POST /rooms/{roomId}/report; the reporter need not be in
// the room.
func (s *Server) reportRoom(c echo.Context) error {
	roomID := c.Param("roomId")
	if !strings.HasPrefix(roomID, "!") {
		return errInvalidParam("invalid room ID")
	}
	req, err := readReport(c)
	if err != nil {
		return err
	}
	return s.fileReport(c, &machine.Report{RoomID: roomID, Reason: req.reason()})
}

// reportUser is POST /users/{userId}/report; the reporter need share no
// room with the user.
func (s *Server) reportUser(c echo.Context) error {
	userID := c.Param("userId")
	if !validUserID(userID) {
		return errInvalidParam("invalid user ID")
	}
	req, err := readReport(c)
	if err != nil {
		return err
	}
	return s.fileReport(c, &machine.Report{UserID: userID, Reason: req.reason()})
}

const (
	defaultReportsLimit = 100
	maxReportsLimit     = 1000
)

// reportView is one report as administrators see it.
type reportView struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Reporter string `json:"reporter"`
	TS       int64  `json:"received_ts"`
	RoomID   string `json:"room_id,omitempty"`
	EventID  string `json:"event_id,omitempty"`
	UserID   string `json:"user_id,omitempty"`
	Reason   string `json:"reason"`
	Score    *int   `json:"score,omitempty"`
}

// listReports is GET /_chronicle/v1/reports?from=&limit= (administrators
// only): reports oldest first; next_batch, when present, is the from of
// the next page.
func (s *Server) listReports(c echo.Context) error {
	var after uint64
	if v := c.QueryParam("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return errInvalidParam("from must be a report ID")
		}
		after = n
	}
	limit := defaultReportsLimit
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errInvalidParam("limit must be a positive integer")
		}
		limit = min(n, maxReportsLimit)
	}
	var list []reports.Report
	var more bool
	if err := s.state.View(func(r pebble.Reader) error {
		var err error
		list, more, err = reports.List(r, after, limit)
		return err
	}); err != nil {
		return err
	}
	out := make([]reportView, 0, len(list))
	for _, rep := range list {
		out = append(out, reportView{
			ID: strconv.FormatUint(rep.ID, 10), Kind: rep.Kind, Reporter: rep.Reporter, TS: rep.Time,
			RoomID: rep.RoomID, EventID: rep.EventID, UserID: rep.UserID, Reason: rep.Reason, Score: rep.Score,
		})
	}
	body := map[string]any{"reports": out}
	if more && len(list) > 0 {
		body["next_batch"] = strconv.FormatUint(list[len(list)-1].ID, 10)
	}
	return c.JSON(http.StatusOK, body)
}
