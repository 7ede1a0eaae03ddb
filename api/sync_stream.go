package api

import (
	"cmp"
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
// for a change that cannot concern it. Every long-poll wakes at every new
// log head; with thousands parked, most wake-ups are for someone else.
// Once a response built at position checked came out empty, a later one
// can differ only through the sync stream's entries in (checked, head], so
// the filter reads those (from the server's changeFeed, shared by every
// long-poll, so usually from memory) and lets the long-poll sleep on
// unless one may concern the user. It may let through a change that
// turns out to show nothing (the response is then built, found empty and
// the long-poll sleeps on), never the reverse.
//
// What it learned stays valid until the user's own membership changes
// (a KindMember entry for the user, which concerns them anyway) or a
// response is built: rooms that do not concern the user (no membership,
// or one that ended before the token) and users who share no room with
// them, whose presence therefore does not either.
type wakeFilter struct {
	s       *Server
	req     *syncRequest
	checked uint64 // 0 until a response was built and found empty
	// quietRooms and strangers are what earlier wake-ups looked up.
	quietRooms map[string]bool
	strangers  map[string]bool
}

func (s *Server) newWakeFilter(req *syncRequest) *wakeFilter { return &wakeFilter{s: s, req: req} }

// built records the position of a response that was found empty.
func (w *wakeFilter) built(resp *syncResponse) {
	if seq, ok := parseToken(resp.NextBatch); ok {
		w.checked = seq
	}
	w.quietRooms, w.strangers = nil, nil
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
	if concerns, err := w.concerns(changes); err != nil || concerns {
		return false
	}
	w.checked = head
	return true
}

// concerns reports whether any of changes may show in the request's sync:
// a room the user is joined to, or whose membership for the user changed
// since the token (any membership change is in its room's stream); the
// user's own account data, to-device messages for this device, or
// presence of the user or of anyone sharing a room with them; or a change
// of a kind the stream does not know. Storage is read only for rooms and
// users this long-poll has not looked up yet.
func (w *wakeFilter) concerns(changes []syncstream.Change) (bool, error) {
	user := w.req.viewer.UserID
	var roomIDs, userIDs []string
	for _, c := range changes {
		switch c.Kind {
		case syncstream.KindMember:
			if c.User == user {
				return true, nil
			}
			fallthrough
		case syncstream.KindRoom:
			if !w.quietRooms[c.Room] && !slices.Contains(roomIDs, c.Room) {
				roomIDs = append(roomIDs, c.Room)
			}
		case syncstream.KindAccountData:
			if c.User == user {
				return true, nil
			}
		case syncstream.KindToDevice:
			if c.User == user && c.Device == w.req.viewer.DeviceID {
				return true, nil
			}
		case syncstream.KindPresence:
			if c.User == user {
				return true, nil
			}
			if !w.strangers[c.User] && !slices.Contains(userIDs, c.User) {
				userIDs = append(userIDs, c.User)
			}
		default:
			return true, nil
		}
	}
	if len(roomIDs) == 0 && len(userIDs) == 0 {
		return false, nil
	}
	var concerns bool
	err := w.s.state.View(func(r pebble.Reader) error {
		for _, room := range roomIDs {
			m, err := rooms.GetMembership(r, user, room)
			if err != nil {
				return err
			}
			if m != nil && (m.Membership == "join" || m.Seq > w.req.since) {
				concerns = true
				return nil
			}
			if w.quietRooms == nil {
				w.quietRooms = map[string]bool{}
			}
			w.quietRooms[room] = true
		}
		for _, other := range userIDs {
			shared, err := sharesRoom(r, user, other)
			if err != nil {
				return err
			}
			if shared {
				concerns = true
				return nil
			}
			if w.strangers == nil {
				w.strangers = map[string]bool{}
			}
			w.strangers[other] = true
		}
		return nil
	})
	return concerns || err != nil, err
}

// feedKeep bounds the entries a changeFeed holds.
const feedKeep = 4096

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
		if f.upTo == 0 || f.upTo < after {
			f.from, f.upTo, f.entries = after, after, nil // start (or restart) here
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
