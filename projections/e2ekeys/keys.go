package e2ekeys

import "chronicle/projections"

// Prefix is the key space of this projection.
const Prefix byte = 0x85

const (
	tagDevice    byte = 'd' // d userID deviceID -> DeviceKeys
	tagOneTime   byte = 'o' // o userID deviceID algorithm seq keyID -> key JSON
	tagOneTimeID byte = 'i' // i userID deviceID algorithm keyID -> seq (uint64 BE)
	tagCount     byte = 'n' // n userID deviceID algorithm -> unclaimed count (uint64 BE)
	tagFallback  byte = 'f' // f userID deviceID algorithm -> FallbackKey
	tagChangedAt byte = 'c' // c userID deviceID -> seq of the last one-time/fallback change
	tagListLog   byte = 'l' // l seq -> userID [0x00 onlyFor]: device list changes
	tagCross     byte = 'x' // x userID usage -> CrossSigningKey
	tagSignature byte = 's' // s userID keyID signer signerKeyID -> signature
)

// devicePart is every per-device tag; deleting a device clears each.
var devicePart = []byte{tagDevice, tagOneTime, tagOneTimeID, tagCount, tagFallback, tagChangedAt}

func deviceKey(user, device string) []byte {
	return projections.NewKey(Prefix, tagDevice).Str(user).Str(device)
}

func userDevicesPrefix(user string) projections.Key {
	return projections.NewKey(Prefix, tagDevice).Str(user)
}

func poolPrefix(user, device, algorithm string) projections.Key {
	return projections.NewKey(Prefix, tagOneTime).Str(user).Str(device).Str(algorithm)
}

func idKey(user, device, algorithm, keyID string) []byte {
	return projections.NewKey(Prefix, tagOneTimeID).Str(user).Str(device).Str(algorithm).Str(keyID)
}

func countPrefix(user, device string) projections.Key {
	return projections.NewKey(Prefix, tagCount).Str(user).Str(device)
}

func fallbackPrefix(user, device string) projections.Key {
	return projections.NewKey(Prefix, tagFallback).Str(user).Str(device)
}

func changedAtKey(user, device string) []byte {
	return projections.NewKey(Prefix, tagChangedAt).Str(user).Str(device)
}

func listLogKey(seq uint64) []byte { return projections.NewKey(Prefix, tagListLog).U64(seq) }

func crossKey(user, usage string) []byte {
	return projections.NewKey(Prefix, tagCross).Str(user).Str(usage)
}

func signaturesPrefix(user, keyID string) projections.Key {
	return projections.NewKey(Prefix, tagSignature).Str(user).Str(keyID)
}

// devicePrefix is the range of one device under one tag.
func devicePrefix(tag byte, user, device string) projections.Key {
	return projections.NewKey(Prefix, tag).Str(user).Str(device)
}
