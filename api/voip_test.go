package api

import (
	"reflect"
	"testing"
	"time"
)

// TestTURNCredentialsFollowTheRESTConvention checks the credentials a TURN
// server with use-auth-secret accepts: "<expiry>:<user>" and the base64
// HMAC-SHA1 of it (the expected password computed with Python's hmac).
func TestTURNCredentialsFollowTheRESTConvention(t *testing.T) {
	cfg := TURNConfig{URIs: []string{"turn:turn.example.org:3478?transport=udp"}, SharedSecret: "north"}
	got := turnCredentials(cfg, "@alice:localhost", time.Unix(1_700_000_000, 0))
	want := map[string]any{
		"username": "1700003600:@alice:localhost", // one hour by default
		"password": "2lvP0QHIAf2nfzHREuzg3IhCCJQ=",
		"uris":     cfg.URIs,
		"ttl":      int64(3600),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("credentials %v, want %v", got, want)
	}
	cfg.UserLifetime = 24 * time.Hour
	if got := turnCredentials(cfg, "@alice:localhost", time.Unix(1_700_000_000, 0)); got["ttl"] != int64(86400) || got["username"] != "1700086400:@alice:localhost" {
		t.Errorf("a day's credentials %v", got)
	}
}
