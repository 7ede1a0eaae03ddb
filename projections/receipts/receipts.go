// Package receipts is the projection of read receipts: each user's latest
// receipt per room, type and thread, and a per-room stream by position for
// incremental sync.
package receipts

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Prefix is the key space of this projection.
const Prefix byte = 0x81

const (
	tagReceipt byte = 'r' // r roomID type userID threadID -> Receipt
	tagStream  byte = 's' // s roomID seq -> Receipt
)

// Receipt is one user's receipt.
type Receipt struct {
	UserID   string `msgpack:"u"`
	Type     string `msgpack:"t"`
	EventID  string `msgpack:"e"`
	ThreadID string `msgpack:"th,omitempty"`
	TS       int64  `msgpack:"ts"`
	Seq      uint64 `msgpack:"s"`
}

func receiptPrefix(room string) projections.Key {
	return projections.NewKey(Prefix, tagReceipt).Str(room)
}

func receiptKey(room, typ, user, thread string) []byte {
	return receiptPrefix(room).Str(typ).Str(user).Str(thread)
}

func streamPrefix(room string) projections.Key {
	return projections.NewKey(Prefix, tagStream).Str(room)
}

// Projection folds receipt records.
type Projection struct{}

func (Projection) Name() string    { return "receipts" }
func (Projection) Version() uint32 { return 1 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	if rec.Type != facts.TypeReceiptSet {
		return nil
	}
	var f facts.ReceiptSet
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	key := receiptKey(f.RoomID, f.Type, f.UserID, f.ThreadID)
	var old Receipt
	found, err := projections.GetMsgpack(w, key, &old)
	if err != nil {
		return err
	}
	if found {
		if err := w.Delete(streamPrefix(f.RoomID).U64(old.Seq), nil); err != nil {
			return fmt.Errorf("drop old receipt stream entry: %w", err)
		}
	}
	rc := &Receipt{UserID: f.UserID, Type: f.Type, EventID: f.EventID, ThreadID: f.ThreadID, TS: rec.Time, Seq: rec.Seq}
	if err := projections.SetMsgpack(w, key, rc); err != nil {
		return err
	}
	return projections.SetMsgpack(w, streamPrefix(f.RoomID).U64(rec.Seq), rc)
}

// Get returns a user's receipt, or nil.
func Get(r pebble.Reader, room, typ, user, thread string) (*Receipt, error) {
	return projections.Lookup[Receipt](r, receiptKey(room, typ, user, thread))
}

// Changed returns the room's receipts set in (after, upTo]; after 0 returns
// every current receipt.
func Changed(r pebble.Reader, room string, after, upTo uint64) ([]Receipt, error) {
	p := streamPrefix(room)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p.U64(after + 1), UpperBound: p.U64(upTo + 1)})
	if err != nil {
		return nil, fmt.Errorf("receipts of %s: %w", room, err)
	}
	defer it.Close()
	var out []Receipt
	for it.First(); it.Valid(); it.Next() {
		rc, err := projections.Lookup[Receipt](r, it.Key())
		if err != nil {
			return nil, err
		}
		out = append(out, *rc)
	}
	return out, it.Error()
}
