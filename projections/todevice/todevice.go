// Package todevice is the projection of to-device messages waiting for
// each device. A message stays until the device acknowledges it by syncing
// with a token past it (a drop record), so it is delivered exactly once
// even across nodes and retries.
package todevice

import (
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Prefix is the key space of this projection.
const Prefix byte = 0x84

const (
	tagInbox byte = 'm' // m userID deviceID seq -> Message
	tagTxn   byte = 'x' // x sender senderDevice txnID -> nothing
)

// Message is one queued to-device message.
type Message struct {
	Sender  string          `msgpack:"s" json:"sender"`
	Type    string          `msgpack:"t" json:"type"`
	Content json.RawMessage `msgpack:"c" json:"content"`
	Seq     uint64          `msgpack:"q" json:"-"`
}

func inboxPrefix(user, device string) projections.Key {
	return projections.NewKey(Prefix, tagInbox).Str(user).Str(device)
}

func txnKey(sender, device, txn string) []byte {
	return projections.NewKey(Prefix, tagTxn).Str(sender).Str(device).Str(txn)
}

// Projection folds to-device records.
type Projection struct{}

func (Projection) Name() string    { return "todevice" }
func (Projection) Version() uint32 { return 1 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	switch rec.Type {
	case facts.TypeToDeviceSent:
		var f facts.ToDeviceSent
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		if f.FirstOfRequest {
			if err := w.Set(txnKey(f.Sender, f.SenderDevice, f.TxnID), nil, nil); err != nil {
				return fmt.Errorf("record to-device txn: %w", err)
			}
		}
		if f.DeviceID == "" {
			return nil // a request that reached no device still uses its txn
		}
		return projections.SetMsgpack(w, inboxPrefix(f.UserID, f.DeviceID).U64(rec.Seq), &Message{Sender: f.Sender, Type: f.Type, Content: f.Content, Seq: rec.Seq})
	case facts.TypeToDeviceDropped:
		var f facts.ToDeviceDropped
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		p := inboxPrefix(f.UserID, f.DeviceID)
		if err := w.DeleteRange(p, p.U64(f.UpTo+1), nil); err != nil {
			return fmt.Errorf("drop acknowledged to-device messages: %w", err)
		}
	}
	return nil
}

// TxnSeen reports whether a sender's to-device transaction was applied.
func TxnSeen(r pebble.Reader, sender, device, txn string) (bool, error) {
	_, closer, err := r.Get(txnKey(sender, device, txn))
	if err == pebble.ErrNotFound {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("to-device txn: %w", err)
	}
	closer.Close()
	return true, nil
}

// Pending returns up to limit messages for a device with after < seq <=
// upTo.
func Pending(r pebble.Reader, user, device string, after, upTo uint64, limit int) ([]Message, error) {
	p := inboxPrefix(user, device)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p.U64(after + 1), UpperBound: p.U64(upTo + 1)})
	if err != nil {
		return nil, fmt.Errorf("to-device inbox: %w", err)
	}
	defer it.Close()
	var out []Message
	for it.First(); it.Valid() && len(out) < limit; it.Next() {
		m, err := projections.Lookup[Message](r, it.Key())
		if err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	return out, it.Error()
}

// HasUpTo reports whether the device has messages at or before seq.
func HasUpTo(r pebble.Reader, user, device string, seq uint64) (bool, error) {
	p := inboxPrefix(user, device)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.U64(seq + 1)})
	if err != nil {
		return false, fmt.Errorf("to-device inbox: %w", err)
	}
	defer it.Close()
	return it.First(), it.Error()
}
