package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"maunium.net/go/mautrix/id"

	"chronicle/raft/machine"
)

type upgradeRequest struct {
	NewVersion         string   `json:"new_version"`
	AdditionalCreators []string `json:"additional_creators"`
}

// upgradeRoom is POST /rooms/{roomId}/upgrade: one command creates the
// replacement room, copies its state, tombstones the old room and
// restricts it (see machine.UpgradeRoom).
func (s *Server) upgradeRoom(c echo.Context) error {
	roomID := c.Param("roomId")
	if !strings.HasPrefix(roomID, "!") {
		return errInvalidParam("invalid room ID")
	}
	var req upgradeRequest
	if err := readJSON(c, &req, false); err != nil {
		return err
	}
	if req.NewVersion == "" {
		return errMissingParam("new_version is required")
	}
	for _, u := range req.AdditionalCreators {
		if !validUserID(u) {
			return errInvalidParam("invalid user ID in additional_creators: " + u)
		}
	}
	cmd := &machine.UpgradeRoom{RoomID: roomID, NewVersion: req.NewVersion, AdditionalCreators: req.AdditionalCreators}
	if !id.RoomVersion(req.NewVersion).RoomIDIsCreateEventID() {
		cmd.NewRoomID = "!" + randomID(18) + ":" + s.cfg.ServerName
	}
	r := requester(c)
	res, err := s.submitCmd(c, machine.CmdUpgradeRoom, r.UserID, r.DeviceID, cmd)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"replacement_room": res.RoomID})
}
