package machine

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"

	"chronicle/projections/facts"
	"chronicle/projections/keybackup"
)

// Server-side room key backups (/room_keys/*). Versions are numbered here,
// and which of two keys for one session a backup keeps is decided here, so
// every node keeps the same one.
const (
	CmdCreateKeyBackup = "create_key_backup"
	CmdUpdateKeyBackup = "update_key_backup"
	CmdDeleteKeyBackup = "delete_key_backup"
	CmdPutRoomKeys     = "put_room_keys"
	CmdDeleteRoomKeys  = "delete_room_keys"
)

// KeyBackupVersion creates a backup version of the actor (Version unused)
// or replaces the auth_data of one (Algorithm must be the version's).
// Version 0 names no version: the API sends it for a version string that
// is not a number, which can never exist.
type KeyBackupVersion struct {
	Version   uint64          `msgpack:"v"`
	Algorithm string          `msgpack:"a"`
	AuthData  json.RawMessage `msgpack:"d"` // canonical JSON object
}

// PutRoomKeys stores keys in the actor's backup version Version, which
// must be the current one.
type PutRoomKeys struct {
	Version uint64                  `msgpack:"v"`
	Keys    []facts.BackedUpRoomKey `msgpack:"k"`
}

// DeleteRoomKeys deletes keys from a backup version: all when RoomID is
// empty, a room's when SessionID is, else one session's.
type DeleteRoomKeys struct {
	Version   uint64 `msgpack:"v"`
	RoomID    string `msgpack:"r"`
	SessionID string `msgpack:"s"`
}

// KeyBackupState is a backup version after a command (Result.KeyBackup):
// the version created, the count and etag after a key change, or the
// current version when a write named another one.
type KeyBackupState struct {
	Version uint64 `msgpack:"v"`
	Count   int64  `msgpack:"n"`
	Etag    uint64 `msgpack:"e"`
}

// decideKeyBackup handles the commands above; ok is false for other types.
func (x *applyCtx) decideKeyBackup() (res *Result, ok bool, err error) {
	switch x.cmd.Type {
	case CmdCreateKeyBackup:
		res, err = x.createKeyBackup()
	case CmdUpdateKeyBackup:
		res, err = x.updateKeyBackup()
	case CmdDeleteKeyBackup:
		res, err = x.deleteKeyBackup()
	case CmdPutRoomKeys:
		res, err = x.putRoomKeys()
	case CmdDeleteRoomKeys:
		res, err = x.deleteRoomKeys()
	default:
		return nil, false, nil
	}
	return res, true, err
}

func errUnknownBackupVersion() *Result {
	return &Result{Err: reject(KindNotFound, "Unknown backup version")}
}

func (x *applyCtx) createKeyBackup() (*Result, error) {
	var p KeyBackupVersion
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	last, err := keybackup.LastVersion(x.b, x.cmd.Actor)
	if err != nil {
		return nil, err
	}
	version := last + 1
	if err := x.emit(facts.TypeKeyBackupCreated, &facts.KeyBackupCreated{UserID: x.cmd.Actor, Version: version, Algorithm: p.Algorithm, AuthData: p.AuthData}); err != nil {
		return nil, err
	}
	return &Result{KeyBackup: &KeyBackupState{Version: version}}, nil
}

func (x *applyCtx) updateKeyBackup() (*Result, error) {
	var p KeyBackupVersion
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	b, err := keybackup.GetVersion(x.b, x.cmd.Actor, p.Version)
	if err != nil || b == nil {
		return errUnknownBackupVersion(), err
	}
	if p.Algorithm != b.Algorithm {
		return &Result{Err: reject(KindInvalidParam, "Algorithm does not match")}, nil
	}
	if bytes.Equal(p.AuthData, b.AuthData) {
		return &Result{}, nil // a retry, or nothing changed
	}
	return &Result{}, x.emit(facts.TypeKeyBackupUpdated, &facts.KeyBackupUpdated{UserID: x.cmd.Actor, Version: p.Version, AuthData: p.AuthData})
}

// deleteKeyBackup deletes a version; deleting one that was deleted before
// succeeds, as the spec asks, and only a version never created is unknown.
func (x *applyCtx) deleteKeyBackup() (*Result, error) {
	var p KeyBackupVersion
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	b, err := keybackup.GetVersion(x.b, x.cmd.Actor, p.Version)
	if err != nil {
		return nil, err
	}
	if b == nil {
		last, err := keybackup.LastVersion(x.b, x.cmd.Actor)
		if err != nil || p.Version == 0 || p.Version > last {
			return errUnknownBackupVersion(), err
		}
		return &Result{}, nil
	}
	return &Result{}, x.emit(facts.TypeKeyBackupDeleted, &facts.KeyBackupDeleted{UserID: x.cmd.Actor, Version: p.Version})
}

// putRoomKeys stores the keys that beat the ones the backup holds. Only
// the current version takes keys: a client writing to an older one is
// told the current version (403 M_WRONG_ROOM_KEYS_VERSION), so it can
// check the new backup before trusting it.
func (x *applyCtx) putRoomKeys() (*Result, error) {
	var p PutRoomKeys
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	user := x.cmd.Actor
	cur, err := keybackup.Current(x.b, user)
	if err != nil || cur == nil {
		return errUnknownBackupVersion(), err
	}
	if p.Version != cur.Version {
		return &Result{Err: reject(KindWrongRoomKeysVersion, "Wrong backup version."), KeyBackup: &KeyBackupState{Version: cur.Version}}, nil
	}
	keys := slices.Clone(p.Keys)
	slices.SortFunc(keys, func(a, b facts.BackedUpRoomKey) int {
		return cmp.Or(cmp.Compare(a.RoomID, b.RoomID), cmp.Compare(a.SessionID, b.SessionID))
	})
	var kept []facts.BackedUpRoomKey
	for i, k := range keys {
		if i > 0 && k.RoomID == keys[i-1].RoomID && k.SessionID == keys[i-1].SessionID {
			return &Result{Err: reject(KindBadJSON, "session %s of room %s is given twice", k.SessionID, k.RoomID)}, nil
		}
		have, err := keybackup.GetKey(x.b, user, cur.Version, k.RoomID, k.SessionID)
		if err != nil {
			return nil, err
		}
		if have == nil || betterRoomKey(k, facts.BackedUpRoomKey{IsVerified: have.IsVerified, FirstMessageIndex: have.FirstMessageIndex, ForwardedCount: have.ForwardedCount}) {
			kept = append(kept, k)
		}
	}
	if len(kept) > 0 {
		if err := x.emit(facts.TypeRoomKeysBackedUp, &facts.RoomKeysBackedUp{UserID: user, Version: cur.Version, Keys: kept}); err != nil {
			return nil, err
		}
	}
	return x.keyBackupState(cur.Version)
}

// betterRoomKey reports whether a beats b by the spec's order: a verified
// key, then the lower first message index, then the lower forwarded
// count. A tie keeps the key held, so a retried upload changes nothing.
func betterRoomKey(a, b facts.BackedUpRoomKey) bool {
	if a.IsVerified != b.IsVerified {
		return a.IsVerified
	}
	if a.FirstMessageIndex != b.FirstMessageIndex {
		return a.FirstMessageIndex < b.FirstMessageIndex
	}
	return a.ForwardedCount < b.ForwardedCount
}

func (x *applyCtx) deleteRoomKeys() (*Result, error) {
	var p DeleteRoomKeys
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	if p.RoomID == "" && p.SessionID != "" {
		return &Result{Err: reject(KindBadJSON, "a session is deleted from a room")}, nil
	}
	user := x.cmd.Actor
	b, err := keybackup.GetVersion(x.b, user, p.Version)
	if err != nil || b == nil {
		return errUnknownBackupVersion(), err
	}
	has, err := keybackup.HasKeys(x.b, user, p.Version, p.RoomID, p.SessionID)
	if err != nil {
		return nil, err
	}
	if has {
		f := &facts.RoomKeysDeleted{UserID: user, Version: p.Version, RoomID: p.RoomID, SessionID: p.SessionID}
		if err := x.emit(facts.TypeRoomKeysDeleted, f); err != nil {
			return nil, err
		}
	}
	return x.keyBackupState(p.Version)
}

// keyBackupState reads a version's count and etag after this command's
// facts were folded.
func (x *applyCtx) keyBackupState(version uint64) (*Result, error) {
	b, err := keybackup.GetVersion(x.b, x.cmd.Actor, version)
	if err != nil || b == nil {
		return errUnknownBackupVersion(), err
	}
	return &Result{KeyBackup: &KeyBackupState{Version: version, Count: b.Count, Etag: b.Etag}}, nil
}
