package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	"chronicle/projections/facts"
	"chronicle/projections/keybackup"
	"chronicle/raft/machine"
)

// Server-side room key backups: the keys (/room_keys/keys[/{roomId}
// [/{sessionId}]]). The three depths of each method share one handler:
// the path says how much of the backup the request covers.

// keyBackupData is the spec's KeyBackupData; every field is required.
type keyBackupData struct {
	FirstMessageIndex *int64          `json:"first_message_index"`
	ForwardedCount    *int64          `json:"forwarded_count"`
	IsVerified        *bool           `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

type roomKeyBackup struct {
	Sessions map[string]json.RawMessage `json:"sessions"`
}

// keysScope is the part of a backup a request names: room and session
// empty for all of it.
type keysScope struct {
	version       uint64
	room, session string
}

func keysScopeOf(c echo.Context) (keysScope, error) {
	v := c.QueryParam("version")
	if v == "" {
		return keysScope{}, errMissingParam("version is required")
	}
	sc := keysScope{version: backupVersionParam(v), room: c.Param("roomId"), session: c.Param("sessionId")}
	if sc.room != "" {
		if err := validRoomIDParam(sc.room); err != nil {
			return sc, err
		}
	}
	if sc.session != "" && !validKeyPart(sc.session) {
		return sc, errInvalidParam("invalid session ID")
	}
	return sc, nil
}

// PUT /room_keys/keys[/{roomId}[/{sessionId}]]?version=
func (s *Server) putRoomKeys(c echo.Context) error {
	r := requester(c)
	sc, err := keysScopeOf(c)
	if err != nil {
		return err
	}
	raw, err := readObject(c)
	if err != nil {
		return err
	}
	keys, err := parseBackupKeys(sc, raw)
	if err != nil {
		return err
	}
	res, err := s.submitCmd(c, machine.CmdPutRoomKeys, r.UserID, r.DeviceID, &machine.PutRoomKeys{Version: sc.version, Keys: keys})
	if err != nil {
		return wrongBackupVersion(res, err)
	}
	return renderKeysUpdate(c, res)
}

// parseBackupKeys reads the body of a PUT at the scope's depth: the rooms
// of the whole backup, a room's sessions, or one session's key.
func parseBackupKeys(sc keysScope, raw json.RawMessage) ([]facts.BackedUpRoomKey, error) {
	if sc.session != "" {
		k, err := parseKeyBackupData(sc.room, sc.session, raw)
		return []facts.BackedUpRoomKey{k}, err
	}
	rooms := map[string]json.RawMessage{}
	if sc.room != "" {
		rooms[sc.room] = raw
	} else {
		var body struct {
			Rooms map[string]json.RawMessage `json:"rooms"`
		}
		if err := decodeJSON(raw, &body, false); err != nil {
			return nil, err
		}
		if body.Rooms == nil {
			return nil, errMissingParam("rooms is required")
		}
		rooms = body.Rooms
	}
	var out []facts.BackedUpRoomKey
	for room, rraw := range rooms {
		if err := validRoomIDParam(room); err != nil {
			return nil, err
		}
		var rb roomKeyBackup
		if err := decodeJSON(rraw, &rb, false); err != nil {
			return nil, err
		}
		if rb.Sessions == nil {
			return nil, errMissingParam("sessions is required for room " + quote(room))
		}
		for session, kraw := range rb.Sessions {
			if session == "" || !validKeyPart(session) {
				return nil, errInvalidParam("invalid session ID " + quote(session))
			}
			k, err := parseKeyBackupData(room, session, kraw)
			if err != nil {
				return nil, err
			}
			out = append(out, k)
		}
	}
	return out, nil // the machine sorts them
}

func parseKeyBackupData(room, session string, raw json.RawMessage) (facts.BackedUpRoomKey, error) {
	var d keyBackupData
	if err := decodeJSON(raw, &d, false); err != nil {
		return facts.BackedUpRoomKey{}, err
	}
	if d.FirstMessageIndex == nil || d.ForwardedCount == nil || d.IsVerified == nil || d.SessionData == nil {
		return facts.BackedUpRoomKey{}, errBadJSON("key backup data needs first_message_index, forwarded_count, is_verified and session_data")
	}
	if *d.FirstMessageIndex < 0 || *d.ForwardedCount < 0 {
		return facts.BackedUpRoomKey{}, errBadJSON("first_message_index and forwarded_count must not be negative")
	}
	if !isJSONObjectValue(d.SessionData) {
		return facts.BackedUpRoomKey{}, errBadJSON("session_data must be a JSON object")
	}
	data, err := canonical(d.SessionData)
	if err != nil {
		return facts.BackedUpRoomKey{}, err
	}
	return facts.BackedUpRoomKey{RoomID: room, SessionID: session, FirstMessageIndex: *d.FirstMessageIndex,
		ForwardedCount: *d.ForwardedCount, IsVerified: *d.IsVerified, SessionData: data}, nil
}

// GET /room_keys/keys[/{roomId}[/{sessionId}]]?version=
func (s *Server) getRoomKeys(c echo.Context) error {
	r := requester(c)
	sc, err := keysScopeOf(c)
	if err != nil {
		return err
	}
	var b *keybackup.Backup
	var keys []keybackup.RoomKey
	err = s.state.View(func(rd pebble.Reader) error {
		var err error
		if b, err = keybackup.GetVersion(rd, r.UserID, sc.version); err != nil || b == nil {
			return err
		}
		if sc.session != "" {
			k, err := keybackup.GetKey(rd, r.UserID, sc.version, sc.room, sc.session)
			if k != nil {
				keys = append(keys, *k)
			}
			return err
		}
		keys, err = keybackup.Keys(rd, r.UserID, sc.version, sc.room)
		return err
	})
	if err != nil {
		return err
	}
	if b == nil {
		return errNotFound("Unknown backup version")
	}
	switch {
	case sc.session != "":
		if len(keys) == 0 {
			return errNotFound("No room_keys found")
		}
		return c.JSON(http.StatusOK, renderBackupKey(keys[0]))
	case sc.room != "":
		room := renderRoomSessions(keys)[sc.room]
		if room == nil {
			room = map[string]map[string]any{"sessions": {}}
		}
		return c.JSON(http.StatusOK, room)
	default:
		return c.JSON(http.StatusOK, map[string]any{"rooms": renderRoomSessions(keys)})
	}
}

// renderRoomSessions groups keys as {room: {"sessions": {id: data}}}.
func renderRoomSessions(keys []keybackup.RoomKey) map[string]map[string]map[string]any {
	out := map[string]map[string]map[string]any{}
	for _, k := range keys {
		if out[k.RoomID] == nil {
			out[k.RoomID] = map[string]map[string]any{"sessions": {}}
		}
		out[k.RoomID]["sessions"][k.SessionID] = renderBackupKey(k)
	}
	return out
}

func renderBackupKey(k keybackup.RoomKey) map[string]any {
	return map[string]any{"first_message_index": k.FirstMessageIndex, "forwarded_count": k.ForwardedCount,
		"is_verified": k.IsVerified, "session_data": k.SessionData}
}

// DELETE /room_keys/keys[/{roomId}[/{sessionId}]]?version=
func (s *Server) deleteRoomKeys(c echo.Context) error {
	r := requester(c)
	sc, err := keysScopeOf(c)
	if err != nil {
		return err
	}
	res, err := s.submitCmd(c, machine.CmdDeleteRoomKeys, r.UserID, r.DeviceID,
		&machine.DeleteRoomKeys{Version: sc.version, RoomID: sc.room, SessionID: sc.session})
	if err != nil {
		return err
	}
	return renderKeysUpdate(c, res)
}

// renderKeysUpdate is the spec's RoomKeysUpdateResponse.
func renderKeysUpdate(c echo.Context, res *machine.Result) error {
	return c.JSON(http.StatusOK, map[string]any{"etag": strconv.FormatUint(res.KeyBackup.Etag, 10), "count": res.KeyBackup.Count})
}
