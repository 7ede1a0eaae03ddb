package accounts

import "chronicle/projections"

// Prefix is the key space of this projection.
const Prefix byte = 0x10

const (
	tagUser   byte = 'u' // u userID -> User
	tagDevice byte = 'd' // d userID deviceID -> Device
	tagToken  byte = 't' // t sha256(token) -> Session
)

func userKey(userID string) []byte { return projections.NewKey(Prefix, tagUser).Str(userID) }

func devicePrefix(userID string) projections.Key {
	return projections.NewKey(Prefix, tagDevice).Str(userID)
}

func deviceKey(userID, deviceID string) []byte { return devicePrefix(userID).Str(deviceID) }

func tokenKey(hash [32]byte) []byte { return projections.NewKey(Prefix, tagToken).Raw(hash[:]) }
