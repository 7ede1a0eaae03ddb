// Package accountdata is the projection of users' account data, global and
// per room (tags and read markers are room account data), with a per-user
// stream by position so an incremental sync reads only what changed.
package accountdata

import (
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Prefix is the key space of this projection.
const Prefix byte = 0x80

const (
	tagData   byte = 'd' // d userID roomID type -> Entry
	tagStream byte = 's' // s userID seq -> Ref
)

func dataKey(user, room, typ string) []byte {
	return projections.NewKey(Prefix, tagData).Str(user).Str(room).Str(typ)
}

func streamPrefix(user string) projections.Key {
	return projections.NewKey(Prefix, tagStream).Str(user)
}

// Entry is one account data value.
type Entry struct {
	Content json.RawMessage `msgpack:"c"`
	Seq     uint64          `msgpack:"s"`
}

// Ref names what changed at a stream position.
type Ref struct {
	RoomID string `msgpack:"r"`
	Type   string `msgpack:"t"`
}

// Projection folds account data records.
type Projection struct{}

func (Projection) Name() string    { return "accountdata" }
func (Projection) Version() uint32 { return 1 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	if rec.Type != facts.TypeAccountDataSet {
		return nil
	}
	var f facts.AccountDataSet
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	var old Entry
	found, err := projections.GetMsgpack(w, dataKey(f.UserID, f.RoomID, f.Type), &old)
	if err != nil {
		return err
	}
	if found {
		// Keep one stream entry per key: the latest.
		if err := w.Delete(streamPrefix(f.UserID).U64(old.Seq), nil); err != nil {
			return fmt.Errorf("drop old stream entry: %w", err)
		}
	}
	if err := projections.SetMsgpack(w, dataKey(f.UserID, f.RoomID, f.Type), &Entry{Content: f.Content, Seq: rec.Seq}); err != nil {
		return err
	}
	return projections.SetMsgpack(w, streamPrefix(f.UserID).U64(rec.Seq), &Ref{RoomID: f.RoomID, Type: f.Type})
}

// Get returns one entry's content, or nil.
func Get(r pebble.Reader, user, room, typ string) (json.RawMessage, error) {
	e, err := projections.Lookup[Entry](r, dataKey(user, room, typ))
	if err != nil || e == nil {
		return nil, err
	}
	return e.Content, nil
}

// Item is an entry with its key, for sync.
type Item struct {
	RoomID  string
	Type    string
	Content json.RawMessage
}

// Changed returns the user's entries changed in (after, upTo], in position
// order; after 0 returns everything.
func Changed(r pebble.Reader, user string, after, upTo uint64) ([]Item, error) {
	p := streamPrefix(user)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p.U64(after + 1), UpperBound: p.U64(upTo + 1)})
	if err != nil {
		return nil, fmt.Errorf("account data of %s: %w", user, err)
	}
	defer it.Close()
	var out []Item
	for it.First(); it.Valid(); it.Next() {
		ref, err := projections.Lookup[Ref](r, it.Key())
		if err != nil {
			return nil, err
		}
		content, err := Get(r, user, ref.RoomID, ref.Type)
		if err != nil {
			return nil, err
		}
		out = append(out, Item{RoomID: ref.RoomID, Type: ref.Type, Content: content})
	}
	return out, it.Error()
}
