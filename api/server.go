package api

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	rlog "chronicle/log"
	"chronicle/raft/machine"
)

// Submitter proposes commands and returns their decided results.
type Submitter interface {
	Submit(ctx context.Context, cmd *machine.Command) (*machine.Result, error)
}

// State is the read side: consistent snapshots and the log head.
type State interface {
	View(fn func(r pebble.Reader) error) error
	Log() *rlog.Log
}

// Config is the API's view of the server configuration.
type Config struct {
	ServerName string
	// PublicBaseURL is advertised in /.well-known/matrix/client.
	PublicBaseURL string
	Logger        *slog.Logger
	// Cluster serves the operator endpoints under /_chronicle/v1; nil
	// answers them with M_UNRECOGNIZED.
	Cluster Cluster
	// ClusterSecret and Admins (user IDs) may use the operator endpoints.
	ClusterSecret []byte
	Admins        []string
	// Metrics is the registry /metrics serves and the API adds to.
	Metrics *prometheus.Registry
	// TURN is what /voip/turnServer hands out (api/voip.go).
	TURN TURNConfig
}

// Server is the HTTP edge.
type Server struct {
	cfg     Config
	submit  Submitter
	state   State
	logger  *slog.Logger
	echo    *echo.Echo
	http    *http.Server
	metrics *httpMetrics
	// baseCtx is every request's parent; Shutdown cancels it so parked
	// long-polls return at once instead of holding shutdown up.
	baseCtx    context.Context
	cancelBase context.CancelFunc
	// lazyMembers remembers the member events lazy-loading syncs sent
	// to each device (filters_lazy.go).
	lazyMembers lazyMemberCache
	// syncFeed holds the latest sync stream entries and syncHub the
	// parked long-polls (sync_stream.go).
	syncFeed changeFeed
	syncHub  syncHub
}

// New builds the server and its route table.
func New(cfg Config, submit Submitter, state State) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, submit: submit, state: state, logger: cfg.Logger}
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.metrics = newHTTPMetrics(cfg.Metrics)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.logger.Error("panic in handler", "path", c.Path(), "err", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOrigins: []string{"*"},
		AllowMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions},
		AllowHeaders: []string{"X-Requested-With", "Content-Type", "Authorization"},
	}))
	e.Use(s.observeHTTP)
	e.Use(unescapeParams)
	s.echo = e
	s.http = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return s.baseCtx },
	}
	s.routes()
	s.adminRoutes()
	return s
}

// Handler returns the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.echo }

// Serve serves on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(l)
	if err == http.ErrServerClosed {
		return nil
	}
	return err
}

// Shutdown stops accepting requests and waits for in-flight ones.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancelBase()
	return s.http.Shutdown(ctx)
}

// now is the command timestamp: wall clock on the API node, never read by
// the state machine.
func now() int64 { return time.Now().UnixMilli() }

// unescapeParams decodes path parameters: clients percent-encode room IDs
// ("!" is %21) and echo routes on the raw path, leaving them encoded.
func unescapeParams(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		vals := c.ParamValues()
		for i, v := range vals {
			u, err := url.PathUnescape(v)
			if err != nil {
				return errInvalidParam("malformed percent-encoding in path")
			}
			vals[i] = u
		}
		c.SetParamValues(vals...)
		return next(c)
	}
}
