// Package presence is the projection of users' presence, with a stream by
// position for incremental sync. Records are written only when presence
// changes, so idle syncs append nothing.
package presence

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Prefix is the key space of this projection.
const Prefix byte = 0x83

const (
	tagPresence byte = 'p' // p userID -> State
	tagStream   byte = 's' // s seq -> userID
)

// State is one user's presence.
type State struct {
	Presence   string `msgpack:"p"`
	StatusMsg  string `msgpack:"m,omitempty"`
	LastActive int64  `msgpack:"l"`
	Seq        uint64 `msgpack:"s"`
}

func presenceKey(user string) []byte { return projections.NewKey(Prefix, tagPresence).Str(user) }

func streamKey(seq uint64) []byte { return projections.NewKey(Prefix, tagStream).U64(seq) }

// Projection folds presence records.
type Projection struct{}

func (Projection) Name() string    { return "presence" }
func (Projection) Version() uint32 { return 1 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	if rec.Type != facts.TypePresenceSet {
		return nil
	}
	var f facts.PresenceSet
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	var old State
	found, err := projections.GetMsgpack(w, presenceKey(f.UserID), &old)
	if err != nil {
		return err
	}
	if found {
		if err := w.Delete(streamKey(old.Seq), nil); err != nil {
			return fmt.Errorf("drop presence stream entry: %w", err)
		}
	}
	if err := projections.SetMsgpack(w, presenceKey(f.UserID), &State{Presence: f.Presence, StatusMsg: f.StatusMsg, LastActive: f.LastActive, Seq: rec.Seq}); err != nil {
		return err
	}
	return w.Set(streamKey(rec.Seq), []byte(f.UserID), nil)
}

// Get returns a user's presence, or nil if never set.
func Get(r pebble.Reader, user string) (*State, error) {
	return projections.Lookup[State](r, presenceKey(user))
}

// ChangedUsers lists users whose presence changed in (after, upTo].
func ChangedUsers(r pebble.Reader, after, upTo uint64) ([]string, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: streamKey(after + 1), UpperBound: streamKey(upTo + 1)})
	if err != nil {
		return nil, fmt.Errorf("presence changes: %w", err)
	}
	defer it.Close()
	var out []string
	for it.First(); it.Valid(); it.Next() {
		out = append(out, string(it.Value()))
	}
	return out, it.Error()
}
