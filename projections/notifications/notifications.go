package notifications

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
	"chronicle/projections/pushrules"
	"chronicle/projections/relations"
	"chronicle/projections/rooms"
)

// Prefix is the key space of this projection.
const Prefix byte = 0x92

const (
	tagUnread byte = 'u' // u userID roomID thread seq -> Unread (1 byte)
	tagCounts byte = 'c' // c userID roomID thread -> checkpoint (Counts, asOf: 24 bytes)
	tagWindow byte = 'w' // w roomID -> the checkpoint window of the room's latest event
	tagList   byte = 'l' // l userID seq -> Notif (recent notifications)
	tagMember byte = 'm' // m roomID userID -> display name (joined members)
	tagRead   byte = 'r' // r userID roomID thread -> position: no unread entries at or before it
)

// Keep is how many of a user's latest notifications the list keeps: when
// the user reads (on some of their receipts, see applyReceipt), older ones
// are trimmed. Until then the list grows like the unread entries do, and
// for the same reason: nothing was read.
const Keep = 500

func unreadPrefix(user, room string) projections.Key {
	return projections.NewKey(Prefix, tagUnread).Str(user).Str(room)
}

func countsPrefix(user, room string) projections.Key {
	return projections.NewKey(Prefix, tagCounts).Str(user).Str(room)
}

func windowKey(room string) projections.Key {
	return projections.NewKey(Prefix, tagWindow).Str(room)
}

func listPrefix(user string) projections.Key { return projections.NewKey(Prefix, tagList).Str(user) }

func readPrefix(user, room string) projections.Key {
	return projections.NewKey(Prefix, tagRead).Str(user).Str(room)
}

func memberPrefix(room string) projections.Key {
	return projections.NewKey(Prefix, tagMember).Str(room)
}

// Unread is one unread notifying event, stored as one byte (bit 0
// notify, bit 1 highlight): these are written for every notified member
// of every event.
type Unread struct {
	Notify    bool
	Highlight bool
}

func (u Unread) encode() []byte {
	var b byte
	if u.Notify {
		b |= 1
	}
	if u.Highlight {
		b |= 2
	}
	return unreadValues[b]
}

// unreadValues are the four encodings, shared (writers copy values and
// never modify them).
var unreadValues = [4][]byte{{0}, {1}, {2}, {3}}

func decodeUnread(v []byte) Unread {
	if len(v) != 1 {
		return Unread{}
	}
	return Unread{Notify: v[0]&1 != 0, Highlight: v[0]&2 != 0}
}

// Counts are a (user, room, thread)'s unread notifications and
// highlights, stored as two big-endian uint64s.
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

// checkpoint is what a (user, room, thread)'s unread entries at or before
// asOf add up to; the counts are that plus the entries after asOf. Folding
// an event only writes unread entries: counters are brought up to date
// (asOf moved to the event) for every member on the first event of the
// room in each window of checkpointEvery positions, so a reader sums at
// most about two windows' worth of entries. A zero checkpoint is not
// stored (no entries at or before its asOf, so none is needed).
type checkpoint struct {
	Counts
	asOf uint64
}

// checkpointEvery is the window length, in positions.
const checkpointEvery = 64

func (c checkpoint) encode() []byte {
	return binary.BigEndian.AppendUint64(c.Counts.encode(), c.asOf)
}

func decodeCheckpoint(v []byte) (checkpoint, error) {
	if len(v) != 24 {
		return checkpoint{}, fmt.Errorf("counts entry has %d bytes", len(v))
	}
	c, err := decodeCounts(v[:16])
	return checkpoint{Counts: c, asOf: binary.BigEndian.Uint64(v[16:])}, err
}

func (c *Counts) addUnread(u Unread) {
	if u.Notify {
		c.Notify++
	}
	if u.Highlight {
		c.Highlight++
	}
}

// Notif is one entry of a user's recent notifications.
type Notif struct {
	RoomID  string `msgpack:"r"`
	EventID string `msgpack:"e"`
	// Seq is the event's position (from the key).
	Seq     uint64          `msgpack:"-"`
	Thread  string          `msgpack:"t,omitempty"`
	Actions json.RawMessage `msgpack:"a"`
	// Highlight: the actions set the highlight tweak.
	Highlight bool `msgpack:"h,omitempty"`
	// TS is when the notification was made (the record's time).
	TS int64 `msgpack:"ts"`
}

// Projection folds room events and receipts into notification counts.
type Projection struct{}

func (Projection) Name() string    { return "notifications" }
func (Projection) Version() uint32 { return 3 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	switch rec.Type {
	case facts.TypeRoomEvent:
		return applyEvent(w, rec)
	case facts.TypeReceiptSet:
		return applyReceipt(w, rec)
	}
	return nil
}

func applyEvent(w projections.Writer, rec *rlog.Record) error {
	f, p, err := facts.RoomEventOf(rec)
	if err != nil {
		return err
	}
	if p.Type == "m.room.member" && p.StateKey != nil {
		if err := applyMember(w, f.RoomID, *p.StateKey, p.Content); err != nil {
			return err
		}
	}
	thread := ""
	if mayRelate(p.Content) {
		var err error
		if thread, err = threadOf(w, f.RoomID, f.EventID); err != nil {
			return err
		}
	}
	// Sending marks the sender's notifications in this thread as read.
	if err := markRead(w, p.Sender, f.RoomID, thread, false, rec.Seq); err != nil {
		return err
	}
	members, err := joinedMembers(w, f.RoomID)
	if err != nil {
		return err
	}
	if len(members) == 0 || (len(members) == 1 && members[0].user == p.Sender) {
		return nil
	}
	ev := pushrules.NewEvent(f.RoomID, p.Sender, p.Type, p.StateKey, p.Content)
	shared := &roomState{r: w, roomID: f.RoomID, version: f.RoomVersion, members: len(members)}
	loader, err := pushrules.NewLoader(w)
	if err != nil {
		return err
	}
	defer loader.Close()
	refresh, err := newWindow(w, f.RoomID, rec.Seq)
	if err != nil {
		return err
	}
	enc := encoder{room: f.RoomID, eventID: f.EventID, thread: thread, ts: rec.Time}
	mr := &memberRoom{roomState: shared}
	for _, mb := range members {
		user := mb.user
		if user != p.Sender {
			eval, err := loader.Evaluator(user)
			if err != nil {
				return err
			}
			mr.user, mr.displayName = user, mb.displayName
			m := eval.Match(mr, ev)
			if shared.err != nil {
				return shared.err
			}
			if m != nil && (m.Notify || m.Highlight) {
				if err := add(w, user, f.RoomID, thread, rec.Seq, &enc, m); err != nil {
					return err
				}
			}
		}
		if refresh {
			if err := recount(w, user, f.RoomID, rec.Seq); err != nil {
				return err
			}
		}
	}
	return nil
}

// newWindow records that the room has an event at seq and reports whether
// it is the room's first in its checkpoint window.
func newWindow(w projections.Writer, room string, seq uint64) (bool, error) {
	key := windowKey(room)
	win := seq / checkpointEvery
	v, closer, err := w.Get(key)
	switch {
	case err == nil:
		same := len(v) == 8 && binary.BigEndian.Uint64(v) == win
		closer.Close()
		if same {
			return false, nil
		}
	case !errors.Is(err, pebble.ErrNotFound):
		return false, fmt.Errorf("window of %s: %w", room, err)
	}
	return true, w.Set(key, binary.BigEndian.AppendUint64(nil, win), nil)
}

// encoder encodes one event's list entries, once per distinct match.
type encoder struct {
	room, eventID, thread string
	ts                    int64
	cache                 []encoded
	key                   []byte // scratch for add's keys
}

type encoded struct {
	actions   json.RawMessage
	highlight bool
	b         []byte
}

// list returns the list entry of a member notified by m; the bytes are
// shared and never modified.
func (e *encoder) list(m *pushrules.Match) ([]byte, error) {
	for _, c := range e.cache {
		if c.highlight == m.Highlight && bytes.Equal(c.actions, m.Actions) {
			return c.b, nil
		}
	}
	b, err := msgpack.Marshal(&Notif{
		RoomID: e.room, EventID: e.eventID, Thread: e.thread, Actions: m.Actions, Highlight: m.Highlight, TS: e.ts,
	})
	if err != nil {
		return nil, fmt.Errorf("encode notification: %w", err)
	}
	e.cache = append(e.cache, encoded{actions: m.Actions, highlight: m.Highlight, b: b})
	return b, nil
}

// applyMember keeps the projection's own index of joined members and
// their display names current, so that folding an event reads the members
// in one scan rather than several point reads per member.
func applyMember(w projections.Writer, room, user string, content json.RawMessage) error {
	var c struct {
		Membership  string `json:"membership"`
		DisplayName any    `json:"displayname"`
	}
	_ = json.Unmarshal(content, &c)
	key := memberPrefix(room).Str(user)
	if c.Membership != "join" {
		if err := w.Delete(key, nil); err != nil {
			return err
		}
		return clearRoom(w, user, room)
	}
	name, _ := c.DisplayName.(string)
	return w.Set(key, []byte(name), nil)
}

type member struct {
	user        string
	displayName string
}

// joinedMembers lists the room's joined members in user ID order.
func joinedMembers(r pebble.Reader, room string) ([]member, error) {
	p := memberPrefix(room)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", room, err)
	}
	defer it.Close()
	var out []member
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		out = append(out, member{user: string(k[len(p) : len(k)-1]), displayName: string(it.Value())})
	}
	return out, it.Error()
}

// add records one notifying event for user: its unread entry (the
// counters are checkpoints, see checkpoint) and, if it notifies, its list
// entry. The keys are built in enc's scratch buffer (writers copy keys).
func add(w projections.Writer, user, room, thread string, seq uint64, enc *encoder, m *pushrules.Match) error {
	k := append(enc.key[:0], Prefix, tagUnread)
	k = append(append(k, user...), 0)
	k = append(append(k, room...), 0)
	k = append(append(k, thread...), 0)
	k = binary.BigEndian.AppendUint64(k, seq)
	enc.key = k
	if err := w.Set(k, Unread{Notify: m.Notify, Highlight: m.Highlight}.encode(), nil); err != nil {
		return err
	}
	if !m.Notify {
		return nil
	}
	b, err := enc.list(m)
	if err != nil {
		return err
	}
	k = append(k[:0], Prefix, tagList)
	k = append(append(k, user...), 0)
	k = binary.BigEndian.AppendUint64(k, seq)
	enc.key = k
	return w.Set(k, b, nil)
}

// trimList drops all but the user's Keep latest notifications.
func trimList(w projections.Writer, user string) error {
	p := listPrefix(user)
	it, err := w.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return err
	}
	n := 0
	var cut []byte
	for ok := it.Last(); ok; ok = it.Prev() {
		if n++; n > Keep {
			cut = bytes.Clone(it.Key())
			break
		}
	}
	if err := it.Close(); err != nil || cut == nil {
		return err
	}
	// Everything up to and including cut goes.
	return w.DeleteRange(p, projections.Key(cut).Raw([]byte{0}), nil)
}

// checkpoints reads the user's checkpoints in room, by thread.
func checkpoints(r pebble.Reader, user, room string) (map[string]checkpoint, error) {
	p := countsPrefix(user, room)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("counts of %s in %s: %w", user, room, err)
	}
	defer it.Close()
	var out map[string]checkpoint
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		c, err := decodeCheckpoint(it.Value())
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string]checkpoint{}
		}
		out[string(k[len(p):len(k)-1])] = c
	}
	return out, it.Error()
}

// roomCounts computes the user's counts in room per thread, in thread
// order, those that are not zero: each thread's checkpoint plus its unread
// entries after it. A thread with a checkpoint or a read position is read
// from after them both, so the scan neither sums the entries the
// checkpoint covers nor walks over deleted (read) ones; the key ranges
// between such threads (threads with neither, which never had entries
// deleted one by one) are scanned whole.
func roomCounts(r pebble.Reader, user, room string) ([]ThreadCounts, map[string]checkpoint, error) {
	cps, err := checkpoints(r, user, room)
	if err != nil {
		return nil, nil, err
	}
	reads, err := readPositions(r, user, room)
	if err != nil {
		return nil, nil, err
	}
	known := make([]string, 0, len(cps)+len(reads))
	for th := range cps {
		known = append(known, th)
	}
	for th := range reads {
		if _, ok := cps[th]; !ok {
			known = append(known, th)
		}
	}
	slices.Sort(known)
	p := unreadPrefix(user, room)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, nil, fmt.Errorf("unread of %s in %s: %w", user, room, err)
	}
	defer it.Close()
	var out []ThreadCounts
	// scan appends the sums of the threads in the iterator's bounds.
	scan := func() {
		for ok := it.First(); ok; {
			k := it.Key()
			th := string(k[len(p) : len(k)-9]) // thread, then 0x00 and the seq
			tp := p.Str(th)
			var c Counts
			for ; ok && len(it.Key()) == len(tp)+8 && bytes.HasPrefix(it.Key(), tp); ok = it.Next() {
				c.addUnread(decodeUnread(it.Value()))
			}
			if c != (Counts{}) {
				out = append(out, ThreadCounts{Thread: th, Counts: c})
			}
		}
	}
	pos := projections.Key(p)
	for _, th := range known {
		tp := p.Str(th)
		if bytes.Compare(pos, tp) < 0 {
			it.SetBounds(pos, tp)
			scan()
		}
		// Entries at or before the checkpoint are in it; none are left at
		// or before the read position.
		cp, hasCP := cps[th]
		from := cp.asOf
		if rp, has := reads[th]; has && (!hasCP || rp > from) {
			from = rp
		}
		it.SetBounds(tp.U64(from+1), tp.End())
		n := len(out)
		scan()
		c := cp.Counts
		if len(out) > n {
			c.Notify += out[n].Notify
			c.Highlight += out[n].Highlight
			out = out[:n]
		}
		if c != (Counts{}) {
			out = append(out, ThreadCounts{Thread: th, Counts: c})
		}
		pos = tp.End()
	}
	it.SetBounds(pos, p.End())
	scan()
	return out, cps, it.Error()
}

// recount moves all of user's checkpoints in room to asOf (the latest
// position).
func recount(w projections.Writer, user, room string, asOf uint64) error {
	tcs, cps, err := roomCounts(w, user, room)
	if err != nil {
		return err
	}
	for _, tc := range tcs {
		delete(cps, tc.Thread)
		if err := w.Set(countsPrefix(user, room).Str(tc.Thread), checkpoint{Counts: tc.Counts, asOf: asOf}.encode(), nil); err != nil {
			return err
		}
	}
	// Threads left with nothing (cps holds no more entries: a zero total
	// means no entries) drop their checkpoint, in thread order.
	left := make([]string, 0, len(cps))
	for th := range cps {
		left = append(left, th)
	}
	slices.Sort(left)
	for _, th := range left {
		if err := w.Delete(countsPrefix(user, room).Str(th), nil); err != nil {
			return err
		}
	}
	return nil
}

func applyReceipt(w projections.Writer, rec *rlog.Record) error {
	var f facts.ReceiptSet
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	if f.Type != "m.read" && f.Type != "m.read.private" {
		return nil
	}
	ref, err := rooms.LocateEvent(w, f.EventID)
	if err != nil || ref == nil || ref.RoomID != f.RoomID {
		return err // the machine checked the event; nothing to do otherwise
	}
	thread, all := f.ThreadID, f.ThreadID == ""
	if thread == "main" {
		thread = ""
	}
	if err := markRead(w, f.UserID, f.RoomID, thread, all, ref.Seq); err != nil {
		return err
	}
	// Trimming walks Keep entries: do it on one receipt in trimEvery
	// (chosen by position, so the same everywhere).
	if rec.Seq%trimEvery != 0 {
		return nil
	}
	return trimList(w, f.UserID)
}

const trimEvery = 8

// markRead deletes the user's unread entries at or before upTo, in one
// thread or (all) every thread of the room, and lowers the counters.
// Each (user, room, thread) keeps the position it was last read up to
// ('r' keys): no unread entries lie at or before it, so scans start after
// it and do not walk over the deleted (read) entries again.
func markRead(w projections.Writer, user, room, thread string, all bool, upTo uint64) error {
	p := unreadPrefix(user, room)
	var reads map[string]uint64
	opts := &pebble.IterOptions{LowerBound: p, UpperBound: p.End()}
	if all {
		var err error
		if reads, err = readPositions(w, user, room); err != nil {
			return err
		}
	} else {
		tp := p.Str(thread)
		lower := tp
		r, has, err := readPosition(w, readPrefix(user, room).Str(thread))
		if err != nil {
			return err
		}
		if has {
			if r >= upTo {
				return nil
			}
			lower = tp.U64(r + 1)
		}
		opts = &pebble.IterOptions{LowerBound: lower, UpperBound: tp.U64(upTo + 1)}
	}
	it, err := w.NewIter(opts)
	if err != nil {
		return fmt.Errorf("unread of %s in %s: %w", user, room, err)
	}
	var cps map[string]checkpoint
	type dec struct {
		thread string
		cp     checkpoint
	}
	var decs []dec
	var drop [][]byte
	var readThreads []string // in thread order
	inThread := func(k []byte, tp projections.Key) bool {
		return len(k) == len(tp)+8 && bytes.HasPrefix(k, tp)
	}
	for ok := it.First(); ok; {
		k := it.Key()
		th := string(k[len(p) : len(k)-9]) // thread, then 0x00 and the seq
		tp := p.Str(th)
		if r, has := reads[th]; has && projections.U64At(k) <= r {
			if r >= upTo {
				ok = it.SeekGE(tp.End())
				continue
			}
			if ok = it.SeekGE(tp.U64(r + 1)); !ok || !inThread(it.Key(), tp) {
				continue // the thread has nothing after r
			}
		}
		deleted := false
		for ; ok && inThread(it.Key(), tp); ok = it.Next() {
			k := it.Key()
			seq := projections.U64At(k)
			if seq > upTo {
				break
			}
			if cps == nil {
				if all {
					cps, err = checkpoints(w, user, room)
				} else {
					cps, err = oneCheckpoint(w, user, room, thread)
				}
				if err != nil {
					it.Close()
					return err
				}
				if cps == nil {
					cps = map[string]checkpoint{}
				}
			}
			deleted = true
			drop = append(drop, bytes.Clone(k))
			cp, in := cps[th]
			if !in || seq > cp.asOf {
				continue // not in the checkpoint
			}
			u := decodeUnread(it.Value())
			i := slices.IndexFunc(decs, func(d dec) bool { return d.thread == th })
			if i < 0 {
				decs = append(decs, dec{thread: th, cp: cp})
				i = len(decs) - 1
			}
			c := &decs[i].cp.Counts
			if u.Notify {
				c.Notify -= min(c.Notify, 1)
			}
			if u.Highlight {
				c.Highlight -= min(c.Highlight, 1)
			}
		}
		if deleted {
			readThreads = append(readThreads, th)
		}
		if ok && inThread(it.Key(), tp) {
			ok = it.SeekGE(tp.End()) // the rest of the thread is after upTo
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, k := range drop {
		if err := w.Delete(k, nil); err != nil {
			return err
		}
	}
	// Keys iterate in thread order, so decs is sorted: writes are in a
	// fixed order.
	for _, d := range decs {
		key := countsPrefix(user, room).Str(d.thread)
		var err error
		if d.cp.Counts == (Counts{}) {
			err = w.Delete(key, nil)
		} else {
			err = w.Set(key, d.cp.encode(), nil)
		}
		if err != nil {
			return err
		}
	}
	// Only threads where something was deleted move their read position
	// (elsewhere there are no deleted entries to skip).
	for _, th := range readThreads {
		if err := w.Set(readPrefix(user, room).Str(th), binary.BigEndian.AppendUint64(nil, upTo), nil); err != nil {
			return err
		}
	}
	return nil
}

// oneCheckpoint reads the user's checkpoint of one thread, as checkpoints
// does (nil when there is none).
func oneCheckpoint(r pebble.Reader, user, room, thread string) (map[string]checkpoint, error) {
	v, closer, err := r.Get(countsPrefix(user, room).Str(thread))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("counts of %s in %s: %w", user, room, err)
	}
	defer closer.Close()
	c, err := decodeCheckpoint(v)
	if err != nil {
		return nil, err
	}
	return map[string]checkpoint{thread: c}, nil
}

// readPosition reads one 'r' key.
func readPosition(r pebble.Reader, key []byte) (uint64, bool, error) {
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

// readPositions reads the user's read positions in room, by thread.
func readPositions(r pebble.Reader, user, room string) (map[string]uint64, error) {
	p := readPrefix(user, room)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return nil, fmt.Errorf("read positions of %s in %s: %w", user, room, err)
	}
	defer it.Close()
	var out map[string]uint64
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		if len(v) != 8 {
			return nil, fmt.Errorf("read position has %d bytes", len(v))
		}
		if out == nil {
			out = map[string]uint64{}
		}
		out[string(k[len(p):len(k)-1])] = binary.BigEndian.Uint64(v)
	}
	return out, it.Error()
}

// clearRoom drops everything unread of user in room (they left).
func clearRoom(w projections.Writer, user, room string) error {
	for _, p := range []projections.Key{unreadPrefix(user, room), countsPrefix(user, room), readPrefix(user, room)} {
		it, err := w.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
		if err != nil {
			return err
		}
		found := it.First()
		if err := it.Close(); err != nil {
			return err
		}
		if found {
			if err := w.DeleteRange(p, p.End(), nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// mayRelate reports whether content may carry m.relates_to, so that the
// event may have a relation (the relations projection only records
// relations named there). It is false only when no key can be it, however
// decoded: no escape, and no "_to" in any case (the letters t and o have
// no other case folds).
func mayRelate(content json.RawMessage) bool {
	if bytes.IndexByte(content, '\\') >= 0 {
		return true
	}
	for i := bytes.IndexByte(content, '_'); i >= 0; {
		if i+2 < len(content) && content[i+1]|0x20 == 't' && content[i+2]|0x20 == 'o' {
			return true
		}
		j := bytes.IndexByte(content[i+1:], '_')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// threadOf returns the thread root of an event ("" for the main timeline):
// its relation is followed up to three hops to an m.thread relation.
func threadOf(r pebble.Reader, room, eventID string) (string, error) {
	cur := eventID
	for range 3 {
		rel, err := relations.GetRelation(r, room, cur)
		if err != nil || rel == nil {
			return "", err
		}
		if rel.Thread {
			return rel.Parent, nil
		}
		cur = rel.Parent
	}
	return "", nil
}

// roomState is what the push rule conditions read about the room, shared
// by every member's evaluation of one event and loaded lazily.
type roomState struct {
	r        pebble.Reader
	roomID   string
	version  string
	members  int
	power    *event.PowerLevelsEventContent
	powerSet bool
	err      error // the first read error; the fold fails with it
}

// memberRoom is the room from one member's point of view (mautrix's
// pushrules.Room and PowerLevelfulRoom).
type memberRoom struct {
	*roomState
	user        string
	displayName string
}

func (m *memberRoom) GetMemberCount() int { return m.members }

func (m *memberRoom) GetOwnDisplayname() string { return m.displayName }

func (m *memberRoom) GetPowerLevels() *event.PowerLevelsEventContent {
	if !m.powerSet {
		m.powerSet = true
		pl, err := loadPower(m.r, m.roomID, m.version)
		if err != nil {
			m.fail(err)
		}
		m.power = pl
	}
	return m.power
}

func (s *roomState) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

// loadPower reads the room's power levels as far as
// sender_notification_permission needs them: user levels, users_default
// and notifications.room, read leniently (older room versions allow levels
// as strings); the creator at 100 without a power levels event, and in
// room versions with privileged creators the creators above everyone.
func loadPower(r pebble.Reader, roomID, version string) (*event.PowerLevelsEventContent, error) {
	plEv, err := rooms.StateEvent(r, roomID, "m.room.power_levels", "")
	if err != nil {
		return nil, err
	}
	createEv, err := rooms.StateEvent(r, roomID, "m.room.create", "")
	if err != nil {
		return nil, err
	}
	pl := &event.PowerLevelsEventContent{Users: map[id.UserID]int{}}
	if plEv != nil {
		var c struct {
			Users         map[string]json.RawMessage `json:"users"`
			UsersDefault  json.RawMessage            `json:"users_default"`
			Notifications struct {
				Room json.RawMessage `json:"room"`
			} `json:"notifications"`
		}
		_ = json.Unmarshal(plEv.Content, &c)
		for u, v := range c.Users {
			if n, ok := level(v); ok {
				pl.Users[id.UserID(u)] = n
			}
		}
		if n, ok := level(c.UsersDefault); ok {
			pl.UsersDefault = n
		}
		if n, ok := level(c.Notifications.Room); ok {
			pl.Notifications = &event.NotificationPowerLevels{RoomPtr: &n}
		}
	}
	if createEv == nil {
		return pl, nil
	}
	rv := id.RoomVersion(version)
	if rv.PrivilegedRoomCreators() {
		var cc event.CreateEventContent
		_ = json.Unmarshal(createEv.Content, &cc)
		cc.RoomVersion = rv
		pl.CreateEvent = &event.Event{Type: event.StateCreate, Sender: id.UserID(createEv.Sender), Content: event.Content{Parsed: &cc}}
	} else if plEv == nil {
		creator := createEv.Sender
		if rv.CreatorInContent() {
			var c struct {
				Creator string `json:"creator"`
			}
			_ = json.Unmarshal(createEv.Content, &c)
			creator = c.Creator
		}
		pl.Users[id.UserID(creator)] = 100
	}
	return pl, nil
}

// level reads a power level: an integer, or a string holding one.
func level(raw json.RawMessage) (int, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0, false
	}
	s := string(raw)
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		s = strings.TrimSpace(s)
	}
	if n, err := strconv.Atoi(s); err == nil {
		return n, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= -1<<53 && f <= 1<<53 {
		return int(f), true
	}
	return 0, false
}
