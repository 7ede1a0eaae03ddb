package e2ekeys_test

import (
	"encoding/json"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections/e2ekeys"
	"chronicle/projections/facts"
)

// store folds records straight into the projection on real Pebble.
type store struct {
	t   *testing.T
	db  *pebble.DB
	seq uint64
}

func newStore(t *testing.T) *store {
	db, err := pebble.Open(t.TempDir(), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &store{t: t, db: db}
}

func (s *store) fold(typ string, body any) {
	s.t.Helper()
	enc, err := facts.Encode(body)
	if err != nil {
		s.t.Fatal(err)
	}
	s.seq++
	b := s.db.NewIndexedBatch()
	if err := (e2ekeys.Projection{}).Apply(b, &rlog.Record{Seq: s.seq, Type: typ, Body: enc}); err != nil {
		s.t.Fatalf("fold %s: %v", typ, err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		s.t.Fatal(err)
	}
}

func key(id string) facts.OneTimeKey {
	return facts.OneTimeKey{Algorithm: "signed_curve25519", KeyID: id, Key: json.RawMessage(`"` + id + `"`)}
}

// TestDeletingADeviceLeavesDevicesWithLongerIDs: keys are laid out by
// (user, device, ...) with terminated parts, so dropping device "D" must
// not touch device "D2", nor another user's "D".
func TestDeletingADeviceLeavesDevicesWithLongerIDs(t *testing.T) {
	s := newStore(t)
	const alice, bob = "@alice:localhost", "@bob:localhost"
	for _, d := range []struct{ user, device string }{{alice, "D"}, {alice, "D2"}, {bob, "D"}} {
		s.fold(facts.TypeDeviceKeysSet, &facts.DeviceKeysSet{UserID: d.user, DeviceID: d.device, Keys: json.RawMessage(`{}`)})
		s.fold(facts.TypeOneTimeKeysAdded, &facts.OneTimeKeysAdded{UserID: d.user, DeviceID: d.device, Keys: []facts.OneTimeKey{key("A"), key("B")}})
		s.fold(facts.TypeFallbackKeysSet, &facts.FallbackKeysSet{UserID: d.user, DeviceID: d.device, Keys: []facts.OneTimeKey{key("F")}})
	}
	s.fold(facts.TypeDeviceKeysDeleted, &facts.DeviceKeysDeleted{UserID: alice, DeviceID: "D"})

	for _, c := range []struct {
		user, device string
		want         bool
	}{{alice, "D", false}, {alice, "D2", true}, {bob, "D", true}} {
		has, err := e2ekeys.HasKeys(s.db, c.user, c.device)
		if err != nil || has != c.want {
			t.Errorf("%s/%s has keys: %v (%v), want %v", c.user, c.device, has, err, c.want)
		}
		counts, _ := e2ekeys.OneTimeKeyCounts(s.db, c.user, c.device)
		if want := map[bool]int{true: 2}[c.want]; counts["signed_curve25519"] != want {
			t.Errorf("%s/%s counts %v", c.user, c.device, counts)
		}
	}
	devices, err := e2ekeys.UserDeviceKeys(s.db, alice)
	if err != nil || len(devices) != 1 || devices[0].DeviceID != "D2" {
		t.Fatalf("alice's devices with keys: %+v %v", devices, err)
	}
	// The log names every change of a device list, in order.
	changes, complete, err := e2ekeys.DeviceListChanges(s.db, 0, s.seq, 0)
	if err != nil || !complete || len(changes) != 4 || changes[3].User != alice || changes[3].Seq != s.seq {
		t.Fatalf("device list log: %+v %v %v", changes, complete, err)
	}
	if part, complete, _ := e2ekeys.DeviceListChanges(s.db, 0, s.seq, 2); len(part) != 2 || complete {
		t.Fatalf("bounded read: %+v complete %v", part, complete)
	}
}
