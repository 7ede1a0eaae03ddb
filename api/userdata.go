package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	"chronicle/projections/accountdata"
	"chronicle/projections/presence"
	"chronicle/projections/rooms"
	"chronicle/raft/machine"
)

// Account data, tags, receipts, read markers, typing, presence and
// to-device messages: the writes that feed /sync. Each is a log record.

// serverControlledAccountData may not be set through the account data API.
var serverControlledAccountData = map[string]bool{"m.fully_read": true, "m.push_rules": true}

// sameUser refuses acting on another user's data.
func sameUser(c echo.Context, what string) (*Requester, error) {
	r := requester(c)
	if c.Param("userId") != r.UserID {
		return nil, errForbidden("Cannot access another user's " + what)
	}
	return r, nil
}

func (s *Server) putAccountData(c echo.Context) error {
	r, err := sameUser(c, "account data")
	if err != nil {
		return err
	}
	roomID, typ := c.Param("roomId"), c.Param("type")
	if c.Param("roomId") != "" && !strings.HasPrefix(roomID, "!") {
		return errInvalidParam("invalid room ID")
	}
	if serverControlledAccountData[typ] {
		return errorf(405, "M_BAD_JSON", "Cannot set %s through this API", typ)
	}
	content, err := readObject(c)
	if err != nil {
		return err
	}
	return s.submitAndAck(c, r, machine.CmdAccountData, &machine.AccountData{RoomID: roomID, Type: typ, Content: content})
}

func (s *Server) getAccountData(c echo.Context) error {
	r, err := sameUser(c, "account data")
	if err != nil {
		return err
	}
	roomID := c.Param("roomId")
	if roomID != "" && !strings.HasPrefix(roomID, "!") {
		return errInvalidParam("invalid room ID")
	}
	var content json.RawMessage
	if err := s.state.View(func(rd pebble.Reader) error {
		var err error
		content, err = accountdata.Get(rd, r.UserID, roomID, c.Param("type"))
		return err
	}); err != nil {
		return err
	}
	if content == nil {
		return errNotFound("No account data of that type")
	}
	return c.JSONBlob(http.StatusOK, content)
}

func (s *Server) getTags(c echo.Context) error {
	r, err := sameUser(c, "tags")
	if err != nil {
		return err
	}
	var content json.RawMessage
	if err := s.state.View(func(rd pebble.Reader) error {
		var err error
		content, err = accountdata.Get(rd, r.UserID, c.Param("roomId"), "m.tag")
		return err
	}); err != nil {
		return err
	}
	if content == nil {
		content = json.RawMessage(`{"tags":{}}`)
	}
	return c.JSONBlob(http.StatusOK, content)
}

func (s *Server) putTag(c echo.Context) error {
	r, err := sameUser(c, "tags")
	if err != nil {
		return err
	}
	content, err := readObject(c)
	if err != nil {
		return err
	}
	var tag struct {
		Order *float64 `json:"order"`
	}
	if err := decodeJSON(content, &tag, false); err != nil {
		return err
	}
	return s.submitAndAck(c, r, machine.CmdTag, &machine.Tag{RoomID: c.Param("roomId"), Tag: c.Param("tag"), Content: content})
}

func (s *Server) deleteTag(c echo.Context) error {
	r, err := sameUser(c, "tags")
	if err != nil {
		return err
	}
	return s.submitAndAck(c, r, machine.CmdTag, &machine.Tag{RoomID: c.Param("roomId"), Tag: c.Param("tag"), Delete: true})
}

func (s *Server) postReceipt(c echo.Context) error {
	r := requester(c)
	var body struct {
		ThreadID *string `json:"thread_id"`
	}
	if err := readJSON(c, &body, true); err != nil {
		return err
	}
	roomID, typ, eventID := c.Param("roomId"), c.Param("receiptType"), c.Param("eventId")
	thread := ""
	if body.ThreadID != nil {
		if *body.ThreadID == "" || typ == "m.fully_read" {
			return errInvalidParam("thread_id must be a thread root event ID or main, and only on read receipts")
		}
		thread = *body.ThreadID
	}
	var err error
	switch typ {
	case "m.read", "m.read.private":
		_, err = s.submitCmd(c, machine.CmdReceipt, r.UserID, r.DeviceID, &machine.Receipt{RoomID: roomID, Type: typ, EventID: eventID, ThreadID: thread})
	case "m.fully_read":
		_, err = s.submitCmd(c, machine.CmdReadMarkers, r.UserID, r.DeviceID, &machine.ReadMarkers{RoomID: roomID, FullyRead: eventID})
	default:
		return errInvalidParam("unknown receipt type " + typ)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

func (s *Server) postReadMarkers(c echo.Context) error {
	r := requester(c)
	var body struct {
		FullyRead   string `json:"m.fully_read"`
		Read        string `json:"m.read"`
		ReadPrivate string `json:"m.read.private"`
	}
	if err := readJSON(c, &body, false); err != nil {
		return err
	}
	if _, err := s.submitCmd(c, machine.CmdReadMarkers, r.UserID, r.DeviceID, &machine.ReadMarkers{
		RoomID: c.Param("roomId"), FullyRead: body.FullyRead, Read: body.Read, ReadPrivate: body.ReadPrivate,
	}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

func (s *Server) putTyping(c echo.Context) error {
	r, err := sameUser(c, "typing state")
	if err != nil {
		return err
	}
	var body struct {
		Typing  *bool  `json:"typing"`
		Timeout *int64 `json:"timeout"`
	}
	if err := readJSON(c, &body, false); err != nil {
		return err
	}
	if body.Typing == nil {
		return errBadJSON("typing is required")
	}
	timeout := int64(30000)
	if body.Timeout != nil {
		timeout = *body.Timeout
	}
	return s.submitAndAck(c, r, machine.CmdTyping, &machine.Typing{RoomID: c.Param("roomId"), Typing: *body.Typing, Timeout: timeout})
}

func (s *Server) putPresence(c echo.Context) error {
	r, err := sameUser(c, "presence")
	if err != nil {
		return err
	}
	var body struct {
		Presence  string `json:"presence"`
		StatusMsg string `json:"status_msg"`
	}
	if err := readJSON(c, &body, false); err != nil {
		return err
	}
	switch body.Presence {
	case "online", "unavailable", "offline":
	default:
		return errInvalidParam("presence must be online, unavailable or offline")
	}
	return s.submitAndAck(c, r, machine.CmdPresence, &machine.Presence{Presence: body.Presence, StatusMsg: body.StatusMsg})
}

// sharesRoom reports whether two users are joined to a common room.
func sharesRoom(r pebble.Reader, a, b string) (bool, error) {
	return rooms.SharesJoinedRoom(r, a, b)
}

func (s *Server) getPresence(c echo.Context) error {
	r := requester(c)
	target := c.Param("userId")
	var st *presence.State
	err := s.state.View(func(rd pebble.Reader) error {
		if target != r.UserID {
			ok, err := sharesRoom(rd, r.UserID, target)
			if err != nil {
				return err
			}
			if !ok {
				return errForbidden("You do not share a room with this user")
			}
		}
		var err error
		st, err = presence.Get(rd, target)
		return err
	})
	if err != nil {
		return err
	}
	if st == nil {
		return c.JSON(http.StatusOK, map[string]any{"presence": "offline"})
	}
	return c.JSON(http.StatusOK, presenceContent(st, false))
}

// presenceContent renders the spec's presence fields.
func presenceContent(st *presence.State, withUser bool) map[string]any {
	out := map[string]any{
		"presence":         st.Presence,
		"last_active_ago":  max(time.Now().UnixMilli()-st.LastActive, 0),
		"currently_active": st.Presence == "online",
	}
	if st.StatusMsg != "" {
		out["status_msg"] = st.StatusMsg
	}
	return out
}

func (s *Server) sendToDevice(c echo.Context) error {
	r := requester(c)
	var body struct {
		Messages map[string]map[string]json.RawMessage `json:"messages"`
	}
	if err := readJSON(c, &body, false); err != nil {
		return err
	}
	for user, devices := range body.Messages {
		if !validUserID(user) {
			return errInvalidParam("invalid user ID " + user)
		}
		for _, content := range devices {
			if !isObject(content) || len(content) == 0 {
				return errBadJSON("to-device content must be a JSON object")
			}
		}
	}
	if _, err := s.submitCmd(c, machine.CmdSendToDevice, r.UserID, r.DeviceID, &machine.SendToDevice{
		Type: c.Param("eventType"), TxnID: c.Param("txnId"), Messages: body.Messages,
	}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}
