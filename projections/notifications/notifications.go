package notifications

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

// Prefix is the key space of this projection.
const Prefix byte = 0x92

// The key space (see doc.go for what each holds and why).
const (
	tagMember    byte = 'm' // m roomID -> members (joined members, in user ID order)
	tagJoined    byte = 'j' // j userID roomID -> joined (join position, unthreaded read position)
	tagThread    byte = 't' // t userID roomID thread -> read position in that thread
	tagHead      byte = 'h' // h roomID thread -> Counts: the room's shared totals
	tagCum       byte = 'c' // c roomID thread seq -> Counts: the shared totals up to seq
	tagList      byte = 'n' // n roomID seq -> listed: an event that notifies by the shared result
	tagException byte = 'x' // x userID roomID thread seq -> exception: a member's own result
	tagExtra     byte = 'y' // y userID roomID seq -> listed: notifies the member alone
)

func joinedPrefix(user string) projections.Key {
	return projections.NewKey(Prefix, tagJoined).Str(user)
}

func threadPrefix(user, room string) projections.Key {
	return projections.NewKey(Prefix, tagThread).Str(user).Str(room)
}

func headPrefix(room string) projections.Key { return projections.NewKey(Prefix, tagHead).Str(room) }

func cumPrefix(room, thread string) projections.Key {
	return projections.NewKey(Prefix, tagCum).Str(room).Str(thread)
}

func listPrefix(room string) projections.Key { return projections.NewKey(Prefix, tagList).Str(room) }

func exceptionPrefix(user, room string) projections.Key {
	return projections.NewKey(Prefix, tagException).Str(user).Str(room)
}

func extraPrefix(user, room string) projections.Key {
	return projections.NewKey(Prefix, tagExtra).Str(user).Str(room)
}

// Counts are unread notifications and highlights (also the shared running
// totals of a room's thread), stored as two big-endian uint64s.
type Counts struct {
	Notify    uint64
	Highlight uint64
}

func (c Counts) encode() []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, 16), c.Notify), c.Highlight)
}

func decodeCounts(v []byte) (Counts, error) {
	if len(v) != 16 {
		return Counts{}, fmt.Errorf("counts entry has %d bytes", len(v))
	}
	return Counts{Notify: binary.BigEndian.Uint64(v), Highlight: binary.BigEndian.Uint64(v[8:])}, nil
}

// outcome is what a push rule match means for counting: bit 0 notify,
// bit 1 highlight.
type outcome byte

const (
	outNotify    outcome = 1
	outHighlight outcome = 2
)

func outcomeOf(notify, highlight bool) outcome {
	var o outcome
	if notify {
		o |= outNotify
	}
	if highlight {
		o |= outHighlight
	}
	return o
}

func (o outcome) counts() Counts {
	return Counts{Notify: uint64(o & outNotify), Highlight: uint64(o&outHighlight) >> 1}
}

// joined is a member's 'j' entry: the position of their join (nothing at
// or before it counts for them) and of their furthest unthreaded read
// receipt (m.read or m.read.private), which reads every thread.
type joined struct {
	Join, ReadAll uint64
}

func (j joined) encode() []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, 16), j.Join), j.ReadAll)
}

func decodeJoined(v []byte) (joined, error) {
	if len(v) != 16 {
		return joined{}, fmt.Errorf("joined entry has %d bytes", len(v))
	}
	return joined{Join: binary.BigEndian.Uint64(v), ReadAll: binary.BigEndian.Uint64(v[8:])}, nil
}

// floor is the position up to which everything in a thread is read (or
// before the member joined), given the thread's own read position.
func (j joined) floor(threadRead uint64) uint64 { return max(j.Join, j.ReadAll, threadRead) }

// getJoined reads user's 'j' entry in room (false: not joined).
func getJoined(r pebble.Reader, user, room string) (joined, bool, error) {
	v, closer, err := r.Get(joinedPrefix(user).Str(room))
	if errors.Is(err, pebble.ErrNotFound) {
		return joined{}, false, nil
	}
	if err != nil {
		return joined{}, false, fmt.Errorf("membership of %s in %s: %w", user, room, err)
	}
	defer closer.Close()
	j, err := decodeJoined(v)
	return j, err == nil, err
}

// getU64 reads an 8-byte position value (false when absent).
func getU64(r pebble.Reader, key []byte) (uint64, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read position: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("read position has %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

// Notif is one of a user's notifications (GET /notifications).
type Notif struct {
	RoomID string
	// Seq is the event's position.
	Seq     uint64
	Thread  string
	Actions json.RawMessage
	// Highlight: the actions set the highlight tweak.
	Highlight bool
	// Read: the user has read it (a read receipt or their own event at or
	// after it, in its thread).
	Read bool
}

// Projection folds room events, receipts and push rule changes into
// notification counts.
type Projection struct{}

func (Projection) Name() string    { return "notifications" }
func (Projection) Version() uint32 { return 6 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	switch rec.Type {
	case facts.TypeRoomEvent:
		return applyEvent(w, rec)
	case facts.TypeReceiptSet:
		return applyReceipt(w, rec)
	case facts.TypePushRuleSet, facts.TypePushRuleDeleted, facts.TypePushRuleEnabled, facts.TypePushRuleActions:
		return applyPushRules(w, rec)
	}
	return nil
}
