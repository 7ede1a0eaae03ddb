package api

import (
	"net/http"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"
	"maunium.net/go/mautrix/id"

	"chronicle/projections/accounts"
	"chronicle/raft/machine"
)

type registerRequest struct {
	Username                 string         `json:"username"`
	Password                 string         `json:"password"`
	DeviceID                 string         `json:"device_id"`
	InitialDeviceDisplayName string         `json:"initial_device_display_name"`
	InhibitLogin             bool           `json:"inhibit_login"`
	Auth                     map[string]any `json:"auth"`
}

// userIDFor validates a requested localpart (M_INVALID_USERNAME) and
// returns the full user ID.
func (s *Server) userIDFor(localpart string) (string, error) {
	if err := id.ValidateUserLocalpart(localpart); err != nil {
		return "", errorf(400, "M_INVALID_USERNAME", "Invalid username: %v", err)
	}
	userID := "@" + localpart + ":" + s.cfg.ServerName
	if len(userID) > 255 {
		return "", errorf(400, "M_INVALID_USERNAME", "User ID is longer than 255 bytes")
	}
	return userID, nil
}

func (s *Server) userExists(userID string) (bool, error) {
	var u *accounts.User
	err := s.state.View(func(r pebble.Reader) error {
		var err error
		u, err = accounts.GetUser(r, userID)
		return err
	})
	return u != nil, err
}

func (s *Server) register(c echo.Context) error {
	var req registerRequest
	if err := readJSON(c, &req, false); err != nil {
		return err
	}
	if kind := c.QueryParam("kind"); kind != "" && kind != "user" {
		return errorf(403, "M_GUEST_ACCESS_FORBIDDEN", "Guest registration is disabled")
	}
	localpart := req.Username
	if localpart == "" {
		localpart = strings.ToLower(randomID(12))
	}
	userID, err := s.userIDFor(localpart)
	if err != nil {
		return err
	}
	if taken, err := s.userExists(userID); err != nil {
		return err
	} else if taken {
		return errorf(400, "M_USER_IN_USE", "User ID already taken")
	}
	// User-interactive auth: one stage, m.login.dummy. The dummy stage has
	// nothing to remember, so any node can complete any session.
	if t, _ := req.Auth["type"].(string); t != "m.login.dummy" {
		session, _ := req.Auth["session"].(string)
		if session == "" {
			session = randomID(24)
		}
		return c.JSON(http.StatusUnauthorized, map[string]any{
			"flows":   []map[string]any{{"stages": []string{"m.login.dummy"}}},
			"params":  map[string]any{},
			"session": session,
		})
	}
	if len(req.Password) > 512 {
		return errInvalidParam("password is too long")
	}
	cmd := &machine.Register{UserID: userID, InhibitLogin: req.InhibitLogin, DisplayName: req.InitialDeviceDisplayName}
	if req.Password != "" {
		h, err := bcrypt.GenerateFromPassword([]byte(req.Password), bcrypt.DefaultCost)
		if err != nil {
			return err
		}
		cmd.PasswordHash = string(h)
	}
	var token string
	if !req.InhibitLogin {
		cmd.DeviceID = req.DeviceID
		if cmd.DeviceID == "" {
			cmd.DeviceID = randomID(10)
		}
		token, cmd.TokenHash = newToken()
	}
	if _, err := s.submitCmd(c, machine.CmdRegister, "", "", cmd); err != nil {
		return err
	}
	resp := map[string]any{"user_id": userID, "home_server": s.cfg.ServerName}
	if !req.InhibitLogin {
		resp["access_token"] = token
		resp["device_id"] = cmd.DeviceID
	}
	return c.JSON(http.StatusOK, resp)
}

func (s *Server) registerAvailable(c echo.Context) error {
	userID, err := s.userIDFor(c.QueryParam("username"))
	if err != nil {
		return err
	}
	taken, err := s.userExists(userID)
	if err != nil {
		return err
	}
	if taken {
		return errorf(400, "M_USER_IN_USE", "User ID already taken")
	}
	return c.JSON(http.StatusOK, map[string]bool{"available": true})
}

func (s *Server) loginFlows(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"flows": []map[string]string{{"type": "m.login.password"}}})
}

type loginRequest struct {
	Type       string `json:"type"`
	Identifier struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
	User                     string `json:"user"` // deprecated form
	Password                 string `json:"password"`
	DeviceID                 string `json:"device_id"`
	InitialDeviceDisplayName string `json:"initial_device_display_name"`
}

func (s *Server) login(c echo.Context) error {
	var req loginRequest
	if err := readJSON(c, &req, false); err != nil {
		return err
	}
	if req.Type != "m.login.password" {
		return errorf(400, "M_UNKNOWN", "Unsupported login type %q", req.Type)
	}
	user := req.Identifier.User
	if user == "" {
		user = req.User
	}
	if req.Identifier.Type != "" && req.Identifier.Type != "m.id.user" {
		return errorf(400, "M_UNKNOWN", "Unsupported identifier type %q", req.Identifier.Type)
	}
	if user == "" {
		return errMissingParam("identifier.user is required")
	}
	userID := user
	if !strings.HasPrefix(user, "@") {
		userID = "@" + strings.ToLower(user) + ":" + s.cfg.ServerName
	}
	var u *accounts.User
	if err := s.state.View(func(r pebble.Reader) error {
		var err error
		u, err = accounts.GetUser(r, userID)
		return err
	}); err != nil {
		return err
	}
	// Same answer for an unknown user and a wrong password.
	if u == nil || u.PasswordHash == "" || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(req.Password)) != nil {
		return errForbidden("Invalid username or password")
	}
	deviceID := req.DeviceID
	if deviceID == "" {
		deviceID = randomID(10)
	}
	token, hash := newToken()
	if _, err := s.submitCmd(c, machine.CmdLogin, userID, deviceID, &machine.Login{DeviceID: deviceID, DisplayName: req.InitialDeviceDisplayName, TokenHash: hash}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"user_id": userID, "access_token": token, "device_id": deviceID, "home_server": s.cfg.ServerName,
		"well_known": map[string]any{"m.homeserver": map[string]string{"base_url": s.cfg.PublicBaseURL}},
	})
}

func (s *Server) whoami(c echo.Context) error {
	r := requester(c)
	return c.JSON(http.StatusOK, map[string]any{"user_id": r.UserID, "device_id": r.DeviceID, "is_guest": false})
}

func (s *Server) logout(c echo.Context) error {
	r := requester(c)
	return s.submitAndAck(c, r, machine.CmdLogout, &machine.Logout{})
}

func (s *Server) logoutAll(c echo.Context) error {
	r := requester(c)
	return s.submitAndAck(c, r, machine.CmdLogoutAll, &machine.Logout{})
}

// submitAndAck submits the requester's command and answers the spec's
// empty success object, the shape of most write endpoints.
func (s *Server) submitAndAck(c echo.Context, r *Requester, typ string, payload any) error {
	if _, err := s.submitCmd(c, typ, r.UserID, r.DeviceID, payload); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

// submitCmd builds a command stamped with this node's clock and submits it.
func (s *Server) submitCmd(c echo.Context, typ, actor, device string, payload any) (*machine.Result, error) {
	cmd, err := machine.NewCommand(typ, now(), actor, device, payload)
	if err != nil {
		return nil, err
	}
	return s.submit.Submit(c.Request().Context(), cmd)
}
