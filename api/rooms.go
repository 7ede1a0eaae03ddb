package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"
	"maunium.net/go/mautrix/id"

	rlog "chronicle/log"
	"chronicle/projections/rooms"
	"chronicle/raft/machine"
)

type createRoomRequest struct {
	Visibility                string               `json:"visibility"`
	RoomAliasName             string               `json:"room_alias_name"`
	Name                      *string              `json:"name"`
	Topic                     *string              `json:"topic"`
	Invite                    []string             `json:"invite"`
	Invite3PID                []json.RawMessage    `json:"invite_3pid"`
	RoomVersion               string               `json:"room_version"`
	CreationContent           json.RawMessage      `json:"creation_content"`
	InitialState              []machine.StateEvent `json:"initial_state"`
	Preset                    string               `json:"preset"`
	IsDirect                  bool                 `json:"is_direct"`
	PowerLevelContentOverride json.RawMessage      `json:"power_level_content_override"`
}

func validUserID(u string) bool { return machine.ValidUserID(u) }

func isObject(raw json.RawMessage) bool {
	if len(raw) == 0 || string(raw) == "null" {
		return true
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil
}

func (s *Server) createRoom(c echo.Context) error {
	var req createRoomRequest
	if err := readJSON(c, &req, false); err != nil {
		return err
	}
	if len(req.Invite3PID) > 0 {
		return errorf(400, "M_UNKNOWN", "invite_3pid needs an identity server, and this server has none configured")
	}
	alias, err := s.roomAliasOf(req.RoomAliasName)
	if err != nil {
		return err
	}
	switch req.Visibility {
	case "", "public", "private":
	default:
		return errBadJSON("visibility must be public or private")
	}
	switch req.Preset {
	case "", "public_chat", "private_chat", "trusted_private_chat":
	default:
		return errBadJSON("unknown preset")
	}
	for _, u := range req.Invite {
		if !validUserID(u) {
			return errInvalidParam("invalid user ID in invite: " + u)
		}
	}
	if !isObject(req.CreationContent) || !isObject(req.PowerLevelContentOverride) {
		return errBadJSON("creation_content and power_level_content_override must be objects")
	}
	for _, se := range req.InitialState {
		if se.Type == "" || len(se.Content) == 0 || !isObject(se.Content) {
			return errBadJSON("initial_state entries need a type and an object content")
		}
	}
	r := requester(c)
	cmd := &machine.CreateRoom{
		RoomVersion: req.RoomVersion, Preset: req.Preset, Visibility: req.Visibility, Name: req.Name,
		Topic: req.Topic, Invite: req.Invite, IsDirect: req.IsDirect, CreationContent: req.CreationContent,
		PowerLevelContentOverride: req.PowerLevelContentOverride, InitialState: req.InitialState,
		Alias: alias,
	}
	if v := id.RoomVersion(req.RoomVersion); v != "" && !v.RoomIDIsCreateEventID() {
		cmd.RoomID = "!" + randomID(18) + ":" + s.cfg.ServerName
	}
	res, err := s.submitCmd(c, machine.CmdCreateRoom, r.UserID, r.DeviceID, cmd)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"room_id": res.RoomID})
}

type membershipRequest struct {
	UserID string `json:"user_id"`
	Reason string `json:"reason"`
}

// changeMembership submits a membership change and answers {room_id} or {}.
func (s *Server) changeMembership(c echo.Context, roomID, target, membership, reason string) (*machine.Result, error) {
	if !strings.HasPrefix(roomID, "!") {
		return nil, errInvalidParam("invalid room ID")
	}
	if !validUserID(target) {
		return nil, errInvalidParam("invalid user ID")
	}
	r := requester(c)
	return s.submitCmd(c, machine.CmdMembership, r.UserID, r.DeviceID, &machine.Membership{
		RoomID: roomID, Target: target, Membership: membership, Reason: reason,
	})
}

func (s *Server) joinRoom(c echo.Context) error { return s.join(c, c.Param("roomId")) }

func (s *Server) joinByIDOrAlias(c echo.Context) error {
	target := c.Param("roomIdOrAlias")
	if strings.HasPrefix(target, "#") {
		roomID, err := s.resolveAlias(target)
		if err != nil {
			return err
		}
		target = roomID
	}
	return s.join(c, target)
}

func (s *Server) join(c echo.Context, roomID string) error {
	var req membershipRequest
	if err := readJSON(c, &req, true); err != nil {
		return err
	}
	if _, err := s.changeMembership(c, roomID, requester(c).UserID, "join", req.Reason); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"room_id": roomID})
}

func (s *Server) leaveRoom(c echo.Context) error {
	var req membershipRequest
	if err := readJSON(c, &req, true); err != nil {
		return err
	}
	if _, err := s.changeMembership(c, c.Param("roomId"), requester(c).UserID, "leave", req.Reason); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

// targetMembership handles invite, kick, ban and unban: the body names the
// target user.
func (s *Server) targetMembership(c echo.Context, membership string) error {
	var req membershipRequest
	if err := readJSON(c, &req, false); err != nil {
		return err
	}
	if req.UserID == "" {
		return errMissingParam("user_id is required")
	}
	if _, err := s.changeMembership(c, c.Param("roomId"), req.UserID, membership, req.Reason); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

func (s *Server) inviteUser(c echo.Context) error { return s.targetMembership(c, "invite") }
func (s *Server) kickUser(c echo.Context) error   { return s.targetMembership(c, "kick") }
func (s *Server) banUser(c echo.Context) error    { return s.targetMembership(c, "ban") }

func (s *Server) unbanUser(c echo.Context) error {
	return s.targetMembership(c, "unban")
}

func (s *Server) joinedRooms(c echo.Context) error {
	r := requester(c)
	joined := []string{}
	err := s.state.View(func(rd pebble.Reader) error {
		list, err := rooms.UserRooms(rd, r.UserID)
		for _, ur := range list {
			if ur.Membership.Membership == "join" {
				joined = append(joined, ur.RoomID)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"joined_rooms": joined})
}

// validEventType refuses types and state keys that cannot be stored.
func validKeyPart(s string) bool { return !strings.ContainsRune(s, 0) && len(s) <= 255 }

func (s *Server) sendMessage(c echo.Context) error {
	evType, txnID := c.Param("eventType"), c.Param("txnId")
	if evType == "" || !validKeyPart(evType) || !validKeyPart(txnID) {
		return errInvalidParam("invalid event type or transaction ID")
	}
	content, err := readObject(c)
	if err != nil {
		return err
	}
	return s.sendEvent(c, evType, nil, content, txnID)
}

func (s *Server) putState(c echo.Context) error {
	evType, sk := c.Param("eventType"), c.Param("stateKey")
	if evType == "" || !validKeyPart(evType) || !validKeyPart(sk) {
		return errInvalidParam("invalid event type or state key")
	}
	content, err := readObject(c)
	if err != nil {
		return err
	}
	return s.sendEvent(c, evType, &sk, content, "")
}

func (s *Server) sendEvent(c echo.Context, evType string, sk *string, content json.RawMessage, txnID string) error {
	roomID := c.Param("roomId")
	if !strings.HasPrefix(roomID, "!") {
		return errInvalidParam("invalid room ID")
	}
	r := requester(c)
	res, err := s.submitCmd(c, machine.CmdSendEvent, r.UserID, r.DeviceID, &machine.SendEvent{
		RoomID: roomID, Type: evType, StateKey: sk, Content: content, TxnID: txnID,
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"event_id": res.EventID})
}

// readableState returns the reader's visibility in a room and the
// position whose state they may read (see rooms.Visibility.StateUpTo), or
// M_FORBIDDEN.
func readableState(r pebble.Reader, userID, roomID string) (*rooms.Visibility, uint64, error) {
	v, err := rooms.LoadVisibility(r, roomID, userID)
	if err != nil {
		return nil, 0, err
	}
	head, err := rlog.ReadHead(r)
	if err != nil {
		return nil, 0, err
	}
	upTo, ok := v.StateUpTo(head.Seq)
	if !ok {
		return nil, 0, errForbidden("You are not allowed to read this room")
	}
	return v, upTo, nil
}

func (s *Server) getState(c echo.Context) error {
	roomID, evType, sk := c.Param("roomId"), c.Param("eventType"), c.Param("stateKey")
	r := requester(c)
	var ev *rooms.Event
	err := s.state.View(func(rd pebble.Reader) error {
		_, upTo, err := readableState(rd, r.UserID, roomID)
		if err != nil {
			return err
		}
		ref, err := rooms.CurrentStateRef(rd, roomID, evType, sk)
		if err != nil || ref == nil {
			return err
		}
		if ref.Seq > upTo {
			state, err := rooms.StateAt(rd, roomID, upTo)
			for _, e := range state {
				if e.Type == evType && *e.StateKey == sk {
					ev = e
				}
			}
			return err
		}
		ev, err = rooms.GetEvent(rd, roomID, ref.Seq)
		return err
	})
	if err != nil {
		return err
	}
	if ev == nil {
		return errNotFound("Event not found")
	}
	if c.QueryParam("format") == "event" {
		return c.JSON(http.StatusOK, viewer{UserID: r.UserID, DeviceID: r.DeviceID}.render(ev))
	}
	return c.JSONBlob(http.StatusOK, ev.Content)
}

func (s *Server) getAllState(c echo.Context) error {
	roomID := c.Param("roomId")
	r := requester(c)
	var state []*rooms.Event
	err := s.state.View(func(rd pebble.Reader) error {
		_, upTo, err := readableState(rd, r.UserID, roomID)
		if err != nil {
			return err
		}
		state, err = rooms.StateAt(rd, roomID, upTo)
		return err
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewer{UserID: r.UserID, DeviceID: r.DeviceID}.renderAll(state))
}
