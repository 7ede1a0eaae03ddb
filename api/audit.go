package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/audit"
	"chronicle/raft/machine"
)

// The auditors' endpoints under /_chronicle/v1/audit (admin only; the
// chronicle CLI's --node mode). Every answer is read from one Pebble
// snapshot of the state store, so it is as of one log position, which the
// X-Chronicle-Log-Position header names. Long answers (verify, records)
// are JSON lines, flushed as they come.
//
//	GET /audit/head                         {"position","hash","head":"POSITION:HASH"}
//	GET /audit/verify?from_checkpoint=&against=POSITION:HASH
//	    JSON lines: {"progress":{...}}..., then {"report":{...}}
//	GET /audit/records?from=&to=&type=&actor=&room=&user=&last=&wait=
//	    JSON lines, one record each (audit.Entry). from/to are positions
//	    or RFC 3339 times; last=N keeps the newest N; wait=DURATION
//	    long-polls until a record at or after from exists (tail --follow).
//	GET /audit/trail/user/:userId, /audit/trail/room/:roomId   records
//	GET /audit/at/:position/room/:roomId/:what   (state|members|timeline)
//	GET /audit/at/:position/user/:userId/:what   (rooms|devices|keys|profile)

// auditState is what the audit endpoints need of the node's state.
type auditStater interface {
	Snapshot() (*pebble.Snapshot, error)
	Engine() *projections.Engine
}

// auditVerifies admits one online verify at a time per process: each
// rebuilds every projection into a scratch store.
var auditVerifies = make(chan struct{}, 1)

// auditCacheDir is where online verifies cache their resume states: the
// node's user cache directory, as for the CLI's offline verifies.
func auditCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "chronicle", "audit")
	}
	return ""
}

func (s *Server) auditEnv() (*audit.Env, auditStater, error) {
	st, ok := s.state.(auditStater)
	if !ok {
		return nil, nil, errorf(404, "M_UNRECOGNIZED", "This server cannot be audited online")
	}
	return &audit.Env{Engine: st.Engine(), Options: machine.StoreOptions, CacheDir: auditCacheDir()}, st, nil
}

// auditSnapshot runs fn on one snapshot of the state store and names its
// head in the response header.
func (s *Server) auditSnapshot(c echo.Context, fn func(env *audit.Env, snap *pebble.Snapshot) error) error {
	env, st, err := s.auditEnv()
	if err != nil {
		return err
	}
	snap, err := st.Snapshot()
	if err != nil {
		return err
	}
	defer snap.Close()
	head, err := rlog.ReadHead(snap)
	if err != nil {
		return err
	}
	c.Response().Header().Set(HeaderLogPosition, strconv.FormatUint(head.Seq, 10))
	c.Response().Header().Set(HeaderLogHash, head.Hash.String())
	return fn(env, snap)
}

func (s *Server) auditHead(c echo.Context) error {
	return s.auditSnapshot(c, func(_ *audit.Env, snap *pebble.Snapshot) error {
		head, err := rlog.ReadHead(snap)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"position": head.Seq, "hash": head.Hash.String(), "head": audit.FormatHead(head)})
	})
}

// jsonLines writes JSON lines, flushing each.
type jsonLines struct {
	c       echo.Context
	enc     *json.Encoder
	started bool
}

func newJSONLines(c echo.Context) *jsonLines {
	return &jsonLines{c: c, enc: json.NewEncoder(c.Response())}
}

func (l *jsonLines) write(v any) error {
	if !l.started {
		l.c.Response().Header().Set(echo.HeaderContentType, "application/x-ndjson")
		l.c.Response().Header().Set("Cache-Control", "no-store")
		l.c.Response().WriteHeader(http.StatusOK)
		l.started = true
	}
	if err := l.enc.Encode(v); err != nil {
		return err
	}
	l.c.Response().Flush()
	return nil
}

// finish ends a stream that may not have started: an error before the
// first line is an ordinary error response; after it, an error line.
func (l *jsonLines) finish(err error) error {
	if err == nil {
		if !l.started {
			return l.write(nil)
		}
		return nil
	}
	if !l.started {
		return err
	}
	_ = l.write(map[string]string{"error": err.Error()})
	return nil
}

func (s *Server) auditVerify(c echo.Context) error {
	var o audit.VerifyOptions
	switch v := c.QueryParam("from_checkpoint"); v {
	case "", "false":
	case "true":
		o.FromCheckpoint = true
	default:
		return errInvalidParam("from_checkpoint must be true or false")
	}
	if v := c.QueryParam("against"); v != "" {
		p, err := audit.ParseHead(v)
		if err != nil {
			return errInvalidParam(err.Error())
		}
		o.Against = &p
	}
	select {
	case auditVerifies <- struct{}{}:
		defer func() { <-auditVerifies }()
	default:
		return &Error{Status: 429, Code: "M_LIMIT_EXCEEDED", Msg: "Another verify is running on this node", RetryAfter: 5}
	}
	return s.auditSnapshot(c, func(env *audit.Env, snap *pebble.Snapshot) error {
		out := newJSONLines(c)
		var last time.Time
		env.Progress = func(phase string, done, total uint64) {
			if time.Since(last) < 500*time.Millisecond && done != total {
				return
			}
			last = time.Now()
			_ = out.write(map[string]any{"progress": map[string]any{"phase": phase, "done": done, "total": total}})
		}
		rep, err := env.Verify(snap, o)
		if err == nil {
			err = out.write(map[string]any{"report": rep})
		}
		return out.finish(err)
	})
}

func (s *Server) auditRecords(c echo.Context) error {
	return s.auditRecordsWith(c, audit.Filter{})
}

func (s *Server) auditTrailUser(c echo.Context) error {
	return s.auditRecordsWith(c, audit.Filter{User: c.Param("userId")})
}

func (s *Server) auditTrailRoom(c echo.Context) error {
	return s.auditRecordsWith(c, audit.Filter{Room: c.Param("roomId")})
}

const maxAuditWait = 60 * time.Second

func (s *Server) auditRecordsWith(c echo.Context, f audit.Filter) error {
	q := c.QueryParams()
	if v := q.Get("type"); v != "" {
		f.Types = strings.Split(v, ",")
	}
	if v := q.Get("actor"); v != "" {
		f.Actor = v
	}
	if v := q.Get("room"); v != "" && f.Room == "" {
		f.Room = v
	}
	if v := q.Get("user"); v != "" && f.User == "" {
		f.User = v
	}
	last := 0
	if v := q.Get("last"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errInvalidParam("last must be a non-negative integer")
		}
		last = n
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return errInvalidParam("wait must be a duration such as 30s")
		}
		wait = min(d, maxAuditWait)
	}
	// Long-poll for tail --follow: wait until the log reaches from.
	if wait > 0 && q.Get("from") != "" {
		if seq, _, err := audit.ParseSpec(q.Get("from")); err == nil && seq > 0 {
			ctx, cancel := context.WithTimeout(c.Request().Context(), wait)
			defer cancel()
			for {
				head, changed := s.state.Log().Changed()
				if head.Seq >= seq {
					break
				}
				if waitChange(ctx, changed, time.Now().Add(wait)) != nil || ctx.Err() != nil {
					break
				}
			}
		}
	}
	return s.auditSnapshot(c, func(env *audit.Env, snap *pebble.Snapshot) error {
		var err error
		if v := q.Get("from"); v != "" {
			if f.From, err = audit.RangeFrom(snap, v); err != nil {
				return auditError(err)
			}
		}
		if v := q.Get("to"); v != "" {
			if f.To, err = audit.RangeTo(snap, v); err != nil {
				return auditError(err)
			}
			if f.To == 0 {
				return newJSONLines(c).finish(nil) // before the first record
			}
		}
		out := newJSONLines(c)
		if last > 0 {
			entries, err := env.Last(snap, f, last)
			if err == nil {
				for _, e := range entries {
					if err = out.write(e); err != nil {
						break
					}
				}
			}
			return out.finish(err)
		}
		err = env.Records(snap, f, func(e *audit.Entry) error { return out.write(e) })
		return out.finish(err)
	})
}

func (s *Server) auditRoomAt(c echo.Context) error {
	return s.auditAt(c, func(env *audit.Env, snap *pebble.Snapshot, seq uint64) (*audit.Answer, error) {
		var o audit.AtOptions
		if v := c.QueryParam("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return nil, errInvalidParam("limit must be a positive integer")
			}
			o.Limit = min(n, 1000)
		}
		o.Replay = c.QueryParam("replay") == "true"
		return env.RoomAt(snap, seq, c.Param("roomId"), c.Param("what"), o)
	})
}

func (s *Server) auditUserAt(c echo.Context) error {
	return s.auditAt(c, func(env *audit.Env, snap *pebble.Snapshot, seq uint64) (*audit.Answer, error) {
		return env.UserAt(snap, seq, c.Param("userId"), c.Param("what"))
	})
}

func (s *Server) auditAt(c echo.Context, ask func(*audit.Env, *pebble.Snapshot, uint64) (*audit.Answer, error)) error {
	return s.auditSnapshot(c, func(env *audit.Env, snap *pebble.Snapshot) error {
		seq, err := audit.Resolve(snap, c.Param("position"), false)
		if err != nil {
			return auditError(err)
		}
		ans, err := ask(env, snap, seq)
		if err != nil {
			return auditError(err)
		}
		return c.JSON(http.StatusOK, ans)
	})
}

// auditError maps the audit package's errors: a question that cannot be
// answered is the asker's (400), data the server does not keep is 404,
// anything else a failure.
func auditError(err error) error {
	var qe *audit.QuestionError
	switch {
	case errors.Is(err, audit.ErrNotRecorded):
		return errNotFound(err.Error())
	case errors.As(err, &qe):
		return errInvalidParam(qe.Msg)
	}
	return err
}
