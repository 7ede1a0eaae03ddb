package api

import (
	"encoding/json"
	"slices"
	"strings"

	"maunium.net/go/mautrix/crypto/canonicaljson"

	"chronicle/raft/machine"
)

// Shape checks of uploaded keys. The server stores keys as the client
// signed them (canonical JSON), so it checks only what it relies on: the
// fields it reads, and identifiers that become parts of storage keys.

// deviceKeysInput is the spec's DeviceKeys object; every field is required.
type deviceKeysInput struct {
	UserID     *string                      `json:"user_id"`
	DeviceID   *string                      `json:"device_id"`
	Algorithms []string                     `json:"algorithms"`
	Keys       map[string]string            `json:"keys"`
	Signatures map[string]map[string]string `json:"signatures"`
}

// parseDeviceKeys checks an uploaded DeviceKeys object and returns it as
// canonical JSON. It must be the requester's own device's, as the spec
// says and Synapse enforces (with M_BAD_JSON).
func parseDeviceKeys(raw json.RawMessage, r *Requester) (json.RawMessage, error) {
	if !isJSONObjectValue(raw) {
		return nil, errBadJSON("device_keys must be a DeviceKeys object")
	}
	var dk deviceKeysInput
	if err := decodeJSON(raw, &dk, false); err != nil {
		return nil, err
	}
	if dk.UserID == nil || dk.DeviceID == nil || dk.Algorithms == nil || dk.Keys == nil || dk.Signatures == nil {
		return nil, errBadJSON("device_keys needs user_id, device_id, algorithms, keys and signatures")
	}
	if *dk.UserID != r.UserID {
		return nil, errBadJSON("Provided user_id in device_keys does not match that of the authenticated user")
	}
	if *dk.DeviceID != r.DeviceID {
		return nil, errBadJSON("Provided device_id in device_keys does not match that of the authenticated user device")
	}
	return canonical(raw)
}

// parseKeyMap checks one_time_keys or fallback_keys: "<algorithm>:<key_id>"
// to a key, which is a string or a key object with a string "key".
// Identifiers pass validKeyPart (rooms.go): no NUL, which terminates the
// parts of storage keys, and at most 255 bytes.
func parseKeyMap(field string, m map[string]json.RawMessage) ([]machine.UploadedKey, error) {
	out := make([]machine.UploadedKey, 0, len(m))
	for name, raw := range m {
		alg, keyID, ok := strings.Cut(name, ":")
		if !ok || alg == "" || keyID == "" || strings.Contains(keyID, ":") || !validKeyPart(alg) || !validKeyPart(keyID) {
			return nil, errBadJSON("Invalid " + field + " key " + quote(name) + `: expected "<algorithm>:<key_id>"`)
		}
		if err := checkKeyObject(field, name, raw); err != nil {
			return nil, err
		}
		key, err := canonical(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, machine.UploadedKey{Algorithm: alg, KeyID: keyID, Key: key})
	}
	// The command's order must not depend on map order.
	slices.SortFunc(out, func(a, b machine.UploadedKey) int {
		if c := strings.Compare(a.Algorithm, b.Algorithm); c != 0 {
			return c
		}
		return strings.Compare(a.KeyID, b.KeyID)
	})
	return out, nil
}

func checkKeyObject(field, name string, raw json.RawMessage) error {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return nil // an unsigned key: the key itself
	}
	var obj struct {
		Key        *string                      `json:"key"`
		Fallback   *bool                        `json:"fallback"`
		Signatures map[string]map[string]string `json:"signatures"`
	}
	if !isJSONObjectValue(raw) || json.Unmarshal(raw, &obj) != nil || obj.Key == nil {
		return errBadJSON(field + " " + quote(name) + " must be a key string or an object with a string key")
	}
	return nil
}

func isJSONObjectValue(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil && m != nil
}

// canonical re-encodes JSON canonically, so equal keys compare equal
// byte for byte in the state machine.
func canonical(raw json.RawMessage) (json.RawMessage, error) {
	b, err := canonicaljson.Marshal(raw)
	if err != nil {
		return nil, errBadJSON("keys must be valid JSON without duplicate names: " + err.Error())
	}
	return json.RawMessage(b), nil
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
