package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// route is one row of the route table.
type route struct {
	method  string
	path    string // under /_matrix/client/{v3,r0}
	handler echo.HandlerFunc
	auth    bool
}

// routes registers the one route table. Paths are the spec's.
func (s *Server) routes() {
	table := []route{
		// Discovery and capabilities.
		{http.MethodGet, "/capabilities", s.capabilities, true},

		// Accounts and sessions.
		{http.MethodPost, "/register", s.register, false},
		{http.MethodGet, "/register/available", s.registerAvailable, false},
		{http.MethodGet, "/login", s.loginFlows, false},
		{http.MethodPost, "/login", s.login, false},
		{http.MethodGet, "/account/whoami", s.whoami, true},
		{http.MethodPost, "/logout", s.logout, true},
		{http.MethodPost, "/logout/all", s.logoutAll, true},

		// Rooms.
		{http.MethodPost, "/createRoom", s.createRoom, true},
		{http.MethodPost, "/join/:roomIdOrAlias", s.joinByIDOrAlias, true},
		{http.MethodPost, "/rooms/:roomId/join", s.joinRoom, true},
		{http.MethodPost, "/rooms/:roomId/leave", s.leaveRoom, true},
		{http.MethodPost, "/rooms/:roomId/invite", s.inviteUser, true},
		{http.MethodPost, "/rooms/:roomId/kick", s.kickUser, true},
		{http.MethodPost, "/rooms/:roomId/ban", s.banUser, true},
		{http.MethodPost, "/rooms/:roomId/unban", s.unbanUser, true},
		{http.MethodGet, "/joined_rooms", s.joinedRooms, true},
		{http.MethodPut, "/rooms/:roomId/send/:eventType/:txnId", s.sendMessage, true},
		{http.MethodPut, "/rooms/:roomId/state/:eventType", s.putState, true},
		{http.MethodPut, "/rooms/:roomId/state/:eventType/", s.putState, true},
		{http.MethodPut, "/rooms/:roomId/state/:eventType/:stateKey", s.putState, true},
		{http.MethodGet, "/rooms/:roomId/state", s.getAllState, true},
		{http.MethodGet, "/rooms/:roomId/state/:eventType", s.getState, true},
		{http.MethodGet, "/rooms/:roomId/state/:eventType/", s.getState, true},
		{http.MethodGet, "/rooms/:roomId/state/:eventType/:stateKey", s.getState, true},
		{http.MethodGet, "/rooms/:roomId/messages", s.messages, true},

		// Sync and filters.
		{http.MethodGet, "/sync", s.sync, true},
		{http.MethodPost, "/user/:userId/filter", s.createFilter, true},
		{http.MethodGet, "/user/:userId/filter/:filterId", s.getFilter, true},
	}
	for _, prefix := range []string{"/_matrix/client/v3", "/_matrix/client/r0"} {
		for _, rt := range table {
			h := rt.handler
			if rt.auth {
				h = s.authenticate(h)
			}
			s.echo.Add(rt.method, prefix+rt.path, h)
		}
	}
	s.echo.GET("/_matrix/client/versions", s.versions)
	s.echo.GET("/.well-known/matrix/client", s.wellKnown)
	// Unknown paths get echo's 404 and known paths with another method its
	// 405; the error table turns both into M_UNRECOGNIZED.
}
