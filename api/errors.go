package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"chronicle/raft"
	"chronicle/raft/machine"
)

// Error is what a client is told (Status, Code, Msg) and, separately, what
// the server logs (Err).
type Error struct {
	Status int
	Code   string
	Msg    string
	Err    error
	// Extra fields merged into the JSON body (e.g. soft_logout).
	Extra map[string]any
	// RetryAfter, in seconds, sets the Retry-After header.
	RetryAfter int
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Msg, e.Err)
	}
	return e.Code + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// The spec's error codes used by this server.
func errNotJSON(msg string) *Error   { return errorf(400, "M_NOT_JSON", "%s", msg) }
func errBadJSON(msg string) *Error   { return errorf(400, "M_BAD_JSON", "%s", msg) }
func errForbidden(msg string) *Error { return errorf(403, "M_FORBIDDEN", "%s", msg) }
func errNotFound(msg string) *Error  { return errorf(404, "M_NOT_FOUND", "%s", msg) }
func errMissingParam(msg string) *Error {
	return errorf(400, "M_MISSING_PARAM", "%s", msg)
}
func errInvalidParam(msg string) *Error {
	return errorf(400, "M_INVALID_PARAM", "%s", msg)
}

// rejectionTable maps the state machine's decided rejections to the spec.
var rejectionTable = map[machine.Kind]struct {
	status int
	code   string
}{
	machine.KindForbidden:              {403, "M_FORBIDDEN"},
	machine.KindUserInUse:              {400, "M_USER_IN_USE"},
	machine.KindNotFound:               {404, "M_NOT_FOUND"},
	machine.KindUnknownToken:           {401, "M_UNKNOWN_TOKEN"},
	machine.KindBadJSON:                {400, "M_BAD_JSON"},
	machine.KindInvalidParam:           {400, "M_INVALID_PARAM"},
	machine.KindUnsupportedRoomVersion: {400, "M_UNSUPPORTED_ROOM_VERSION"},
	machine.KindTooLarge:               {413, "M_TOO_LARGE"},
	machine.KindBadState:               {400, "M_BAD_STATE"},
	machine.KindConflict:               {409, "M_UNKNOWN"},
	machine.KindRoomInUse:              {400, "M_ROOM_IN_USE"},
	machine.KindBadAlias:               {400, "M_BAD_ALIAS"},
	machine.KindStillInRoom:            {400, "M_UNKNOWN"},
	machine.KindMissingParam:           {400, "M_MISSING_PARAM"},
	// Handlers that need user-interactive auth answer with its challenge
	// first; this is what is left if one does not.
	machine.KindAuthRequired: {401, "M_UNAUTHORIZED"},
	// The handler adds current_version (wrongBackupVersion).
	machine.KindWrongRoomKeysVersion: {403, "M_WRONG_ROOM_KEYS_VERSION"},
	machine.KindProfileTooLarge:      {400, "M_PROFILE_TOO_LARGE"},
	machine.KindKeyTooLarge:          {400, "M_KEY_TOO_LARGE"},
}

// toMatrixError maps any error to what the client sees. Matching uses
// errors.As so wrapped errors map too.
func toMatrixError(err error) *Error {
	var me *Error
	if errors.As(err, &me) {
		return me
	}
	var rej *machine.Rejection
	if errors.As(err, &rej) {
		if e, ok := rejectionTable[rej.Kind]; ok {
			return &Error{Status: e.status, Code: e.code, Msg: rej.Msg}
		}
	}
	switch {
	case errors.Is(err, raft.ErrNoLeader), errors.Is(err, raft.ErrIndeterminate):
		// The cluster has no reachable leader, or lost it mid-write: the
		// client should retry (idempotently) shortly.
		return &Error{Status: 503, Code: "M_UNAVAILABLE", Msg: "The cluster cannot accept writes right now; retry shortly", Err: err, RetryAfter: 1}
	case errors.Is(err, raft.ErrBadRequest):
		return &Error{Status: 400, Code: "M_INVALID_PARAM", Msg: err.Error()}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return errorf(404, "M_UNRECOGNIZED", "Unrecognized request")
		case http.StatusMethodNotAllowed:
			return errorf(405, "M_UNRECOGNIZED", "Method not allowed for this endpoint")
		case http.StatusRequestEntityTooLarge:
			return errorf(413, "M_TOO_LARGE", "Request body is too large")
		case http.StatusUnauthorized:
			return errorf(401, "M_MISSING_TOKEN", "Missing access token")
		case http.StatusTooManyRequests:
			return errorf(429, "M_LIMIT_EXCEEDED", "Too many requests")
		case http.StatusServiceUnavailable:
			return errorf(503, "M_UNKNOWN", "Service unavailable, try again")
		}
		if he.Code >= 400 && he.Code < 500 {
			return errorf(he.Code, "M_UNKNOWN", "%v", he.Message)
		}
	}
	return &Error{Status: 500, Code: "M_UNKNOWN", Msg: "Internal server error", Err: err}
}

// handleError is echo's error handler: the one place errors are rendered.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	if errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil {
		// The client went away (a long-poll it gave up on, a shutdown):
		// nobody reads the answer and nothing failed.
		s.logger.Debug("request abandoned by client", "method", c.Request().Method, "path", c.Path())
		return
	}
	me := toMatrixError(err)
	if me.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(me.RetryAfter))
		if me.Extra == nil {
			me.Extra = map[string]any{}
		}
		me.Extra["retry_after_ms"] = me.RetryAfter * 1000
	}
	if me.Status == 503 {
		s.logger.Warn("write unavailable", "method", c.Request().Method, "path", c.Path(), "err", err)
	} else if me.Status >= 500 {
		s.logger.Error("request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
	}
	body := map[string]any{"errcode": me.Code, "error": me.Msg}
	for k, v := range me.Extra {
		body[k] = v
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(me.Status)
		return
	}
	_ = c.JSON(me.Status, body)
}
