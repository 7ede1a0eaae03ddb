package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	"chronicle/projections/accounts"
)

// Requester is the authenticated user of a request.
type Requester struct {
	UserID   string
	DeviceID string
}

const requesterKey = "chronicle.requester"

// accessToken extracts the token from the Authorization header or the
// deprecated access_token query parameter.
func accessToken(c echo.Context) string {
	if h := c.Request().Header.Get("Authorization"); h != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return c.QueryParam("access_token")
}

// hashToken is the only form in which a token is stored or logged.
func hashToken(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

// newToken returns a fresh random access token and its hash.
func newToken() (string, [32]byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	tok := "chr_" + base64.RawURLEncoding.EncodeToString(b)
	return tok, hashToken(tok)
}

// randomID returns n random characters from A-Z (device IDs, room IDs).
func randomID(n int) string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// authenticate is middleware for endpoints that need an access token.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok := accessToken(c)
		if tok == "" {
			return errorf(401, "M_MISSING_TOKEN", "Missing access token")
		}
		var sess *accounts.Session
		err := s.state.View(func(r pebble.Reader) error {
			var err error
			sess, err = accounts.SessionByToken(r, hashToken(tok))
			return err
		})
		if err != nil {
			return err
		}
		if sess == nil && s.catchUp(c.Request().Context()) {
			// The token may be seconds old and minted through another
			// node: look again once this node has caught up.
			if err := s.state.View(func(r pebble.Reader) error {
				var err error
				sess, err = accounts.SessionByToken(r, hashToken(tok))
				return err
			}); err != nil {
				return err
			}
		}
		if sess == nil {
			return &Error{Status: 401, Code: "M_UNKNOWN_TOKEN", Msg: "Unknown or expired access token", Extra: map[string]any{"soft_logout": false}}
		}
		c.Set(requesterKey, &Requester{UserID: sess.UserID, DeviceID: sess.DeviceID})
		return next(c)
	}
}

func requester(c echo.Context) *Requester {
	r, _ := c.Get(requesterKey).(*Requester)
	return r
}

// barrier is implemented by cluster nodes (raft.Node.Barrier).
type barrier interface {
	Barrier(ctx context.Context) error
}

// catchUpWait bounds a read barrier taken on behalf of a request.
const catchUpWait = 3 * time.Second

// catchUp brings this node up to the leader's commit index, reporting
// whether it did (false on a single node without a cluster, or on error).
func (s *Server) catchUp(ctx context.Context) bool {
	b, ok := s.cfg.Cluster.(barrier)
	if !ok || b == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, catchUpWait)
	defer cancel()
	return b.Barrier(ctx) == nil
}
