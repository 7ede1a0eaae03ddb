package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	"chronicle/projections/rooms"
	"chronicle/raft/machine"
)

// memberships are the values /members filters on.
var memberships = map[string]bool{"join": true, "invite": true, "knock": true, "leave": true, "ban": true}

// members is GET /rooms/{roomId}/members?at&membership&not_membership.
// The reader must be able to read the room's state (readableState: joined,
// a former member up to when they left, or anyone in a world-readable
// room); `at` (a sync or pagination token, a log position) picks an
// earlier point, never a later one than the reader may see.
func (s *Server) members(c echo.Context) error {
	roomID := c.Param("roomId")
	if !strings.HasPrefix(roomID, "!") || !validKeyPart(roomID) {
		return errInvalidParam("invalid room ID")
	}
	only, not := c.QueryParam("membership"), c.QueryParam("not_membership")
	if (only != "" && !memberships[only]) || (not != "" && !memberships[not]) {
		return errInvalidParam("membership and not_membership must be one of join, invite, knock, leave, ban")
	}
	var at uint64
	if tok := c.QueryParam("at"); tok != "" {
		var ok bool
		if at, ok = parseToken(tok); !ok {
			return errInvalidParam("invalid at token")
		}
		if err := s.waitForPosition(c.Request().Context(), at); err != nil {
			return err
		}
	}
	r := requester(c)
	var chunk []*rooms.Event
	err := s.state.View(func(rd pebble.Reader) error {
		_, upTo, err := readableState(rd, r.UserID, roomID)
		if err != nil {
			return err
		}
		if at != 0 {
			upTo = min(upTo, at)
		}
		state, err := rooms.StateAt(rd, roomID, upTo)
		if err != nil {
			return err
		}
		for _, ev := range state {
			if ev.Type != "m.room.member" {
				continue
			}
			m := ev.Membership()
			switch {
			case only == "" && not == "":
			case only != "" && m == only:
			case not != "" && m != not:
			default:
				continue
			}
			chunk = append(chunk, ev)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"chunk": viewer{UserID: r.UserID, DeviceID: r.DeviceID}.renderAll(chunk)})
}

type roomMember struct {
	DisplayName string `json:"display_name,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// joinedMembers is GET /rooms/{roomId}/joined_members: the current
// members with their room profile. Only a current member may ask (403
// otherwise, as the spec and Synapse say).
func (s *Server) joinedMembers(c echo.Context) error {
	roomID := c.Param("roomId")
	if !strings.HasPrefix(roomID, "!") || !validKeyPart(roomID) {
		return errInvalidParam("invalid room ID")
	}
	r := requester(c)
	joined := map[string]roomMember{}
	err := s.state.View(func(rd pebble.Reader) error {
		m, err := rooms.GetMembership(rd, r.UserID, roomID)
		if err != nil {
			return err
		}
		if m == nil || m.Membership != "join" {
			return errForbidden("You are not a member of this room")
		}
		users, err := rooms.JoinedMembers(rd, roomID)
		if err != nil {
			return err
		}
		for _, u := range users {
			ev, err := rooms.StateEvent(rd, roomID, "m.room.member", u)
			if err != nil {
				return err
			}
			var profile struct {
				DisplayName *string `json:"displayname"`
				AvatarURL   *string `json:"avatar_url"`
			}
			if ev != nil {
				_ = json.Unmarshal(ev.Content, &profile) // a field of the wrong type is left out
			}
			var rm roomMember
			if profile.DisplayName != nil {
				rm.DisplayName = *profile.DisplayName
			}
			if profile.AvatarURL != nil {
				rm.AvatarURL = *profile.AvatarURL
			}
			joined[u] = rm
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"joined": joined})
}

// forgetRoom is POST /rooms/{roomId}/forget: after leaving, the room
// disappears from the user's sync (rooms.leave) and its history from
// their reads (raft/machine/forget.go, projections/rooms/forget.go).
func (s *Server) forgetRoom(c echo.Context) error {
	roomID := c.Param("roomId")
	if !strings.HasPrefix(roomID, "!") || !validKeyPart(roomID) {
		return errInvalidParam("invalid room ID")
	}
	var body map[string]json.RawMessage
	if err := readJSON(c, &body, true); err != nil {
		return err
	}
	r := requester(c)
	return s.submitAndAck(c, r, machine.CmdForgetRoom, &machine.ForgetRoom{RoomID: roomID})
}
