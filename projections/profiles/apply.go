package profiles

import (
	"fmt"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Projection folds profile records.
type Projection struct{}

func (Projection) Name() string    { return "profiles" }
func (Projection) Version() uint32 { return 1 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	switch rec.Type {
	case facts.TypeProfileFieldSet:
		var f facts.ProfileFieldSet
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		if len(f.Value) == 0 {
			// An empty value would read as a deletion in the history.
			return fmt.Errorf("%s record %d: field %s of %s has no value", rec.Type, rec.Seq, f.Key, f.UserID)
		}
		if err := w.Set(fieldKey(f.UserID, f.Key), f.Value, nil); err != nil {
			return fmt.Errorf("set profile field %s of %s: %w", f.Key, f.UserID, err)
		}
		return record(w, f.UserID, f.Key, rec.Seq, f.Value)
	case facts.TypeProfileFieldDeleted:
		var f facts.ProfileFieldDeleted
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		if err := w.Delete(fieldKey(f.UserID, f.Key), nil); err != nil {
			return fmt.Errorf("delete profile field %s of %s: %w", f.Key, f.UserID, err)
		}
		return record(w, f.UserID, f.Key, rec.Seq, nil)
	}
	return nil
}

// record adds a history entry: the field's value from position seq on
// (nil: absent from then).
func record(w projections.Writer, userID, key string, seq uint64, value []byte) error {
	if err := w.Set(historyKey(userID, key, seq), value, nil); err != nil {
		return fmt.Errorf("record profile field %s of %s at %d: %w", key, userID, seq, err)
	}
	return nil
}
