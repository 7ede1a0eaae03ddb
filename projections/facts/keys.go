package facts

import "encoding/json"

// Record types of end-to-end encryption keys (the spec's /keys/* module).
// Keys are public: the log holds them as the client uploaded them, and
// signatures are stored as given (the server does not verify them).
//
// The owner of the keys is always under tag "u" and their device under
// "d", so readers that only need to know whose keys changed (the sync
// stream) decode two fields and skip the rest.
const (
	// TypeDeviceKeysSet stores (or re-signs) a device's identity keys.
	TypeDeviceKeysSet = "device_keys.set"
	// TypeDeviceKeysDeleted drops every key of a device that was deleted
	// or logged out: identity, one-time and fallback keys.
	TypeDeviceKeysDeleted = "device_keys.deleted"
	// TypeOneTimeKeysAdded adds one-time keys to a device's pool.
	TypeOneTimeKeysAdded = "one_time_keys.added"
	// TypeOneTimeKeyClaimed removes one one-time key, given to the
	// record's actor by /keys/claim.
	TypeOneTimeKeyClaimed = "one_time_key.claimed"
	// TypeFallbackKeysSet replaces a device's fallback key of each
	// algorithm named (unused again).
	TypeFallbackKeysSet = "fallback_keys.set"
	// TypeFallbackKeyUsed marks a fallback key as given out by /keys/claim
	// for the first time (it stays available).
	TypeFallbackKeyUsed = "fallback_key.used"
	// TypeCrossSigningKeySet stores one of a user's cross-signing keys.
	TypeCrossSigningKeySet = "cross_signing_key.set"
	// TypeSignatureAdded adds one signature to a key: a device key, a
	// master key, or (from another user) a master key.
	TypeSignatureAdded = "key_signature.added"
)

// DeviceKeysSet is a device's DeviceKeys object, canonical JSON.
type DeviceKeysSet struct {
	UserID   string          `msgpack:"u"`
	DeviceID string          `msgpack:"d"`
	Keys     json.RawMessage `msgpack:"k"`
}

// DeviceKeysDeleted drops all keys of one device.
type DeviceKeysDeleted struct {
	UserID   string `msgpack:"u"`
	DeviceID string `msgpack:"d"`
}

// OneTimeKey is one uploaded one-time or fallback key.
type OneTimeKey struct {
	Algorithm string `msgpack:"a"`
	KeyID     string `msgpack:"i"`
	// Key is the key: a JSON string or a signed key object, canonical.
	Key json.RawMessage `msgpack:"k"`
}

// OneTimeKeysAdded adds keys, sorted by (algorithm, key ID). Keys added by
// one record are equivalent in the order /keys/claim gives them out.
type OneTimeKeysAdded struct {
	UserID   string       `msgpack:"u"`
	DeviceID string       `msgpack:"d"`
	Keys     []OneTimeKey `msgpack:"k"`
}

// OneTimeKeyClaimed removes one key from the pool of UserID's DeviceID.
type OneTimeKeyClaimed struct {
	UserID    string `msgpack:"u"`
	DeviceID  string `msgpack:"d"`
	Algorithm string `msgpack:"a"`
	KeyID     string `msgpack:"i"`
}

// FallbackKeysSet replaces the fallback key of each algorithm it names.
type FallbackKeysSet struct {
	UserID   string       `msgpack:"u"`
	DeviceID string       `msgpack:"d"`
	Keys     []OneTimeKey `msgpack:"k"`
}

// FallbackKeyUsed marks a device's fallback key of one algorithm used.
type FallbackKeyUsed struct {
	UserID    string `msgpack:"u"`
	DeviceID  string `msgpack:"d"`
	Algorithm string `msgpack:"a"`
	KeyID     string `msgpack:"i"`
}

// CrossSigningKeySet stores a user's master, self_signing or user_signing
// key (the CrossSigningKey object, canonical JSON, with the signatures it
// was uploaded with).
type CrossSigningKeySet struct {
	UserID string          `msgpack:"u"`
	Usage  string          `msgpack:"g"`
	Key    json.RawMessage `msgpack:"k"`
}

// SignatureAdded adds Signer's signature to UserID's key KeyID: a device
// ID, or the public part of a cross-signing key.
type SignatureAdded struct {
	UserID string `msgpack:"u"`
	// KeyID names the signed key: a device ID or a cross-signing key's
	// public key (unpadded base64).
	KeyID       string `msgpack:"d"`
	Signer      string `msgpack:"s"`
	SignerKeyID string `msgpack:"sk"`
	Signature   string `msgpack:"v"`
}

// DeviceListChangeOf reports whose device list a record changes (what
// /keys/query shows about User) and, for a change only one user may see (a
// user-signing key, a signature on another user's key), that user. ok is
// false for records that change no device list. The keys projection and
// the sync stream both ask, so they agree on who is told.
func DeviceListChangeOf(typ string, body []byte) (user, onlyFor string, ok bool, err error) {
	switch typ {
	case TypeDeviceKeysSet, TypeDeviceKeysDeleted:
		var f DeviceKeysDeleted // both name the device under u and d
		err = Decode(body, &f)
		return f.UserID, "", true, err
	case TypeCrossSigningKeySet:
		var f CrossSigningKeySet
		err = Decode(body, &f)
		if f.Usage == "user_signing" {
			return f.UserID, f.UserID, true, err
		}
		return f.UserID, "", true, err
	case TypeSignatureAdded:
		var f SignatureAdded
		err = Decode(body, &f)
		if f.Signer != f.UserID {
			return f.UserID, f.Signer, true, err
		}
		return f.UserID, "", true, err
	}
	return "", "", false, nil
}
