package syncstream_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/syncstream"
	"chronicle/raft/machine"
)

// TestKeyRecordsNameWhomTheyConcern: a device's identity keys are a device
// list change of its user; one-time and fallback keys, uploaded or
// claimed, concern only their device.
func TestKeyRecordsNameWhomTheyConcern(t *testing.T) {
	d := newDriver(t)
	quiet := d.head()
	otk := machine.UploadedKey{Algorithm: "signed_curve25519", KeyID: "K", Key: json.RawMessage(`"k"`)}
	d.Do(machine.CmdUploadKeys, alice, &machine.UploadKeys{
		DeviceKeys:   json.RawMessage(`{"algorithms":[],"device_id":"D","keys":{"ed25519:D":"e"},"signatures":{},"user_id":"` + alice + `"}`),
		OneTimeKeys:  []machine.UploadedKey{otk},
		FallbackKeys: []machine.UploadedKey{otk},
	})
	d.Do(machine.CmdClaimKeys, bob, &machine.ClaimKeys{Claims: []machine.KeyClaim{{UserID: alice, DeviceID: "D", Algorithm: "signed_curve25519"}}})
	d.Do(machine.CmdClaimKeys, bob, &machine.ClaimKeys{Claims: []machine.KeyClaim{{UserID: alice, DeviceID: "D", Algorithm: "signed_curve25519"}}})
	d.Do(machine.CmdLogout, alice, &machine.Logout{})
	var got []string
	d.view(func(r pebble.Reader) {
		changes, _, err := syncstream.Changes(r, quiet, d.head(), 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range changes {
			got = append(got, fmt.Sprintf("%c %s %s %s", c.Kind, c.User, c.Device, c.OnlyFor))
		}
	})
	list, keys := "k "+alice+"  ", "o "+alice+" D "
	want := []string{
		list, keys, keys, // the upload: identity, one-time and fallback keys
		keys, // the one-time key claimed
		keys, // the fallback key given out (marked used)
		list, // the logout drops the device's keys
	}
	if !slices.Equal(got, want) {
		t.Fatalf("changes = %q, want %q", got, want)
	}
}
