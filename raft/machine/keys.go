package machine

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"

	"chronicle/projections/accounts"
	"chronicle/projections/e2ekeys"
	"chronicle/projections/facts"
)

// Commands of end-to-end encryption keys (/keys/upload, /keys/claim).
// Claiming consumes a one-time key, so it is a write decided here: two
// claims racing on two nodes can never get the same key.
const (
	CmdUploadKeys = "upload_keys"
	CmdClaimKeys  = "claim_keys"
)

// UploadedKey is one one-time or fallback key of an upload: the spec's
// "<algorithm>:<key_id>" split, and the key as canonical JSON.
type UploadedKey struct {
	Algorithm string          `msgpack:"a"`
	KeyID     string          `msgpack:"i"`
	Key       json.RawMessage `msgpack:"k"`
}

// UploadKeys publishes keys of the actor's device (Command.Device).
// DeviceKeys is the DeviceKeys object as canonical JSON (nil: none).
type UploadKeys struct {
	DeviceKeys   json.RawMessage `msgpack:"d"`
	OneTimeKeys  []UploadedKey   `msgpack:"o"`
	FallbackKeys []UploadedKey   `msgpack:"f"`
}

// KeyClaim asks for one key of a device.
type KeyClaim struct {
	UserID    string `msgpack:"u"`
	DeviceID  string `msgpack:"d"`
	Algorithm string `msgpack:"a"`
}

// ClaimKeys claims one key per (user, device) listed.
type ClaimKeys struct {
	Claims []KeyClaim `msgpack:"c"`
}

// ClaimedKey is a key a claim gave out (Result.Claimed).
type ClaimedKey struct {
	UserID    string          `msgpack:"u"`
	DeviceID  string          `msgpack:"d"`
	Algorithm string          `msgpack:"a"`
	KeyID     string          `msgpack:"i"`
	Key       json.RawMessage `msgpack:"k"`
}

// decideKeys handles the commands above; ok is false for other types.
func (x *applyCtx) decideKeys() (res *Result, ok bool, err error) {
	switch x.cmd.Type {
	case CmdUploadKeys:
		res, err = x.uploadKeys()
	case CmdClaimKeys:
		res, err = x.claimKeys()
	default:
		if res, ok, err = x.decideCrossSigning(); ok {
			return res, ok, err
		}
		return nil, false, nil
	}
	return res, true, err
}

func (x *applyCtx) uploadKeys() (*Result, error) {
	var p UploadKeys
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	user, device := x.cmd.Actor, x.cmd.Device
	if dev, err := accounts.GetDevice(x.b, user, device); err != nil {
		return nil, err
	} else if dev == nil {
		// Logged out while the upload was in flight: keys without a device
		// would never be dropped.
		return &Result{Err: reject(KindUnknownToken, "unknown device %s", device)}, nil
	}
	if p.DeviceKeys != nil {
		if rej, err := x.setDeviceKeys(user, device, p.DeviceKeys); rej != nil || err != nil {
			return &Result{Err: rej}, err
		}
	}
	if rej, err := x.addOneTimeKeys(user, device, p.OneTimeKeys); rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	if rej, err := x.setFallbackKeys(user, device, p.FallbackKeys); rej != nil || err != nil {
		return &Result{Err: rej}, err
	}
	return &Result{}, nil
}

// identityKeys is the part of a DeviceKeys object the machine checks.
type identityKeys struct {
	UserID   string            `json:"user_id"`
	DeviceID string            `json:"device_id"`
	Keys     map[string]string `json:"keys"`
}

// setDeviceKeys stores a device's identity keys. Once a device has keys,
// they may be re-signed (a new cross-signing identity signs the same keys)
// but not replaced: other devices pinned the first ones, so new keys
// would only break encryption with them (matrix-org/matrix-spec#2442;
// Synapse is adopting the same rule, element-hq/synapse#18511). A client
// with new keys logs in as a new device.
func (x *applyCtx) setDeviceKeys(user, device string, raw json.RawMessage) (*Rejection, error) {
	var dk identityKeys
	if err := json.Unmarshal(raw, &dk); err != nil {
		return reject(KindBadJSON, "device_keys is not a DeviceKeys object: %v", err), nil
	}
	if dk.UserID != user || dk.DeviceID != device {
		return reject(KindBadJSON, "device_keys must be for %s's device %s", user, device), nil
	}
	cur, err := e2ekeys.GetDeviceKeys(x.b, user, device)
	if err != nil {
		return nil, err
	}
	if cur != nil {
		if bytes.Equal(cur.Keys, raw) {
			return nil, nil // a retry or a routine re-upload: nothing changed
		}
		var old identityKeys
		if err := json.Unmarshal(cur.Keys, &old); err != nil {
			return nil, err
		}
		if !maps.Equal(old.Keys, dk.Keys) {
			return reject(KindInvalidParam, "the identity keys of device %s are already uploaded and cannot be changed; log in as a new device instead", device), nil
		}
	}
	return nil, x.emit(facts.TypeDeviceKeysSet, &facts.DeviceKeysSet{UserID: user, DeviceID: device, Keys: raw})
}

// addOneTimeKeys adds the keys not in the pool yet. A key ID already in the
// pool with other content is refused, as Synapse does: a client that
// reuses key IDs would otherwise hand out keys it no longer holds.
func (x *applyCtx) addOneTimeKeys(user, device string, keys []UploadedKey) (*Rejection, error) {
	keys = sortedKeys(keys)
	var added []facts.OneTimeKey
	for _, k := range keys {
		cur, err := e2ekeys.GetOneTimeKey(x.b, user, device, k.Algorithm, k.KeyID)
		if err != nil {
			return nil, err
		}
		if cur != nil {
			if !sameOneTimeKey(cur.Key, k.Key) {
				return reject(KindInvalidParam, "one-time key %s:%s already exists with other content", k.Algorithm, k.KeyID), nil
			}
			continue
		}
		added = append(added, facts.OneTimeKey{Algorithm: k.Algorithm, KeyID: k.KeyID, Key: k.Key})
	}
	if len(added) == 0 {
		return nil, nil
	}
	return nil, x.emit(facts.TypeOneTimeKeysAdded, &facts.OneTimeKeysAdded{UserID: user, DeviceID: device, Keys: added})
}

// setFallbackKeys replaces the fallback key of each algorithm uploaded.
// Uploading the current key again changes nothing: it must not make a
// used key look unused (Synapse behaves the same).
func (x *applyCtx) setFallbackKeys(user, device string, keys []UploadedKey) (*Rejection, error) {
	keys = sortedKeys(keys)
	var set []facts.OneTimeKey
	for i, k := range keys {
		if i > 0 && keys[i-1].Algorithm == k.Algorithm {
			return reject(KindInvalidParam, "at most one fallback key per algorithm (%s)", k.Algorithm), nil
		}
		cur, err := e2ekeys.GetFallbackKey(x.b, user, device, k.Algorithm)
		if err != nil {
			return nil, err
		}
		if cur != nil && cur.KeyID == k.KeyID && bytes.Equal(cur.Key, k.Key) {
			continue
		}
		set = append(set, facts.OneTimeKey{Algorithm: k.Algorithm, KeyID: k.KeyID, Key: k.Key})
	}
	if len(set) == 0 {
		return nil, nil
	}
	return nil, x.emit(facts.TypeFallbackKeysSet, &facts.FallbackKeysSet{UserID: user, DeviceID: device, Keys: set})
}

func sortedKeys(keys []UploadedKey) []UploadedKey {
	return slices.SortedFunc(slices.Values(keys), func(a, b UploadedKey) int {
		if c := strings.Compare(a.Algorithm, b.Algorithm); c != 0 {
			return c
		}
		return strings.Compare(a.KeyID, b.KeyID)
	})
}

// sameOneTimeKey compares two uploads of a key ignoring their signatures,
// which may legitimately differ between attempts (as Synapse compares).
func sameOneTimeKey(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	if ma, ok := va.(map[string]any); ok {
		delete(ma, "signatures")
	}
	if mb, ok := vb.(map[string]any); ok {
		delete(mb, "signatures")
	}
	return reflect.DeepEqual(va, vb)
}

// claimKeys gives out one key per claim: the device's next one-time key of
// the algorithm (the earliest uploaded, then the smallest key ID), or,
// when none is left, its fallback key, which stays and is marked used.
func (x *applyCtx) claimKeys() (*Result, error) {
	var p ClaimKeys
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	res := &Result{}
	for _, c := range p.Claims {
		otk, err := e2ekeys.NextOneTimeKey(x.b, c.UserID, c.DeviceID, c.Algorithm)
		if err != nil {
			return nil, err
		}
		if otk != nil {
			if err := x.emit(facts.TypeOneTimeKeyClaimed, &facts.OneTimeKeyClaimed{UserID: c.UserID, DeviceID: c.DeviceID, Algorithm: c.Algorithm, KeyID: otk.KeyID}); err != nil {
				return nil, err
			}
			res.Claimed = append(res.Claimed, ClaimedKey{UserID: c.UserID, DeviceID: c.DeviceID, Algorithm: c.Algorithm, KeyID: otk.KeyID, Key: otk.Key})
			continue
		}
		fk, err := e2ekeys.GetFallbackKey(x.b, c.UserID, c.DeviceID, c.Algorithm)
		if err != nil {
			return nil, err
		}
		if fk == nil {
			continue // nothing to give: the device is absent from the answer
		}
		if !fk.Used {
			if err := x.emit(facts.TypeFallbackKeyUsed, &facts.FallbackKeyUsed{UserID: c.UserID, DeviceID: c.DeviceID, Algorithm: c.Algorithm, KeyID: fk.KeyID}); err != nil {
				return nil, err
			}
		}
		res.Claimed = append(res.Claimed, ClaimedKey{UserID: c.UserID, DeviceID: c.DeviceID, Algorithm: c.Algorithm, KeyID: fk.KeyID, Key: fk.Key})
	}
	return res, nil
}

// dropDeviceKeys records that a deleted device's keys go with it, when it
// had any: a device list change for everyone sharing a room with its user.
func (x *applyCtx) dropDeviceKeys(user, device string) error {
	has, err := e2ekeys.HasKeys(x.b, user, device)
	if err != nil || !has {
		return err
	}
	return x.emit(facts.TypeDeviceKeysDeleted, &facts.DeviceKeysDeleted{UserID: user, DeviceID: device})
}
