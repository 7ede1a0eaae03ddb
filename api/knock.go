package api

import (
	"net/http"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	"chronicle/projections/rooms"
)

// knockRoom is POST /knock/{roomIdOrAlias}: the requester asks to join.
// The room's join rule must be knock (v7+) or knock_restricted (v10+);
// the auth rules decide. A moderator accepts with an invite and refuses
// with a kick; the knocker may withdraw by leaving. via is ignored: every
// room this server can knock on is local.
func (s *Server) knockRoom(c echo.Context) error {
	target := c.Param("roomIdOrAlias")
	if strings.HasPrefix(target, "#") {
		roomID, err := s.resolveAlias(target)
		if err != nil {
			return err
		}
		target = roomID
	}
	var req membershipRequest
	if err := readJSON(c, &req, true); err != nil {
		return err
	}
	if _, err := s.changeMembership(c, target, requester(c).UserID, "knock", req.Reason); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"room_id": target})
}

// knockedRoom is a room in /sync's rooms.knock.
type knockedRoom struct {
	KnockState struct {
		Events []strippedEvent `json:"events"`
	} `json:"knock_state"`
}

// knockState is what a knocker sees of the room: the same stripped state
// an invitee sees, ending with their own knock.
func knockState(r pebble.Reader, m rooms.UserRoom) (*knockedRoom, error) {
	ir, err := inviteState(r, m)
	if err != nil {
		return nil, err
	}
	kr := &knockedRoom{}
	kr.KnockState.Events = ir.InviteState.Events
	return kr, nil
}
