package api

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// TURNConfig names the TURN servers clients use for calls, with the
// secret they share with this server (coturn's static-auth-secret).
// Without both, /voip/turnServer answers {} as Synapse does.
type TURNConfig struct {
	URIs         []string
	SharedSecret string
	// UserLifetime is how long credentials stay valid (default one hour,
	// as Synapse's turn_user_lifetime).
	UserLifetime time.Duration
}

// turnCredentials follow the TURN REST API convention the spec's example
// shows: the username is "<expiry unix seconds>:<user ID>" and the
// password the base64 HMAC-SHA1 of the username under the shared secret,
// so the TURN server checks them without asking this one.
func turnCredentials(cfg TURNConfig, userID string, now time.Time) map[string]any {
	lifetime := cfg.UserLifetime
	if lifetime <= 0 {
		lifetime = time.Hour
	}
	username := fmt.Sprintf("%d:%s", now.Add(lifetime).Unix(), userID)
	mac := hmac.New(sha1.New, []byte(cfg.SharedSecret))
	mac.Write([]byte(username))
	return map[string]any{
		"username": username,
		"password": base64.StdEncoding.EncodeToString(mac.Sum(nil)),
		"uris":     cfg.URIs,
		"ttl":      int64(lifetime / time.Second),
	}
}

func (s *Server) turnServer(c echo.Context) error {
	t := s.cfg.TURN
	if len(t.URIs) == 0 || t.SharedSecret == "" {
		return c.JSON(http.StatusOK, map[string]any{})
	}
	return c.JSON(http.StatusOK, turnCredentials(t, requester(c).UserID, time.Now()))
}
