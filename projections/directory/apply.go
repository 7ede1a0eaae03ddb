package directory

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
	"chronicle/projections/rooms"
)

// Alias is one local alias mapping.
type Alias struct {
	RoomID  string `msgpack:"r"`
	Creator string `msgpack:"u"`
}

// Projection folds alias, visibility and membership records.
type Projection struct{}

func (Projection) Name() string    { return "directory" }
func (Projection) Version() uint32 { return 1 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	switch rec.Type {
	case facts.TypeAliasCreated:
		var f facts.AliasCreated
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		if err := projections.SetMsgpack(w, aliasKey(f.Alias), &Alias{RoomID: f.RoomID, Creator: f.Creator}); err != nil {
			return err
		}
		if err := w.Set(roomAliasKey(f.RoomID, f.Alias), nil, nil); err != nil {
			return fmt.Errorf("index alias %s: %w", f.Alias, err)
		}
	case facts.TypeAliasDeleted:
		var f facts.AliasDeleted
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		if err := w.Delete(aliasKey(f.Alias), nil); err != nil {
			return fmt.Errorf("delete alias %s: %w", f.Alias, err)
		}
		if err := w.Delete(roomAliasKey(f.RoomID, f.Alias), nil); err != nil {
			return fmt.Errorf("unindex alias %s: %w", f.Alias, err)
		}
	case facts.TypeRoomVisibilitySet:
		var f facts.RoomVisibilitySet
		if err := facts.Decode(rec.Body, &f); err != nil {
			return err
		}
		var err error
		if f.Visibility == "public" {
			err = w.Set(publishedKey(f.RoomID), nil, nil)
		} else {
			err = w.Delete(publishedKey(f.RoomID), nil)
		}
		if err != nil {
			return fmt.Errorf("set visibility of %s: %w", f.RoomID, err)
		}
	case facts.TypeRoomEvent:
		// The rooms projection, folded before this one, has decoded the
		// event already (facts.RoomEventOf): reading its type is free,
		// cheaper than searching the body for the member type.
		return applyMember(w, rec)
	}
	return nil
}

// applyMember moves the room's joined count when a member event changes
// whether its target is joined.
func applyMember(w projections.Writer, rec *rlog.Record) error {
	f, p, err := facts.RoomEventOf(rec)
	if err != nil {
		return err
	}
	if p.Type != "m.room.member" || p.StateKey == nil {
		return nil
	}
	var content struct {
		Membership string `json:"membership"`
	}
	// The auth rules accepted the event, so its membership is a string.
	_ = json.Unmarshal(p.Content, &content)
	before := ""
	if rec.Seq > 1 {
		var err error
		if before, err = rooms.MembershipAt(w, f.RoomID, *p.StateKey, rec.Seq-1); err != nil {
			return err
		}
	}
	was, is := before == "join", content.Membership == "join"
	if was == is {
		return nil
	}
	n, err := JoinedCount(w, f.RoomID)
	if err != nil {
		return err
	}
	if is {
		n++
	} else if n > 0 {
		n--
	}
	if err := w.Set(joinedKey(f.RoomID), binary.BigEndian.AppendUint64(nil, n), nil); err != nil {
		return fmt.Errorf("joined count of %s: %w", f.RoomID, err)
	}
	return nil
}

// JoinedCount is the number of users whose membership in the room is join.
func JoinedCount(r pebble.Reader, roomID string) (uint64, error) {
	v, closer, err := r.Get(joinedKey(roomID))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("joined count of %s: %w", roomID, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("joined count of %s has %d bytes", roomID, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
