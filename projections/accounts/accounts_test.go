package accounts_test

import (
	"crypto/sha256"
	"log/slog"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/accounts"
	"chronicle/raft/machine"
)

func TestSessionsAndTokens(t *testing.T) {
	m, err := machine.Open(t.TempDir(), machine.Config{ServerName: "localhost", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	idx := uint64(0)
	do := func(typ, actor, device string, payload any) *machine.Result {
		t.Helper()
		idx++
		c, _ := machine.NewCommand(typ, 1_700_000_000_000+int64(idx), actor, device, payload)
		res, err := m.Apply(idx, c)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	tok := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	view := func(fn func(r pebble.Reader)) {
		t.Helper()
		if err := m.View(func(r pebble.Reader) error { fn(r); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	alice := "@alice:localhost"
	reg := do(machine.CmdRegister, "", "", &machine.Register{UserID: alice, PasswordHash: "$2a$hash", DeviceID: "A", DisplayName: "phone", TokenHash: tok("a1")})
	do(machine.CmdLogin, alice, "", &machine.Login{DeviceID: "B", DisplayName: "laptop", TokenHash: tok("b1")})
	do(machine.CmdLogin, alice, "", &machine.Login{DeviceID: "A", DisplayName: "phone again", TokenHash: tok("a2")})
	do(machine.CmdRegister, "", "", &machine.Register{UserID: "@quiet:localhost", InhibitLogin: true, Guest: true})

	view(func(r pebble.Reader) {
		u, err := accounts.GetUser(r, alice)
		// Registration writes the account, the default displayname and
		// the session, in that order.
		if err != nil || u == nil || u.PasswordHash != "$2a$hash" || u.Guest || u.Seq != reg.Seq-2 {
			t.Errorf("user %+v (%v), registered at %d", u, err, reg.Seq-2)
		}
		if ids, err := accounts.DeviceIDs(r, alice); err != nil || !slices.Equal(ids, []string{"A", "B"}) {
			t.Errorf("devices %v (%v)", ids, err)
		}
		// Logging in again on a device replaces its token.
		if s, _ := accounts.SessionByToken(r, tok("a1")); s != nil {
			t.Errorf("replaced token still resolves to %+v", s)
		}
		if s, _ := accounts.SessionByToken(r, tok("a2")); s == nil || s.UserID != alice || s.DeviceID != "A" {
			t.Errorf("new token resolves to %+v", s)
		}
		if d, _ := accounts.GetDevice(r, alice, "A"); d == nil || d.DisplayName != "phone again" || d.TokenHash != tok("a2") || d.LastSeenTS != 1_700_000_000_003 {
			t.Errorf("device A %+v", d)
		}
		q, _ := accounts.GetUser(r, "@quiet:localhost")
		if q == nil || !q.Guest {
			t.Errorf("guest %+v", q)
		}
		if ids, _ := accounts.DeviceIDs(r, "@quiet:localhost"); len(ids) != 0 {
			t.Errorf("inhibit_login created devices %v", ids)
		}
		// A user ID that is a prefix of another does not see its devices.
		if ids, _ := accounts.DeviceIDs(r, "@alice:localhos"); len(ids) != 0 {
			t.Errorf("prefix user sees devices %v", ids)
		}
	})

	if res := do(machine.CmdLogout, alice, "B", &machine.Logout{}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := do(machine.CmdLogout, alice, "B", &machine.Logout{}); res.Err == nil || res.Err.Kind != machine.KindUnknownToken {
		t.Fatalf("second logout of B: %+v", res)
	}
	view(func(r pebble.Reader) {
		if s, _ := accounts.SessionByToken(r, tok("b1")); s != nil {
			t.Errorf("logged-out token resolves")
		}
		if ids, _ := accounts.DeviceIDs(r, alice); !slices.Equal(ids, []string{"A"}) {
			t.Errorf("devices after logout %v", ids)
		}
	})
	do(machine.CmdLogin, alice, "", &machine.Login{DeviceID: "C", TokenHash: tok("c1")})
	if res := do(machine.CmdLogoutAll, alice, "A", &machine.Logout{}); res.Err != nil {
		t.Fatal(res.Err)
	}
	view(func(r pebble.Reader) {
		for _, h := range []string{"a1", "a2", "b1", "c1"} {
			if s, _ := accounts.SessionByToken(r, tok(h)); s != nil {
				t.Errorf("token %s resolves after logout_all", h)
			}
		}
		if ids, _ := accounts.DeviceIDs(r, alice); len(ids) != 0 {
			t.Errorf("devices after logout_all %v", ids)
		}
		if u, _ := accounts.GetUser(r, alice); u == nil {
			t.Errorf("logout_all removed the account")
		}
	})
}
