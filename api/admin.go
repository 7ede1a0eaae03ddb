package api

import (
	"context"
	"crypto/subtle"
	"net/http"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"chronicle/projections/accounts"
	"chronicle/raft"
)

// Cluster is what the operator endpoints need from the node.
type Cluster interface {
	Status() (*raft.Status, error)
	Ready() (bool, string)
	Join(ctx context.Context, req *raft.JoinRequest) error
	Remove(ctx context.Context, id string) error
	TransferLeadership(ctx context.Context, id string) error
	Snapshot() error
}

// requireAdmin admits the cluster secret or a server admin's access token
// as the bearer token; anything else is M_FORBIDDEN (M_MISSING_TOKEN when
// there is no token at all).
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok := accessToken(c)
		if tok == "" {
			return errorf(401, "M_MISSING_TOKEN", "Missing access token")
		}
		if len(s.cfg.ClusterSecret) > 0 && subtle.ConstantTimeCompare([]byte(tok), s.cfg.ClusterSecret) == 1 {
			return next(c)
		}
		var sess *accounts.Session
		if err := s.state.View(func(r pebble.Reader) error {
			var err error
			sess, err = accounts.SessionByToken(r, hashToken(tok))
			return err
		}); err != nil {
			return err
		}
		if sess != nil && slices.Contains(s.cfg.Admins, sess.UserID) {
			return next(c)
		}
		return errForbidden("This endpoint needs the cluster secret or a server admin's token")
	}
}

func (s *Server) adminRoutes() {
	g := s.echo.Group("/_chronicle/v1")
	g.GET("/health", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	g.GET("/ready", s.ready)
	admin := []route{
		{http.MethodGet, "/cluster", s.clusterStatus, true},
		{http.MethodPost, "/cluster/nodes", s.clusterJoin, true},
		{http.MethodDelete, "/cluster/nodes/:id", s.clusterRemove, true},
		{http.MethodPost, "/cluster/leadership", s.clusterTransfer, true},
		{http.MethodPost, "/cluster/snapshot", s.clusterSnapshot, true},
		{http.MethodGet, "/backup", s.backup, true},
		{http.MethodGet, "/reports", s.listReports, true},
		// Auditing: verify, records, trails, point in time (api/audit.go).
		{http.MethodGet, "/audit/head", s.auditHead, true},
		{http.MethodGet, "/audit/verify", s.auditVerify, true},
		{http.MethodGet, "/audit/records", s.auditRecords, true},
		{http.MethodGet, "/audit/trail/user/:userId", s.auditTrailUser, true},
		{http.MethodGet, "/audit/trail/room/:roomId", s.auditTrailRoom, true},
		{http.MethodGet, "/audit/at/:position/room/:roomId/:what", s.auditRoomAt, true},
		{http.MethodGet, "/audit/at/:position/user/:userId/:what", s.auditUserAt, true},
	}
	for _, rt := range admin {
		g.Add(rt.method, rt.path, s.requireAdmin(rt.handler))
	}
	// Profiles for operators chasing a slow node; admin-only like the rest.
	g.Any("/debug/pprof/*", s.requireAdmin(echo.WrapHandler(http.HandlerFunc(servePprof))))
	if s.cfg.Metrics != nil {
		s.echo.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{})))
	}
}

func (s *Server) cluster() (Cluster, error) {
	if s.cfg.Cluster == nil {
		return nil, errorf(404, "M_UNRECOGNIZED", "This server runs without cluster administration")
	}
	return s.cfg.Cluster, nil
}

func (s *Server) ready(c echo.Context) error {
	cl, err := s.cluster()
	if err != nil {
		return err
	}
	ok, why := cl.Ready()
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	return c.JSON(status, map[string]any{"ready": ok, "reason": why})
}

func (s *Server) clusterStatus(c echo.Context) error {
	cl, err := s.cluster()
	if err != nil {
		return err
	}
	st, err := cl.Status()
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (s *Server) clusterJoin(c echo.Context) error {
	cl, err := s.cluster()
	if err != nil {
		return err
	}
	req := raft.JoinRequest{Voter: true}
	if err := readJSON(c, &req, false); err != nil {
		return err
	}
	if req.NodeID == "" || req.RaftAddr == "" {
		return errMissingParam("id and raft_addr are required")
	}
	if err := cl.Join(c.Request().Context(), &req); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

func (s *Server) clusterRemove(c echo.Context) error {
	cl, err := s.cluster()
	if err != nil {
		return err
	}
	if err := cl.Remove(c.Request().Context(), c.Param("id")); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

func (s *Server) clusterTransfer(c echo.Context) error {
	cl, err := s.cluster()
	if err != nil {
		return err
	}
	var req struct {
		ID string `json:"id"`
	}
	if err := readJSON(c, &req, true); err != nil {
		return err
	}
	if err := cl.TransferLeadership(c.Request().Context(), req.ID); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

func (s *Server) clusterSnapshot(c echo.Context) error {
	cl, err := s.cluster()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := cl.Snapshot(); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"took_ms": time.Since(start).Milliseconds()})
}

// httpMetrics are the API's own metrics.
type httpMetrics struct {
	latency     *prometheus.HistogramVec
	syncWaiters prometheus.Gauge
}

func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	m := &httpMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chronicle_http_request_seconds", Help: "HTTP request latency by route and status class.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"method", "route", "code"}),
		syncWaiters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chronicle_sync_waiters", Help: "Long-polling /sync requests parked waiting for new data.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.latency, m.syncWaiters)
	}
	return m
}

// observeHTTP records every request's latency under its route pattern (not
// its path, so IDs do not explode the label set).
func (s *Server) observeHTTP(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		code := c.Response().Status
		if err != nil {
			code = toMatrixError(err).Status
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		s.metrics.latency.WithLabelValues(c.Request().Method, route, http.StatusText(code)).Observe(time.Since(start).Seconds())
		return err
	}
}
