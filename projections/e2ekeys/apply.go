package e2ekeys

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// DeviceKeys is a device's identity keys as uploaded (canonical JSON).
type DeviceKeys struct {
	Keys []byte `msgpack:"k"`
	Seq  uint64 `msgpack:"s"` // position of the upload
}

// FallbackKey is a device's fallback key of one algorithm.
type FallbackKey struct {
	KeyID string `msgpack:"i"`
	Key   []byte `msgpack:"k"`
	Used  bool   `msgpack:"u"`
}

// CrossSigningKey is one of a user's cross-signing keys (canonical JSON).
type CrossSigningKey struct {
	Key []byte `msgpack:"k"`
	Seq uint64 `msgpack:"s"`
}

// Projection folds key records.
type Projection struct{}

func (Projection) Name() string    { return "e2ekeys" }
func (Projection) Version() uint32 { return 1 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	var err error
	switch rec.Type {
	case facts.TypeDeviceKeysSet:
		err = applyDeviceKeys(w, rec)
	case facts.TypeDeviceKeysDeleted:
		err = applyDeviceDeleted(w, rec)
	case facts.TypeOneTimeKeysAdded:
		err = applyOneTimeKeys(w, rec)
	case facts.TypeOneTimeKeyClaimed:
		err = applyClaimed(w, rec)
	case facts.TypeFallbackKeysSet:
		err = applyFallbackKeys(w, rec)
	case facts.TypeFallbackKeyUsed:
		err = applyFallbackUsed(w, rec)
	case facts.TypeCrossSigningKeySet:
		err = applyCrossSigningKey(w, rec)
	case facts.TypeSignatureAdded:
		err = applySignature(w, rec)
	default:
		return nil
	}
	if err == nil {
		err = logListChange(w, rec)
	}
	if err != nil {
		return fmt.Errorf("%s record %d: %w", rec.Type, rec.Seq, err)
	}
	return nil
}

func applyDeviceKeys(w projections.Writer, rec *rlog.Record) error {
	var f facts.DeviceKeysSet
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	return projections.SetMsgpack(w, deviceKey(f.UserID, f.DeviceID), &DeviceKeys{Keys: f.Keys, Seq: rec.Seq})
}

func applyDeviceDeleted(w projections.Writer, rec *rlog.Record) error {
	var f facts.DeviceKeysDeleted
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	for _, tag := range devicePart {
		p := devicePrefix(tag, f.UserID, f.DeviceID)
		if err := w.DeleteRange(p, p.End(), nil); err != nil {
			return fmt.Errorf("drop keys of %s/%s: %w", f.UserID, f.DeviceID, err)
		}
	}
	// Signatures on the device go with it (a device ID may be reused by a
	// new device with other keys).
	p := signaturesPrefix(f.UserID, f.DeviceID)
	if err := w.DeleteRange(p, p.End(), nil); err != nil {
		return fmt.Errorf("drop signatures of %s/%s: %w", f.UserID, f.DeviceID, err)
	}
	return nil
}

func applyOneTimeKeys(w projections.Writer, rec *rlog.Record) error {
	var f facts.OneTimeKeysAdded
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	for _, k := range f.Keys {
		id := idKey(f.UserID, f.DeviceID, k.Algorithm, k.KeyID)
		if _, found, err := readU64(w, id); err != nil {
			return err
		} else if found {
			continue // the machine adds only new keys; never count one twice
		}
		if err := w.Set(poolPrefix(f.UserID, f.DeviceID, k.Algorithm).U64(rec.Seq).Str(k.KeyID), k.Key, nil); err != nil {
			return fmt.Errorf("add one-time key: %w", err)
		}
		if err := w.Set(id, projections.NewKey().U64(rec.Seq), nil); err != nil {
			return fmt.Errorf("index one-time key: %w", err)
		}
		if err := addCount(w, f.UserID, f.DeviceID, k.Algorithm, 1); err != nil {
			return err
		}
	}
	return setChangedAt(w, f.UserID, f.DeviceID, rec.Seq)
}

func applyClaimed(w projections.Writer, rec *rlog.Record) error {
	var f facts.OneTimeKeyClaimed
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	id := idKey(f.UserID, f.DeviceID, f.Algorithm, f.KeyID)
	at, found, err := readU64(w, id)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("claimed one-time key %s:%s of %s/%s is not in the pool", f.Algorithm, f.KeyID, f.UserID, f.DeviceID)
	}
	if err := w.Delete(poolPrefix(f.UserID, f.DeviceID, f.Algorithm).U64(at).Str(f.KeyID), nil); err != nil {
		return fmt.Errorf("remove claimed key: %w", err)
	}
	if err := w.Delete(id, nil); err != nil {
		return fmt.Errorf("unindex claimed key: %w", err)
	}
	if err := addCount(w, f.UserID, f.DeviceID, f.Algorithm, -1); err != nil {
		return err
	}
	return setChangedAt(w, f.UserID, f.DeviceID, rec.Seq)
}

func applyFallbackKeys(w projections.Writer, rec *rlog.Record) error {
	var f facts.FallbackKeysSet
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	for _, k := range f.Keys {
		if err := projections.SetMsgpack(w, fallbackPrefix(f.UserID, f.DeviceID).Str(k.Algorithm), &FallbackKey{KeyID: k.KeyID, Key: k.Key}); err != nil {
			return err
		}
	}
	return setChangedAt(w, f.UserID, f.DeviceID, rec.Seq)
}

func applyFallbackUsed(w projections.Writer, rec *rlog.Record) error {
	var f facts.FallbackKeyUsed
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	key := fallbackPrefix(f.UserID, f.DeviceID).Str(f.Algorithm)
	var fk FallbackKey
	found, err := projections.GetMsgpack(w, key, &fk)
	if err != nil {
		return err
	}
	if !found || fk.KeyID != f.KeyID {
		return fmt.Errorf("used fallback key %s:%s of %s/%s is not the current one", f.Algorithm, f.KeyID, f.UserID, f.DeviceID)
	}
	fk.Used = true
	if err := projections.SetMsgpack(w, key, &fk); err != nil {
		return err
	}
	return setChangedAt(w, f.UserID, f.DeviceID, rec.Seq)
}

func applyCrossSigningKey(w projections.Writer, rec *rlog.Record) error {
	var f facts.CrossSigningKeySet
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	return projections.SetMsgpack(w, crossKey(f.UserID, f.Usage), &CrossSigningKey{Key: f.Key, Seq: rec.Seq})
}

func applySignature(w projections.Writer, rec *rlog.Record) error {
	var f facts.SignatureAdded
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	if err := w.Set(signaturesPrefix(f.UserID, f.KeyID).Str(f.Signer).Str(f.SignerKeyID), []byte(f.Signature), nil); err != nil {
		return fmt.Errorf("store signature: %w", err)
	}
	return nil
}

// logListChange appends the record to the device list log when it changes
// a device list (facts.DeviceListChangeOf says whose, and who may see it).
func logListChange(w projections.Writer, rec *rlog.Record) error {
	user, onlyFor, ok, err := facts.DeviceListChangeOf(rec.Type, rec.Body)
	if err != nil || !ok {
		return err
	}
	v := []byte(user)
	if onlyFor != "" {
		v = append(append(v, 0), onlyFor...)
	}
	if err := w.Set(listLogKey(rec.Seq), v, nil); err != nil {
		return fmt.Errorf("log device list change: %w", err)
	}
	return nil
}

func setChangedAt(w projections.Writer, user, device string, seq uint64) error {
	if err := w.Set(changedAtKey(user, device), projections.NewKey().U64(seq), nil); err != nil {
		return fmt.Errorf("mark keys of %s/%s changed: %w", user, device, err)
	}
	return nil
}

func addCount(w projections.Writer, user, device, algorithm string, delta int) error {
	key := countPrefix(user, device).Str(algorithm)
	n, _, err := readU64(w, key)
	if err != nil {
		return err
	}
	next := int64(n) + int64(delta)
	if next < 0 {
		return fmt.Errorf("one-time key count of %s/%s %s would go negative", user, device, algorithm)
	}
	if next == 0 {
		return w.Delete(key, nil)
	}
	return w.Set(key, projections.NewKey().U64(uint64(next)), nil)
}

func readU64(r pebble.Reader, key []byte) (uint64, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("get %x: %w", key, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("value of %x has %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}
