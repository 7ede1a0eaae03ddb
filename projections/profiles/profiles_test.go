package profiles_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/profiles"
	"chronicle/raft/machine"
)

func TestProfileAtFollowsEveryChange(t *testing.T) {
	m, err := machine.Open(t.TempDir(), machine.Config{ServerName: "localhost", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	idx := uint64(0)
	do := func(typ, actor string, payload any) uint64 {
		t.Helper()
		idx++
		c, _ := machine.NewCommand(typ, 1_700_000_000_000+int64(idx), actor, "", payload)
		res, err := m.Apply(idx, c)
		if err != nil || res.Err != nil {
			t.Fatalf("index %d %s: %+v %v", idx, typ, res, err)
		}
		return res.Seq
	}
	set := func(user, key, value string) uint64 {
		return do(machine.CmdSetProfileField, user, &machine.ProfileField{Key: key, Value: json.RawMessage(value)})
	}
	al, alice := "@al:localhost", "@alice:localhost" // one ID a prefix of the other
	registered := do(machine.CmdRegister, "", &machine.Register{UserID: alice, InhibitLogin: true})
	do(machine.CmdRegister, "", &machine.Register{UserID: al, InhibitLogin: true})
	tz := set(alice, "m.tz", `"UTC"`)
	named := set(alice, "displayname", `"Alice"`)
	set(al, "displayname", `"Al"`)
	gone := do(machine.CmdDeleteProfileField, alice, &machine.ProfileField{Key: "m.tz"})
	back := set(alice, "m.tz", `"Europe/Rome"`)

	render := func(fields []profiles.Field) string {
		out := "{"
		for i, f := range fields {
			if i > 0 {
				out += ","
			}
			out += fmt.Sprintf("%q:%s", f.Key, f.Value)
		}
		return out + "}"
	}
	if err := m.View(func(r pebble.Reader) error {
		for _, c := range []struct {
			seq  uint64
			want string
		}{
			{registered - 1, `{}`},
			{registered, `{"displayname":"alice"}`},
			{tz, `{"displayname":"alice","m.tz":"UTC"}`},
			{named, `{"displayname":"Alice","m.tz":"UTC"}`},
			{gone, `{"displayname":"Alice"}`},
			{back, `{"displayname":"Alice","m.tz":"Europe/Rome"}`},
		} {
			fields, err := profiles.ProfileAt(r, alice, c.seq)
			if err != nil {
				return err
			}
			if got := render(fields); got != c.want {
				t.Errorf("alice's profile at %d: %s, want %s", c.seq, got, c.want)
			}
		}
		// The current profile is the history's last word.
		now, err := profiles.Profile(r, alice)
		if err != nil {
			return err
		}
		if got := render(now); got != `{"displayname":"Alice","m.tz":"Europe/Rome"}` {
			t.Errorf("alice's profile now: %s", got)
		}
		if got, _ := profiles.Profile(r, al); render(got) != `{"displayname":"Al"}` {
			t.Errorf("al's profile: %s", render(got))
		}
		if name, _ := profiles.StringField(r, al, "displayname"); name != "Al" {
			t.Errorf("al's displayname %q", name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
