package keybackup

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Backup is one backup version of a user.
type Backup struct {
	Version   uint64          `msgpack:"-"` // from the key
	Algorithm string          `msgpack:"a"`
	AuthData  json.RawMessage `msgpack:"d"`
	Count     int64           `msgpack:"n"`
	Etag      uint64          `msgpack:"e"`
}

// RoomKey is one session's key in a backup version.
type RoomKey struct {
	RoomID            string          `msgpack:"r"`
	SessionID         string          `msgpack:"s"`
	FirstMessageIndex int64           `msgpack:"i"`
	ForwardedCount    int64           `msgpack:"f"`
	IsVerified        bool            `msgpack:"y"`
	SessionData       json.RawMessage `msgpack:"d"`
}

// Projection folds key backup records.
type Projection struct{}

func (Projection) Name() string    { return "keybackup" }
func (Projection) Version() uint32 { return 1 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	var err error
	switch rec.Type {
	case facts.TypeKeyBackupCreated:
		err = applyCreated(w, rec.Body)
	case facts.TypeKeyBackupUpdated:
		err = applyUpdated(w, rec.Body)
	case facts.TypeKeyBackupDeleted:
		err = applyDeleted(w, rec.Body)
	case facts.TypeRoomKeysBackedUp:
		err = applyBackedUp(w, rec.Body)
	case facts.TypeRoomKeysDeleted:
		err = applyKeysDeleted(w, rec.Body)
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s record %d: %w", rec.Type, rec.Seq, err)
	}
	return nil
}

func applyCreated(w projections.Writer, body []byte) error {
	var f facts.KeyBackupCreated
	if err := facts.Decode(body, &f); err != nil {
		return err
	}
	if err := w.Set(lastKey(f.UserID), binary.BigEndian.AppendUint64(nil, f.Version), nil); err != nil {
		return fmt.Errorf("set last version: %w", err)
	}
	return projections.SetMsgpack(w, versionKey(f.UserID, f.Version), &Backup{Algorithm: f.Algorithm, AuthData: f.AuthData})
}

func applyUpdated(w projections.Writer, body []byte) error {
	var f facts.KeyBackupUpdated
	if err := facts.Decode(body, &f); err != nil {
		return err
	}
	b, err := mustVersion(w, f.UserID, f.Version)
	if err != nil {
		return err
	}
	b.AuthData = f.AuthData
	return projections.SetMsgpack(w, versionKey(f.UserID, f.Version), b)
}

func applyDeleted(w projections.Writer, body []byte) error {
	var f facts.KeyBackupDeleted
	if err := facts.Decode(body, &f); err != nil {
		return err
	}
	if err := w.Delete(versionKey(f.UserID, f.Version), nil); err != nil {
		return fmt.Errorf("delete version: %w", err)
	}
	p := keysPrefix(f.UserID, f.Version, "", "")
	if err := w.DeleteRange(p, p.End(), nil); err != nil {
		return fmt.Errorf("delete the version's keys: %w", err)
	}
	return nil
}

func applyBackedUp(w projections.Writer, body []byte) error {
	var f facts.RoomKeysBackedUp
	if err := facts.Decode(body, &f); err != nil {
		return err
	}
	b, err := mustVersion(w, f.UserID, f.Version)
	if err != nil {
		return err
	}
	for _, k := range f.Keys {
		key := keysPrefix(f.UserID, f.Version, k.RoomID, k.SessionID)
		if _, closer, err := w.Get(key); errors.Is(err, pebble.ErrNotFound) {
			b.Count++
		} else if err != nil {
			return fmt.Errorf("get backed up key: %w", err)
		} else {
			closer.Close()
		}
		rk := RoomKey{RoomID: k.RoomID, SessionID: k.SessionID, FirstMessageIndex: k.FirstMessageIndex,
			ForwardedCount: k.ForwardedCount, IsVerified: k.IsVerified, SessionData: k.SessionData}
		if err := projections.SetMsgpack(w, key, &rk); err != nil {
			return err
		}
	}
	b.Etag++
	return projections.SetMsgpack(w, versionKey(f.UserID, f.Version), b)
}

func applyKeysDeleted(w projections.Writer, body []byte) error {
	var f facts.RoomKeysDeleted
	if err := facts.Decode(body, &f); err != nil {
		return err
	}
	b, err := mustVersion(w, f.UserID, f.Version)
	if err != nil {
		return err
	}
	p := keysPrefix(f.UserID, f.Version, f.RoomID, f.SessionID)
	n, err := countRange(w, p, p.End())
	if err != nil {
		return err
	}
	if err := w.DeleteRange(p, p.End(), nil); err != nil {
		return fmt.Errorf("delete backed up keys: %w", err)
	}
	b.Count -= n
	b.Etag++
	return projections.SetMsgpack(w, versionKey(f.UserID, f.Version), b)
}

// mustVersion reads a version the state machine decided exists; its
// absence is a bug that would make replicas diverge.
func mustVersion(r pebble.Reader, user string, version uint64) (*Backup, error) {
	b, err := GetVersion(r, user, version)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("backup version %d of %s does not exist", version, user)
	}
	return b, nil
}

func countRange(r pebble.Reader, lower, upper []byte) (int64, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, fmt.Errorf("count backed up keys: %w", err)
	}
	defer it.Close()
	var n int64
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	return n, it.Error()
}
