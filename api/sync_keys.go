package api

import (
	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/e2ekeys"
)

// The end-to-end encryption extensions to /sync (the spec's "Extensions to
// /sync"): device_lists on an incremental sync, and for the syncing device
// device_one_time_keys_count and device_unused_fallback_key_types, always
// present, as Synapse sends them.

// syncKeys is what a sync response carries about keys.
type syncKeys struct {
	DeviceLists                  *deviceLists   `json:"device_lists"`
	DeviceOneTimeKeysCount       map[string]int `json:"device_one_time_keys_count"`
	DeviceUnusedFallbackKeyTypes []string       `json:"device_unused_fallback_key_types"`
	// changed is set when the device's one-time or fallback keys changed
	// since the token: the counts are news, so the response is not empty.
	changed bool
}

// empty reports whether nothing in it is new to the client.
func (k *syncKeys) empty() bool {
	return !k.changed && (k.DeviceLists == nil || len(k.DeviceLists.Changed) == 0 && len(k.DeviceLists.Left) == 0)
}

// loadSyncKeys reads the key sections for req at head.
func loadSyncKeys(r pebble.Reader, req *syncRequest, head uint64) (syncKeys, error) {
	user, device := req.viewer.UserID, req.viewer.DeviceID
	out := syncKeys{DeviceLists: emptyDeviceLists()}
	var err error
	if out.DeviceOneTimeKeysCount, err = oneTimeKeyCounts(r, user, device); err != nil {
		return out, err
	}
	if out.DeviceUnusedFallbackKeyTypes, err = e2ekeys.UnusedFallbackKeyTypes(r, user, device); err != nil {
		return out, err
	}
	if req.since == 0 || req.since >= head {
		return out, nil // device_lists is only for incremental syncs
	}
	changedAt, err := e2ekeys.KeysChangedAt(r, user, device)
	if err != nil {
		return out, err
	}
	out.changed = changedAt > req.since
	out.DeviceLists, err = deviceListsBetween(r, user, req.since, head)
	return out, err
}
