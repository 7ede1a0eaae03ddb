package syncstream

import (
	"bytes"

	rlog "chronicle/log"
	"chronicle/projections/facts"
)

// Entries for end-to-end encryption key records (facts/keys.go). /sync
// shows them in device_lists, device_one_time_keys_count and
// device_unused_fallback_key_types, each of which concerns few users: a
// device list change concerns its user and those sharing a room with them
// (or one user, for a change only they may see), and one-time and fallback
// keys concern one device.
const (
	// KindDeviceList: Change.User's device list changed; when
	// Change.OnlyFor is set, it concerns only that user.
	KindDeviceList Kind = 'k'
	// KindDeviceKeys: the one-time or fallback keys of Change.User's
	// device Change.Device changed.
	KindDeviceKeys Kind = 'o'
)

// keysEntry returns the stream value of a key record; ok is false for
// other records.
func keysEntry(rec *rlog.Record) (val []byte, ok bool, err error) {
	switch rec.Type {
	case facts.TypeOneTimeKeysAdded, facts.TypeOneTimeKeyClaimed, facts.TypeFallbackKeysSet, facts.TypeFallbackKeyUsed:
		var f refs // each names the device's user under u and the device under d
		if err := facts.Decode(rec.Body, &f); err != nil {
			return nil, true, err
		}
		return append(append(append([]byte{byte(KindDeviceKeys)}, f.UserID...), 0), f.Device...), true, nil
	}
	user, onlyFor, ok, err := facts.DeviceListChangeOf(rec.Type, rec.Body)
	if !ok || err != nil {
		return nil, ok, err
	}
	val = append([]byte{byte(KindDeviceList)}, user...)
	if onlyFor != "" {
		val = append(append(val, 0), onlyFor...)
	}
	return val, true, nil
}

// decodeKeysChange fills c from the value after the kind byte.
func decodeKeysChange(c *Change, rest []byte) {
	user, other, _ := bytes.Cut(rest, []byte{0})
	c.User = string(user)
	if c.Kind == KindDeviceKeys {
		c.Device = string(other)
	} else {
		c.OnlyFor = string(other)
	}
}
