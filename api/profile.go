package api

import (
	"encoding/json"
	"net/http"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	"chronicle/projections/accounts"
	"chronicle/projections/profiles"
	"chronicle/raft/machine"
)

// Profiles (/profile/{userId} and /profile/{userId}/{keyName}). Anyone may
// read a local user's profile, as Synapse allows by default; only the user
// may change it. A change of displayname or avatar_url also updates their
// member event in every room they are joined to (raft/machine/profile.go).

// profileUser validates the path's user ID (400 M_INVALID_PARAM).
func profileUser(c echo.Context) (string, error) {
	userID := c.Param("userId")
	if !validUserID(userID) {
		return "", errInvalidParam("invalid user ID")
	}
	return userID, nil
}

// profileKey validates the path's keyName against the spec's grammar.
func profileKey(c echo.Context) (string, error) {
	key := c.Param("keyName")
	if rej := machine.CheckProfileKey(key); rej != nil {
		return "", rej
	}
	return key, nil
}

// readProfile loads a local user's current profile; an unknown user is
// 404 M_NOT_FOUND (the spec lets a server choose 403 or 404; Synapse says
// 404).
func (s *Server) readProfile(userID string) ([]profiles.Field, error) {
	var fields []profiles.Field
	err := s.state.View(func(r pebble.Reader) error {
		u, err := accounts.GetUser(r, userID)
		if err != nil {
			return err
		}
		if u == nil {
			return errNotFound("Profile not found")
		}
		fields, err = profiles.Profile(r, userID)
		return err
	})
	return fields, err
}

func (s *Server) getProfile(c echo.Context) error {
	userID, err := profileUser(c)
	if err != nil {
		return err
	}
	fields, err := s.readProfile(userID)
	if err != nil {
		return err
	}
	out := make(map[string]json.RawMessage, len(fields))
	for _, f := range fields {
		out[f.Key] = f.Value
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getProfileField(c echo.Context) error {
	userID, err := profileUser(c)
	if err != nil {
		return err
	}
	key, err := profileKey(c)
	if err != nil {
		return err
	}
	fields, err := s.readProfile(userID)
	if err != nil {
		return err
	}
	for _, f := range fields {
		if f.Key == key {
			return c.JSON(http.StatusOK, map[string]json.RawMessage{key: f.Value})
		}
	}
	return errNotFound("The user has no " + key + " in their profile")
}

// ownProfile checks that the requester is changing their own profile and
// returns the field's key.
func ownProfile(c echo.Context) (*Requester, string, error) {
	userID, err := profileUser(c)
	if err != nil {
		return nil, "", err
	}
	r := requester(c)
	if userID != r.UserID {
		return nil, "", errForbidden("Cannot change another user's profile")
	}
	key, err := profileKey(c)
	return r, key, err
}

func (s *Server) putProfileField(c echo.Context) error {
	r, key, err := ownProfile(c)
	if err != nil {
		return err
	}
	var body map[string]json.RawMessage
	if err := readJSON(c, &body, false); err != nil {
		return err
	}
	if body == nil {
		return errBadJSON("the body must be a JSON object")
	}
	value, ok := body[key]
	if !ok {
		return errMissingParam("the body has no " + key)
	}
	// Checked here too so that a bad value costs no round trip through
	// the log; the state machine decides the total size.
	if _, rej := machine.ProfileValue(key, value); rej != nil {
		return rej
	}
	return s.submitAndAck(c, r, machine.CmdSetProfileField, &machine.ProfileField{Key: key, Value: value})
}

func (s *Server) deleteProfileField(c echo.Context) error {
	r, key, err := ownProfile(c)
	if err != nil {
		return err
	}
	return s.submitAndAck(c, r, machine.CmdDeleteProfileField, &machine.ProfileField{Key: key})
}
