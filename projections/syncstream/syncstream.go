// Package syncstream is the projection /sync reads to learn what changed
// in (since, head] without visiting every room the user is in: one entry
// per log position whose record can change some user's sync response,
// naming what it changed: a room (a room event, a typing change, a
// receipt; for a membership event also the member), or one user's account
// data, to-device inbox or presence, or end-to-end encryption keys
// (keys.go).
//
// Entries are keyed by position alone, not by reader: a change costs one
// small append however many members its room has, and a reader scans
// (since, head] and then looks up its own membership in the few rooms it
// finds. Membership changes need no index of their own: a membership is a
// room event, so a room whose membership for the user changed is in the
// stream at that position too.
//
// Two readers use it (api/sync_stream.go): an incremental sync visits only
// the rooms in ChangedRooms, and a parked long-poll woken by a new head
// reads Changes for the new positions to decide whether anything concerns
// it before building a response.
//
// Record types that never show in any sync response (registrations,
// sessions, filters, cluster membership, aliases, directory visibility,
// forgotten rooms, reports, to-device acknowledgements, checkpoints) get
// no entry.
// Every other type gets one, and a type this package does not know gets
// KindOther, which readers must treat as "may concern anyone": a new
// record type can make a long-poll wake too often, never too rarely.
//
// Keys only grow with the log (one short entry per change, under a
// monotonically increasing key, so the LSM appends). A reader whose token
// is so old that the scan would cost more than visiting its rooms falls
// back to that.
package syncstream

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Prefix is the key space of this projection.
const Prefix byte = 0x90

const (
	tagChange byte = 'c' // c seq -> kind byte + payload (see Change)
)

func changeKey(seq uint64) []byte { return projections.NewKey(Prefix, tagChange).U64(seq) }

// Kind says what an entry changed.
type Kind byte

const (
	// KindRoom: a room event, typing change or receipt in Change.Room.
	KindRoom Kind = 'r'
	// KindMember: a membership event in Change.Room for Change.User (a
	// room change too), so that a reader who found a room of no concern
	// learns when its own membership there changes.
	KindMember Kind = 'm'
	// KindAccountData: Change.User's account data (global or per room).
	KindAccountData Kind = 'a'
	// KindToDevice: a message for Change.User's device Change.Device.
	KindToDevice Kind = 't'
	// KindPresence: Change.User's presence.
	KindPresence Kind = 'p'
	// KindOther: a record type this package does not know; it may concern
	// anyone.
	KindOther Kind = '?'
)

// Change is one stream entry.
type Change struct {
	Seq    uint64
	Kind   Kind
	Room   string // KindRoom, KindMember
	User   string // KindMember (the member), KindAccountData, KindToDevice, KindPresence, KindDeviceList, KindDeviceKeys
	Device string // KindToDevice, KindDeviceKeys
	// OnlyFor is, for KindDeviceList, the one user the change concerns
	// ("" for its user and everyone sharing a room with them); keys.go.
	OnlyFor string
}

// invisible are the record types no sync response shows.
var invisible = map[string]bool{
	facts.TypeAccountRegistered: true,
	facts.TypeSessionStarted:    true,
	facts.TypeSessionEnded:      true,
	facts.TypeFilterCreated:     true,
	facts.TypeNodeAnnounced:     true,
	facts.TypeNodeRemoved:       true,
	facts.TypeAliasCreated:      true,
	facts.TypeAliasDeleted:      true,
	facts.TypeRoomVisibilitySet: true,
	facts.TypeRoomForgotten:     true,
	facts.TypeReportFiled:       true,
	// Dropping acknowledged to-device messages removes only what a sync
	// already delivered.
	facts.TypeToDeviceDropped: true,
	facts.TypeCheckpoint:      true,
}

// refs decodes the few fields the folded facts name things by. The tags
// are the facts' own: RoomEvent, TypingSet and ReceiptSet carry the room
// under "r"; AccountDataSet, PresenceSet and ToDeviceSent the user under
// "u", ToDeviceSent the device under "d". Decoding only these skips the
// rest of a body (a room event's PDU). The push rule facts name their user
// under "u" too.
type refs struct {
	RoomID string `msgpack:"r"`
	UserID string `msgpack:"u"`
	Device string `msgpack:"d"`
}

// Projection folds every record a sync response can show.
type Projection struct{}

func (Projection) Name() string    { return "syncstream" }
func (Projection) Version() uint32 { return 2 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	if invisible[rec.Type] {
		return nil
	}
	if val, ok, err := keysEntry(rec); ok || err != nil { // keys.go
		if err != nil {
			return fmt.Errorf("record %d: %w", rec.Seq, err)
		}
		return w.Set(changeKey(rec.Seq), val, nil)
	}
	var kind Kind
	switch rec.Type {
	case facts.TypeRoomEvent, facts.TypeTypingSet, facts.TypeReceiptSet:
		kind = KindRoom
	case facts.TypeAccountDataSet,
		// Push rules are the user's m.push_rules account data.
		facts.TypePushRuleSet, facts.TypePushRuleDeleted, facts.TypePushRuleEnabled, facts.TypePushRuleActions:
		kind = KindAccountData
	case facts.TypeToDeviceSent:
		kind = KindToDevice
	case facts.TypePresenceSet:
		kind = KindPresence
	default:
		return w.Set(changeKey(rec.Seq), []byte{byte(KindOther)}, nil)
	}
	var f refs
	var target string
	if rec.Type == facts.TypeRoomEvent {
		// Decoded once for every projection (rooms has done it already).
		ev, pdu, err := facts.RoomEventOf(rec)
		if err != nil {
			return fmt.Errorf("record %d: %w", rec.Seq, err)
		}
		if pdu.Type == "m.room.member" && pdu.StateKey != nil {
			target = *pdu.StateKey
		}
		f.RoomID = ev.RoomID
	} else if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	val := []byte{byte(kind)}
	switch kind {
	case KindRoom:
		if f.RoomID == "" {
			return fmt.Errorf("%s record %d names no room", rec.Type, rec.Seq)
		}
		if target != "" {
			val[0] = byte(KindMember)
			val = append(append(append(val, f.RoomID...), 0), target...)
			break
		}
		val = append(val, f.RoomID...)
	case KindToDevice:
		if f.UserID == "" {
			return nil // the marker that a transaction was seen: no message
		}
		val = append(append(append(val, f.UserID...), 0), f.Device...)
	default:
		val = append(val, f.UserID...)
	}
	if err := w.Set(changeKey(rec.Seq), val, nil); err != nil {
		return fmt.Errorf("sync stream entry %d: %w", rec.Seq, err)
	}
	return nil
}

func decodeChange(key, val []byte) Change {
	c := Change{Seq: projections.U64At(key)}
	if len(val) == 0 {
		return Change{Seq: c.Seq, Kind: KindOther}
	}
	c.Kind = Kind(val[0])
	rest := val[1:]
	switch c.Kind {
	case KindRoom:
		c.Room = string(rest)
	case KindMember:
		room, user, _ := bytes.Cut(rest, []byte{0})
		c.Room, c.User = string(room), string(user)
	case KindToDevice:
		user, dev, _ := bytes.Cut(rest, []byte{0})
		c.User, c.Device = string(user), string(dev)
	case KindAccountData, KindPresence:
		c.User = string(rest)
	case KindDeviceList, KindDeviceKeys:
		decodeKeysChange(&c, rest) // keys.go
	default:
		c.Kind = KindOther
	}
	return c
}

// scan visits the entries in (after, upTo], at most maxEntries of them (0:
// no bound); complete is false when it stopped early.
func scan(r pebble.Reader, after, upTo uint64, maxEntries int, fn func(key, val []byte)) (complete bool, err error) {
	if upTo <= after {
		return true, nil
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: changeKey(after + 1), UpperBound: changeKey(upTo + 1)})
	if err != nil {
		return false, fmt.Errorf("sync stream: %w", err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if maxEntries > 0 && n == maxEntries {
			return false, it.Error()
		}
		n++
		fn(it.Key(), it.Value())
	}
	return true, it.Error()
}

// ChangedRooms returns the distinct rooms changed in (after, upTo], in the
// order of their first change.
func ChangedRooms(r pebble.Reader, after, upTo uint64) ([]string, error) {
	out, _, err := ChangedRoomsBounded(r, after, upTo, 0)
	return out, err
}

// ChangedRoomsBounded is ChangedRooms that stops after reading maxEntries
// stream entries of any kind (0: no bound); complete is false when it
// stopped early, so a caller can choose a cheaper way to cover a very old
// token.
func ChangedRoomsBounded(r pebble.Reader, after, upTo uint64, maxEntries int) (rooms []string, complete bool, err error) {
	seen := map[string]struct{}{}
	complete, err = scan(r, after, upTo, maxEntries, func(_, v []byte) {
		if len(v) == 0 || (Kind(v[0]) != KindRoom && Kind(v[0]) != KindMember) {
			return
		}
		name := v[1:]
		if Kind(v[0]) == KindMember {
			name, _, _ = bytes.Cut(name, []byte{0})
		}
		if _, ok := seen[string(name)]; ok { // no allocation for the lookup
			return
		}
		room := string(name)
		seen[room] = struct{}{}
		rooms = append(rooms, room)
	})
	return rooms, complete, err
}

// Changes returns the entries in (after, upTo] in order, at most
// maxEntries of them (0: no bound); complete is false when there were
// more.
func Changes(r pebble.Reader, after, upTo uint64, maxEntries int) (out []Change, complete bool, err error) {
	complete, err = scan(r, after, upTo, maxEntries, func(k, v []byte) {
		out = append(out, decodeChange(k, v))
	})
	return out, complete, err
}
