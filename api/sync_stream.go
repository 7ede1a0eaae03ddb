package api

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/rooms"
	"chronicle/projections/syncstream"
)

// Which rooms a sync visits.
//
// An initial or full-state sync visits every room the user has a
// membership in. An incremental sync visits only the rooms that can have
// something new in (since, head]: those in the sync stream (a room event,
// which includes the user's own membership changes, a typing change or a
// receipt) and those with new room account data for the user. Its cost
// therefore follows what changed, not how many rooms the user is in.
//
// A token far behind the head can name more changes than the user has
// rooms; then visiting every room is cheaper than reading the stream, so
// the scan gives up after firstScanBudget entries and, past
// fallbackFactor entries per room of the user, visits them all.
const (
	firstScanBudget = 1024
	fallbackFactor  = 10
)

// syncMemberships returns the user's memberships in the rooms the sync
// must visit (see above); syncRoom decides what each one shows.
func syncMemberships(r pebble.Reader, req *syncRequest, head uint64, ud *userData) ([]rooms.UserRoom, error) {
	user := req.viewer.UserID
	if req.since == 0 || req.fullState {
		return rooms.UserRooms(r, user)
	}
	if req.since >= head {
		return nil, nil // nothing can have changed
	}
	changed, complete, err := syncstream.ChangedRoomsBounded(r, req.since, head, firstScanBudget)
	if err != nil {
		return nil, err
	}
	if !complete {
		all, err := rooms.UserRooms(r, user)
		if err != nil {
			return nil, err
		}
		budget := fallbackFactor * len(all)
		if budget <= firstScanBudget {
			return all, nil
		}
		if changed, complete, err = syncstream.ChangedRoomsBounded(r, req.since, head, budget); err != nil {
			return nil, err
		}
		if !complete {
			return all, nil
		}
	}
	// Room account data is per user already (loadUserData read it).
	seen := make(map[string]bool, len(changed))
	for _, room := range changed {
		seen[room] = true
	}
	for _, room := range slices.Sorted(maps.Keys(ud.perRoom)) {
		if !seen[room] {
			seen[room] = true
			changed = append(changed, room)
		}
	}
	out := make([]rooms.UserRoom, 0, len(changed))
	for _, room := range changed {
		m, err := rooms.GetMembership(r, user, room)
		if err != nil {
			return nil, err
		}
		if m != nil { // never in the room: nothing of it is the user's
			out = append(out, rooms.UserRoom{RoomID: room, Membership: *m})
		}
	}
	return out, nil
}

// maxWakeScan bounds how many stream entries a woken long-poll reads to
// decide whether to build a response; past it, it just builds one.
const maxWakeScan = 256

// wakeFilter spares a parked long-poll the cost of building a response
// for a change that cannot concern it. Every new log head used to wake
// every long-poll; with thousands parked, most wake-ups are for someone
// else. Once a response built at position checked came out empty, a later
// one can differ only through the sync stream's entries in (checked,
// head], so only those need judging (see verdict).
//
// What the judging looked up stays valid until the user's own membership
// changes (a KindMember entry for the user, which concerns them anyway)
// or a response is built: which rooms concern the user (joined, or a
// membership that changed since the token) and which do not (no
// membership, or one that ended before it), and which users share a room
// with them (so their presence and device lists concern them) and which do
// not. While the long-poll is parked, the server's syncHub judges new
// entries against exactly that and wakes the long-poll only when one
// concerns it, so a change wakes the long-polls it concerns, not all of
// them.
type wakeFilter struct {
	s       *Server
	req     *syncRequest
	checked uint64 // 0 until a response was built and found empty
	// rooms: room -> whether changes there concern the user; people:
	// user -> whether they share a room with the user. While the
	// long-poll is parked, the hub owns these and checked.
	rooms  map[string]bool
	people map[string]bool
	wake   chan struct{} // closed by the hub; set while parked
}

func (s *Server) newWakeFilter(req *syncRequest) *wakeFilter { return &wakeFilter{s: s, req: req} }

// built records the position of a response that was found empty.
func (w *wakeFilter) built(resp *syncResponse) {
	if seq, ok := parseToken(resp.NextBatch); ok {
		w.checked = seq
	}
	w.rooms, w.people = nil, nil
}

// skip reports whether nothing in (checked, head] can concern the request,
// so building a response now would again find it empty. At the deadline
// it never skips: the response must then be sent.
func (w *wakeFilter) skip(head uint64, deadline time.Time) bool {
	if w.checked == 0 || !time.Now().Before(deadline) {
		return false
	}
	if head <= w.checked {
		return true
	}
	changes, ok, err := w.s.syncFeed.changes(w.s.state, w.checked, head)
	if err != nil {
		return false // building the response reports the error
	}
	if !ok {
		// Too far behind for the feed: read the stream here.
		err = w.s.state.View(func(r pebble.Reader) error {
			var complete bool
			changes, complete, err = syncstream.Changes(r, w.checked, head, maxWakeScan)
			ok = complete
			return err
		})
		if err != nil || !ok {
			return false
		}
	}
	v := w.verdict(changes)
	if v == mayConcern {
		if err := w.s.state.View(func(r pebble.Reader) error { return w.lookUp(r, changes) }); err != nil {
			return false
		}
		v = w.verdict(changes)
	}
	if v != ruledOut {
		return false
	}
	w.checked = head
	return true
}

// verdict is what a long-poll's caches say about some changes.
type verdict int

const (
	ruledOut   verdict = iota // none concerns the user
	mayConcern                // some name rooms or users not looked up yet
	concerns                  // one concerns the user
)

// verdict judges the changes after checked without reading storage. A
// change concerns the user when it is in a room that concerns them (see
// wakeFilter), is their own membership, account data, presence, device
// list or a to-device message for this device, is the presence or device
// list of someone sharing a room with them (or a device list change meant
// for them alone), changes this device's one-time or fallback keys, or is
// of a kind the stream does not know.
func (w *wakeFilter) verdict(changes []syncstream.Change) verdict {
	user := w.req.viewer.UserID
	v := ruledOut
	for _, c := range changes {
		if c.Seq <= w.checked {
			continue
		}
		switch c.Kind {
		case syncstream.KindMember:
			if c.User == user {
				return concerns
			}
			fallthrough
		case syncstream.KindRoom:
			if yes, known := w.rooms[c.Room]; !known {
				v = mayConcern
			} else if yes {
				return concerns
			}
		case syncstream.KindAccountData:
			if c.User == user {
				return concerns
			}
		case syncstream.KindToDevice:
			if c.User == user && c.Device == w.req.viewer.DeviceID {
				return concerns
			}
		case syncstream.KindDeviceKeys: // device_one_time_keys_count and fallback keys
			if c.User == user && c.Device == w.req.viewer.DeviceID {
				return concerns
			}
		case syncstream.KindDeviceList, syncstream.KindPresence:
			if c.OnlyFor != "" { // a device list change only one user sees
				if c.OnlyFor == user {
					return concerns
				}
				continue
			}
			if c.User == user {
				return concerns
			}
			if yes, known := w.people[c.User]; !known {
				v = mayConcern
			} else if yes {
				return concerns
			}
		default:
			return concerns
		}
	}
	return v
}

// lookUp fills the caches for the rooms and users in changes not looked
// up yet: the user's membership in each room, and whether each user
// shares a joined room with them.
func (w *wakeFilter) lookUp(r pebble.Reader, changes []syncstream.Change) error {
	user := w.req.viewer.UserID
	for _, c := range changes {
		if c.Seq <= w.checked {
			continue
		}
		switch c.Kind {
		case syncstream.KindRoom, syncstream.KindMember:
			if _, known := w.rooms[c.Room]; known {
				continue
			}
			m, err := rooms.GetMembership(r, user, c.Room)
			if err != nil {
				return err
			}
			if w.rooms == nil {
				w.rooms = map[string]bool{}
			}
			w.rooms[c.Room] = m != nil && (m.Membership == "join" || m.Seq > w.req.since)
		case syncstream.KindPresence, syncstream.KindDeviceList:
			if _, known := w.people[c.User]; known || c.User == user || c.OnlyFor != "" {
				continue
			}
			shared, err := sharesRoom(r, user, c.User)
			if err != nil {
				return err
			}
			if w.people == nil {
				w.people = map[string]bool{}
			}
			w.people[c.User] = shared
		}
	}
	return nil
}

// feedKeep bounds the entries a changeFeed holds (a variable for tests).
var feedKeep = 4096

// changeFeed holds the sync stream's latest entries in memory. A new log
// head wakes every parked long-poll; the first to ask for the new entries
// reads them from storage and the others share them.
type changeFeed struct {
	mu      sync.RWMutex
	from    uint64 // entries cover (from, upTo]
	upTo    uint64
	entries []syncstream.Change
}

// changes returns the entries in (after, upTo]; ok is false when the feed
// no longer holds them all (after is too old), and the caller reads
// storage itself.
func (f *changeFeed) changes(st State, after, upTo uint64) (out []syncstream.Change, ok bool, err error) {
	f.mu.RLock()
	if f.upTo >= upTo {
		out, ok = f.slice(after, upTo)
		f.mu.RUnlock()
		return out, ok, nil
	}
	f.mu.RUnlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.upTo < upTo {
		if f.upTo == 0 {
			f.from, f.upTo = after, after // start here
		}
		var more []syncstream.Change
		var complete bool
		if err := st.View(func(r pebble.Reader) error {
			var err error
			more, complete, err = syncstream.Changes(r, f.upTo, upTo, feedKeep)
			return err
		}); err != nil {
			return nil, false, err
		}
		if !complete { // a burst: begin again after it
			f.from, f.upTo, f.entries = upTo, upTo, nil
		} else {
			f.entries = append(f.entries, more...)
			f.upTo = upTo
			if drop := len(f.entries) - feedKeep; drop > 0 {
				f.from = f.entries[drop-1].Seq
				f.entries = slices.Clone(f.entries[drop:])
			}
		}
	}
	out, ok = f.slice(after, upTo)
	return out, ok, nil
}

// slice returns the entries in (after, upTo] (the caller holds mu). The
// result shares the feed's array, whose elements are never changed.
func (f *changeFeed) slice(after, upTo uint64) ([]syncstream.Change, bool) {
	if after < f.from || upTo > f.upTo {
		return nil, false
	}
	lo, _ := slices.BinarySearchFunc(f.entries, after+1, func(c syncstream.Change, seq uint64) int { return cmp.Compare(c.Seq, seq) })
	hi, _ := slices.BinarySearchFunc(f.entries, upTo+1, func(c syncstream.Change, seq uint64) int { return cmp.Compare(c.Seq, seq) })
	return f.entries[lo:hi:hi], true
}

// wait parks the long-poll until something may concern it, the deadline
// passes or the client goes away. A long-poll that has found nothing yet
// (or whose check the hub has moved past) waits for the next log head as
// before.
func (w *wakeFilter) wait(ctx context.Context, changed <-chan struct{}, deadline time.Time) error {
	if w.checked == 0 {
		return waitChange(ctx, changed, deadline)
	}
	wake, parked, stopped := w.s.syncHub.park(w.s, w)
	if stopped {
		return waitChange(ctx, changed, deadline)
	}
	if !parked {
		return nil // the hub is past checked: check again at once
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-wake:
		return nil
	case <-t.C:
		w.s.syncHub.unpark(w)
		return nil
	case <-ctx.Done():
		w.s.syncHub.unpark(w)
		return ctx.Err()
	}
}

// syncHub holds parked long-polls. One goroutine follows the log head,
// reads each new run of sync stream entries once (through the changeFeed)
// and judges them for every parked long-poll: it wakes those they
// concern at once, then looks up, in one snapshot, what the others'
// caches lack, and wakes those the answers show concerned. The rest stay
// parked, their checked position moved on, without running at all.
type syncHub struct {
	mu      sync.Mutex
	started bool
	stopped bool
	pos     uint64 // every parked long-poll has been checked up to pos
	parked  map[*wakeFilter]struct{}
}

// park hands w to the hub; it returns the channel closed when w should
// check again. It refuses (parked false) when the hub has moved past
// w.checked, and when the server is shutting down (stopped).
func (h *syncHub) park(s *Server, w *wakeFilter) (wake <-chan struct{}, parked, stopped bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return nil, false, true
	}
	if !h.started {
		head, _ := s.state.Log().Changed()
		h.started, h.pos, h.parked = true, head.Seq, map[*wakeFilter]struct{}{}
		go h.run(s)
	}
	if w.checked < h.pos {
		return nil, false, false
	}
	w.wake = make(chan struct{})
	h.parked[w] = struct{}{}
	return w.wake, true, false
}

// unpark takes w back (after its deadline or its client left).
func (h *syncHub) unpark(w *wakeFilter) {
	h.mu.Lock()
	delete(h.parked, w)
	h.mu.Unlock()
}

func (h *syncHub) run(s *Server) {
	for {
		head, changed := s.state.Log().Changed()
		h.advance(s, head.Seq)
		select {
		case <-changed:
		case <-s.baseCtx.Done():
			h.mu.Lock()
			h.stopped = true
			h.wakeAllLocked()
			h.mu.Unlock()
			return
		}
	}
}

// advance checks every parked long-poll against the entries up to head.
func (h *syncHub) advance(s *Server, head uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if head <= h.pos {
		return
	}
	defer func() { h.pos = head }()
	if len(h.parked) == 0 {
		return
	}
	changes, ok, err := s.syncFeed.changes(s.state, h.pos, head)
	if err != nil || !ok {
		h.wakeAllLocked() // each reads what it needs itself
		return
	}
	var unknown []*wakeFilter
	for w := range h.parked {
		switch w.verdict(changes) {
		case ruledOut:
			w.checked = max(w.checked, head)
		case concerns:
			h.wakeLocked(w)
		default:
			unknown = append(unknown, w)
		}
	}
	if len(unknown) == 0 {
		return
	}
	err = s.state.View(func(r pebble.Reader) error {
		for _, w := range unknown {
			if err := w.lookUp(r, changes); err != nil {
				return err
			}
		}
		return nil
	})
	for _, w := range unknown {
		if err == nil && w.verdict(changes) == ruledOut {
			w.checked = max(w.checked, head)
		} else {
			h.wakeLocked(w)
		}
	}
}

func (h *syncHub) wakeLocked(w *wakeFilter) {
	delete(h.parked, w)
	close(w.wake)
}

func (h *syncHub) wakeAllLocked() {
	for w := range h.parked {
		h.wakeLocked(w)
	}
}
