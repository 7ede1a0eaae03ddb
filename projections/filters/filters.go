package filters

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Prefix is the key space of this projection.
const Prefix byte = 0x30

const (
	tagFilter byte = 'f' // f userID filterID -> filter JSON
	tagNext   byte = 'n' // n userID -> next filter ID (decimal string)
)

func filterKey(userID, filterID string) []byte {
	return projections.NewKey(Prefix, tagFilter).Str(userID).Str(filterID)
}

func nextKey(userID string) []byte { return projections.NewKey(Prefix, tagNext).Str(userID) }

// Projection folds filter records.
type Projection struct{}

func (Projection) Name() string    { return "filters" }
func (Projection) Version() uint32 { return 1 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	if rec.Type != facts.TypeFilterCreated {
		return nil
	}
	var f facts.FilterCreated
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	if err := w.Set(filterKey(f.UserID, f.FilterID), f.Filter, nil); err != nil {
		return fmt.Errorf("store filter %s of %s: %w", f.FilterID, f.UserID, err)
	}
	n, err := strconv.ParseUint(f.FilterID, 10, 64)
	if err != nil {
		return fmt.Errorf("filter ID %q: %w", f.FilterID, err)
	}
	if err := w.Set(nextKey(f.UserID), strconv.AppendUint(nil, n+1, 10), nil); err != nil {
		return fmt.Errorf("advance filter counter of %s: %w", f.UserID, err)
	}
	return nil
}

// NextID is the ID the user's next filter gets.
func NextID(r pebble.Reader, userID string) (string, error) {
	v, err := get(r, nextKey(userID))
	if err != nil || v == nil {
		return "0", err
	}
	return string(v), nil
}

// Get returns a user's filter JSON, or nil.
func Get(r pebble.Reader, userID, filterID string) ([]byte, error) {
	return get(r, filterKey(userID, filterID))
}

func get(r pebble.Reader, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %x: %w", key, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}
