package rooms

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Forgotten rooms (POST /rooms/{roomId}/forget) live in this projection,
// next to the memberships they qualify, under their own key tag: one small
// entry per (user, room) holding the position of the membership event the
// user forgot the room at. A room is forgotten while that is still the
// user's current membership, so a later invite or join makes it remembered
// again without a record or a delete.

func forgottenKey(userID, roomID string) []byte {
	return projections.NewKey(Prefix, tagForgotten).Str(userID).Str(roomID)
}

// applyForgotten folds a room.forgotten record.
func applyForgotten(w projections.Writer, rec *rlog.Record) error {
	var f facts.RoomForgotten
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	if err := w.Set(forgottenKey(f.UserID, f.RoomID), binary.BigEndian.AppendUint64(nil, f.MembershipSeq), nil); err != nil {
		return fmt.Errorf("record forgotten room %s: %w", f.RoomID, err)
	}
	return nil
}

// IsForgotten reports whether the user forgot the room at the membership
// event at membershipSeq (their current one, for current reads).
func IsForgotten(r pebble.Reader, userID, roomID string, membershipSeq uint64) (bool, error) {
	v, closer, err := r.Get(forgottenKey(userID, roomID))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("forgotten %s: %w", roomID, err)
	}
	defer closer.Close()
	return len(v) == 8 && binary.BigEndian.Uint64(v) == membershipSeq, nil
}
