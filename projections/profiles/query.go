package profiles

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections"
)

// Field is one profile field.
type Field struct {
	Key   string
	Value json.RawMessage
}

// Profile returns a user's current fields in key order (none for a user
// who never set one, or who is unknown).
func Profile(r pebble.Reader, userID string) ([]Field, error) {
	p := fieldsPrefix(userID)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("profile of %s: %w", userID, err)
	}
	defer it.Close()
	var out []Field
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(p):]
		out = append(out, Field{Key: string(k[:len(k)-1]), Value: bytes.Clone(it.Value())})
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("profile of %s: %w", userID, err)
	}
	return out, nil
}

// GetField returns the current value of one field, or nil when unset.
func GetField(r pebble.Reader, userID, key string) (json.RawMessage, error) {
	v, closer, err := r.Get(fieldKey(userID, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("profile field %s of %s: %w", key, userID, err)
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// StringField returns a field that should hold a string (displayname,
// avatar_url), or "" when it is unset or not a string.
func StringField(r pebble.Reader, userID, key string) (string, error) {
	raw, err := GetField(r, userID, key)
	if err != nil || raw == nil {
		return "", err
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", nil
	}
	return s, nil
}

// ProfileAt returns a user's fields as they were after the record at
// position seq, in key order, from the history.
func ProfileAt(r pebble.Reader, userID string, seq uint64) ([]Field, error) {
	p := historyPrefix(userID)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("profile history of %s: %w", userID, err)
	}
	defer it.Close()
	var out []Field
	// Entries sort by field, then position: the last one at or before seq
	// of each field is its value then.
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(p):]
		if len(k) < 9 {
			return nil, fmt.Errorf("profile history of %s: malformed key %x", userID, it.Key())
		}
		key, at := string(k[:len(k)-9]), projections.U64At(k)
		if at > seq {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Key == key {
			out = out[:n-1]
		}
		if len(it.Value()) > 0 {
			out = append(out, Field{Key: key, Value: bytes.Clone(it.Value())})
		} else {
			out = append(out, Field{Key: key}) // deleted: dropped below
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("profile history of %s: %w", userID, err)
	}
	kept := out[:0]
	for _, f := range out {
		if f.Value != nil {
			kept = append(kept, f)
		}
	}
	return kept, nil
}
