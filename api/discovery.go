package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"chronicle/raft/machine"
)

// specVersions are the Client-Server API versions this server speaks.
var specVersions = []string{"r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12", "v1.13", "v1.14", "v1.15", "v1.16"}

func (s *Server) versions(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"versions": specVersions, "unstable_features": map[string]bool{}})
}

func (s *Server) wellKnown(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"m.homeserver": map[string]string{"base_url": s.cfg.PublicBaseURL}})
}

func (s *Server) capabilities(c echo.Context) error {
	available := map[string]string{}
	for _, v := range machine.SupportedRoomVersions {
		available[v] = "stable"
	}
	return c.JSON(http.StatusOK, map[string]any{"capabilities": map[string]any{
		"m.room_versions":   map[string]any{"default": machine.DefaultRoomVersion, "available": available},
		"m.change_password": map[string]bool{"enabled": false},
		"m.set_displayname": map[string]bool{"enabled": true},
		"m.set_avatar_url":  map[string]bool{"enabled": true},
		"m.profile_fields":  map[string]bool{"enabled": true},
		"m.3pid_changes":    map[string]bool{"enabled": false},
		"m.get_login_token": map[string]bool{"enabled": false},
	}})
}
