package e2ekeys

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"

	"chronicle/projections"
)

// Cross-signing key usages (the spec's CrossSigningKey.usage).
const (
	UsageMaster      = "master"
	UsageSelfSigning = "self_signing"
	UsageUserSigning = "user_signing"
)

// GetDeviceKeys returns a device's identity keys, or nil.
func GetDeviceKeys(r pebble.Reader, user, device string) (*DeviceKeys, error) {
	return projections.Lookup[DeviceKeys](r, deviceKey(user, device))
}

// DeviceKeysEntry is one device's identity keys.
type DeviceKeysEntry struct {
	DeviceID string
	DeviceKeys
}

// UserDeviceKeys lists the identity keys of every device of a user that
// uploaded some, in device ID order.
func UserDeviceKeys(r pebble.Reader, user string) ([]DeviceKeysEntry, error) {
	p := userDevicesPrefix(user)
	var out []DeviceKeysEntry
	err := each(r, p, func(k, v []byte) error {
		e := DeviceKeysEntry{DeviceID: string(k[:len(k)-1])}
		if err := decode(v, &e.DeviceKeys); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// OneTimeKeyCounts returns the number of unclaimed one-time keys of a
// device per algorithm (algorithms without any are absent).
func OneTimeKeyCounts(r pebble.Reader, user, device string) (map[string]int, error) {
	out := map[string]int{}
	err := each(r, countPrefix(user, device), func(k, v []byte) error {
		out[string(k[:len(k)-1])] = int(projections.U64At(v))
		return nil
	})
	return out, err
}

// OneTimeKey is a key in a device's pool.
type OneTimeKey struct {
	Algorithm string
	KeyID     string
	Key       []byte
}

// NextOneTimeKey returns the key /keys/claim gives out next for a device
// and algorithm (the earliest uploaded, then the smallest key ID), or nil.
func NextOneTimeKey(r pebble.Reader, user, device, algorithm string) (*OneTimeKey, error) {
	p := poolPrefix(user, device, algorithm)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("one-time keys of %s/%s: %w", user, device, err)
	}
	defer it.Close()
	if !it.First() {
		return nil, it.Error()
	}
	rest := it.Key()[len(p)+8:] // seq, then keyID + 0x00
	return &OneTimeKey{Algorithm: algorithm, KeyID: string(rest[:len(rest)-1]), Key: bytes.Clone(it.Value())}, nil
}

// GetOneTimeKey returns an unclaimed key by ID, or nil.
func GetOneTimeKey(r pebble.Reader, user, device, algorithm, keyID string) (*OneTimeKey, error) {
	at, found, err := readU64(r, idKey(user, device, algorithm, keyID))
	if err != nil || !found {
		return nil, err
	}
	v, closer, err := r.Get(poolPrefix(user, device, algorithm).U64(at).Str(keyID))
	if err != nil {
		return nil, fmt.Errorf("one-time key %s:%s: %w", algorithm, keyID, err)
	}
	defer closer.Close()
	return &OneTimeKey{Algorithm: algorithm, KeyID: keyID, Key: bytes.Clone(v)}, nil
}

// GetFallbackKey returns a device's fallback key of an algorithm, or nil.
func GetFallbackKey(r pebble.Reader, user, device, algorithm string) (*FallbackKey, error) {
	return projections.Lookup[FallbackKey](r, fallbackPrefix(user, device).Str(algorithm))
}

// FallbackKeyEntry is one of a device's fallback keys.
type FallbackKeyEntry struct {
	Algorithm string
	FallbackKey
}

// FallbackKeys lists a device's fallback keys in algorithm order.
func FallbackKeys(r pebble.Reader, user, device string) ([]FallbackKeyEntry, error) {
	var out []FallbackKeyEntry
	err := each(r, fallbackPrefix(user, device), func(k, v []byte) error {
		e := FallbackKeyEntry{Algorithm: string(k[:len(k)-1])}
		if err := decode(v, &e.FallbackKey); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// UnusedFallbackKeyTypes lists the algorithms whose fallback key no claim
// has given out yet, in order.
func UnusedFallbackKeyTypes(r pebble.Reader, user, device string) ([]string, error) {
	all, err := FallbackKeys(r, user, device)
	out := []string{}
	for _, fk := range all {
		if !fk.Used {
			out = append(out, fk.Algorithm)
		}
	}
	return out, err
}

// KeysChangedAt is the position of the last change to a device's one-time
// or fallback keys (0: none).
func KeysChangedAt(r pebble.Reader, user, device string) (uint64, error) {
	seq, _, err := readU64(r, changedAtKey(user, device))
	return seq, err
}

// HasKeys reports whether a device holds any key at all.
func HasKeys(r pebble.Reader, user, device string) (bool, error) {
	for _, tag := range []byte{tagDevice, tagCount, tagFallback} {
		p := devicePrefix(tag, user, device)
		found := false
		if err := each(r, p, func(_, _ []byte) error { found = true; return errStop }); err != nil && !errors.Is(err, errStop) {
			return false, err
		}
		if found {
			return true, nil
		}
	}
	return false, nil
}

// GetCrossSigningKey returns a user's cross-signing key of one usage, or
// nil.
func GetCrossSigningKey(r pebble.Reader, user, usage string) (*CrossSigningKey, error) {
	return projections.Lookup[CrossSigningKey](r, crossKey(user, usage))
}

// Signature is one uploaded signature of a key.
type Signature struct {
	Signer      string
	SignerKeyID string
	Signature   string
}

// Signatures lists the uploaded signatures of one of a user's keys (a
// device ID, or a cross-signing key's public key), by signer.
func Signatures(r pebble.Reader, user, keyID string) ([]Signature, error) {
	var out []Signature
	err := each(r, signaturesPrefix(user, keyID), func(k, v []byte) error {
		signer, rest, _ := bytes.Cut(k, []byte{0})
		out = append(out, Signature{Signer: string(signer), SignerKeyID: string(bytes.TrimSuffix(rest, []byte{0})), Signature: string(v)})
		return nil
	})
	return out, err
}

// DeviceListChange is one entry of the device list log: User's keys
// changed at Seq, visible to everyone sharing a room with them, or only to
// OnlyFor when set.
type DeviceListChange struct {
	Seq     uint64
	User    string
	OnlyFor string
}

// DeviceListChanges returns the entries in (after, upTo], at most
// maxEntries of them (0: no bound); complete is false when there were
// more.
func DeviceListChanges(r pebble.Reader, after, upTo uint64, maxEntries int) (out []DeviceListChange, complete bool, err error) {
	if upTo <= after {
		return nil, true, nil
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: listLogKey(after + 1), UpperBound: listLogKey(upTo + 1)})
	if err != nil {
		return nil, false, fmt.Errorf("device list log: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if maxEntries > 0 && len(out) == maxEntries {
			return out, false, it.Error()
		}
		user, onlyFor, _ := bytes.Cut(it.Value(), []byte{0})
		out = append(out, DeviceListChange{Seq: projections.U64At(it.Key()), User: string(user), OnlyFor: string(onlyFor)})
	}
	return out, true, it.Error()
}

// errStop ends an each early.
var errStop = errors.New("stop")

func decode(b []byte, v any) error {
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	return nil
}

// each visits the keys under p (the part after p) with their values.
func each(r pebble.Reader, p projections.Key, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return fmt.Errorf("e2e keys %x: %w", []byte(p), err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key()[len(p):], it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

// PublicKey returns the public key of a cross-signing key object: the key
// named by its "ed25519:<public key>" entry ("" if it has none; the
// smallest if several, so the answer never depends on map order).
func PublicKey(key []byte) string {
	var k struct {
		Keys map[string]string `json:"keys"`
	}
	if json.Unmarshal(key, &k) != nil {
		return ""
	}
	best := ""
	for name := range k.Keys {
		if pub, ok := strings.CutPrefix(name, "ed25519:"); ok && (best == "" || pub < best) {
			best = pub
		}
	}
	return best
}
