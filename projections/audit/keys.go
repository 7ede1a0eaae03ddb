package audit

import (
	"encoding/json"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/accounts"
	"chronicle/projections/e2ekeys"
)

// keysAt fills ans with a user's keys in r, a store replayed up to seq:
// every device the user had then with its identity keys, unclaimed
// one-time key counts and fallback keys, and their cross-signing keys.
func keysAt(r pebble.Reader, seq uint64, userID string, ans *Answer) error {
	ids, err := deviceIDsAt(r, seq, userID)
	if err != nil {
		return err
	}
	ans.Keys = []DeviceKeys{}
	for _, id := range ids {
		dk := DeviceKeys{DeviceID: id}
		if ident, err := e2ekeys.GetDeviceKeys(r, userID, id); err != nil {
			return err
		} else if ident != nil {
			dk.Identity = ident.Keys
		}
		if dk.OneTimeKeyCounts, err = e2ekeys.OneTimeKeyCounts(r, userID, id); err != nil {
			return err
		}
		fks, err := e2ekeys.FallbackKeys(r, userID, id)
		if err != nil {
			return err
		}
		for _, fk := range fks {
			dk.FallbackKeys = append(dk.FallbackKeys, FallbackKey{Algorithm: fk.Algorithm, KeyID: fk.KeyID, Used: fk.Used})
		}
		ans.Keys = append(ans.Keys, dk)
	}
	for _, usage := range []string{e2ekeys.UsageMaster, e2ekeys.UsageSelfSigning, e2ekeys.UsageUserSigning} {
		k, err := e2ekeys.GetCrossSigningKey(r, userID, usage)
		if err != nil {
			return err
		}
		if k != nil {
			if ans.CrossSigning == nil {
				ans.CrossSigning = map[string]json.RawMessage{}
			}
			ans.CrossSigning[usage] = k.Key
		}
	}
	return nil
}

// deviceIDsAt lists a user's devices in r, a store replayed up to seq; a
// user not registered then is a question error.
func deviceIDsAt(r pebble.Reader, seq uint64, userID string) ([]string, error) {
	u, err := accounts.GetUser(r, userID)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, questionf("%s was not registered at position %d", userID, seq)
	}
	return accounts.DeviceIDs(r, userID)
}
