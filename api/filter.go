package api

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	"chronicle/projections/filters"
	"chronicle/raft/machine"
)

// ownUser refuses acting on another user's filters.
func ownUser(c echo.Context) (*Requester, error) {
	r := requester(c)
	if c.Param("userId") != r.UserID {
		return nil, errForbidden("Cannot access another user's filters")
	}
	return r, nil
}

func (s *Server) createFilter(c echo.Context) error {
	r, err := ownUser(c)
	if err != nil {
		return err
	}
	raw, err := readObject(c)
	if err != nil {
		return err
	}
	if _, err := parseFilter(raw); err != nil { // filters.go: M_BAD_JSON / M_INVALID_PARAM
		return err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return errBadJSON("filter is not valid JSON")
	}
	res, err := s.submitCmd(c, machine.CmdFilter, r.UserID, r.DeviceID, &machine.CreateFilter{Filter: compact.Bytes()})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"filter_id": res.FilterID})
}

func (s *Server) getFilter(c echo.Context) error {
	r, err := ownUser(c)
	if err != nil {
		return err
	}
	raw, err := s.lookupFilter(r.UserID, c.Param("filterId"))
	if err != nil {
		return err
	}
	if raw == nil {
		return errNotFound("No such filter")
	}
	return c.JSONBlob(http.StatusOK, raw)
}

func (s *Server) lookupFilter(userID, filterID string) ([]byte, error) {
	var raw []byte
	err := s.state.View(func(r pebble.Reader) error {
		var err error
		raw, err = filters.Get(r, userID, filterID)
		return err
	})
	return raw, err
}
