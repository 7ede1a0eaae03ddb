package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	"chronicle/projections/keybackup"
	"chronicle/raft/machine"
)

// Server-side room key backups: the versions (/room_keys/version). Writes
// are commands (raft/machine/keybackup.go numbers versions); reads come
// from the keybackup projection. The keys themselves are in
// keybackup_keys.go.

// backupVersionParam parses a backup version: the decimal numbers this
// server hands out. Anything else is version 0, which never exists, so it
// gets the spec's "Unknown backup version" like any other missing one.
func backupVersionParam(s string) uint64 {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(v, 10) != s {
		return 0
	}
	return v
}

func formatBackupVersion(v uint64) string { return strconv.FormatUint(v, 10) }

// backupVersionBody is the body of creating or updating a version.
type backupVersionBody struct {
	Algorithm *string         `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Version   *string         `json:"version"`
}

// parseBackupVersionBody checks the algorithm and auth_data every version
// has (the algorithm is not restricted to the one the spec defines, so a
// client can adopt a newer one) and returns auth_data canonical.
func parseBackupVersionBody(c echo.Context) (*backupVersionBody, error) {
	var body backupVersionBody
	if err := readJSON(c, &body, false); err != nil {
		return nil, err
	}
	if body.Algorithm == nil || *body.Algorithm == "" {
		return nil, errMissingParam("algorithm is required")
	}
	if body.AuthData == nil {
		return nil, errMissingParam("auth_data is required")
	}
	if !isJSONObjectValue(body.AuthData) {
		return nil, errBadJSON("auth_data must be a JSON object")
	}
	var err error
	if body.AuthData, err = canonical(body.AuthData); err != nil {
		return nil, err
	}
	return &body, nil
}

// POST /room_keys/version
func (s *Server) createKeyBackup(c echo.Context) error {
	r := requester(c)
	body, err := parseBackupVersionBody(c)
	if err != nil {
		return err
	}
	res, err := s.submitCmd(c, machine.CmdCreateKeyBackup, r.UserID, r.DeviceID,
		&machine.KeyBackupVersion{Algorithm: *body.Algorithm, AuthData: body.AuthData})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"version": formatBackupVersion(res.KeyBackup.Version)})
}

// GET /room_keys/version and /room_keys/version/{version}
func (s *Server) getKeyBackup(c echo.Context) error {
	r := requester(c)
	param := c.Param("version")
	var b *keybackup.Backup
	err := s.state.View(func(rd pebble.Reader) error {
		var err error
		if param == "" {
			b, err = keybackup.Current(rd, r.UserID)
		} else {
			b, err = keybackup.GetVersion(rd, r.UserID, backupVersionParam(param))
		}
		return err
	})
	if err != nil {
		return err
	}
	if b == nil && param == "" {
		return errNotFound("No current backup version")
	}
	if b == nil {
		return errNotFound("Unknown backup version")
	}
	return c.JSON(http.StatusOK, map[string]any{
		"algorithm": b.Algorithm, "auth_data": b.AuthData, "count": b.Count,
		"etag": strconv.FormatUint(b.Etag, 10), "version": formatBackupVersion(b.Version),
	})
}

// PUT /room_keys/version/{version}: only auth_data changes.
func (s *Server) updateKeyBackup(c echo.Context) error {
	r := requester(c)
	body, err := parseBackupVersionBody(c)
	if err != nil {
		return err
	}
	param := c.Param("version")
	if body.Version != nil && *body.Version != param {
		return errInvalidParam("version in body does not match the version in the path")
	}
	return s.submitAndAck(c, r, machine.CmdUpdateKeyBackup,
		&machine.KeyBackupVersion{Version: backupVersionParam(param), Algorithm: *body.Algorithm, AuthData: body.AuthData})
}

// DELETE /room_keys/version/{version}
func (s *Server) deleteKeyBackup(c echo.Context) error {
	r := requester(c)
	return s.submitAndAck(c, r, machine.CmdDeleteKeyBackup, &machine.KeyBackupVersion{Version: backupVersionParam(c.Param("version"))})
}

// wrongBackupVersion adds the current version to a rejected write to
// another one, as the spec's M_WRONG_ROOM_KEYS_VERSION carries it.
func wrongBackupVersion(res *machine.Result, err error) error {
	var rej *machine.Rejection
	if errors.As(err, &rej) && rej.Kind == machine.KindWrongRoomKeysVersion && res != nil && res.KeyBackup != nil {
		me := toMatrixError(err)
		me.Extra = map[string]any{"current_version": formatBackupVersion(res.KeyBackup.Version)}
		return me
	}
	return err
}
