package api

import (
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	"chronicle/projections/rooms"
)

// How /sync applies its Filter (filters.go has the model and matching).
//
//   - room.rooms / room.not_rooms drop a room from every section (join,
//     invite, knock, leave) before any other filter runs.
//   - room.timeline: types, senders, rooms and contains_url choose the
//     timeline's events and limit counts the events that pass. limited is
//     true when more passing events exist before the first one returned
//     (or when the scan gave up looking, maxFilterRounds), and prev_batch
//     is the position just before the first one returned, so /messages
//     from it continues without a hole.
//   - state: the state at the start of the timeline (full syncs), or the
//     state changes between since and the start of the timeline. State
//     events the timeline filter dropped after that start are added too
//     (the latest per key, unless a returned timeline event of the key
//     comes later), so that a client filtering its timeline still learns
//     the room's name or topic; Synapse does the same. room.state's
//     types/senders/rooms/contains_url then filter the section; its limit
//     is not applied (a truncated state would be wrong, not shorter).
//   - Lazy-loading members (room.state.lazy_load_members; the spec makes
//     it a state-filter option for /sync, so the timeline filter's flag is
//     not consulted here): the state carries only the m.room.member events
//     of the returned timeline's senders (as of the start of the timeline;
//     a sender whose member event appears earlier in the same timeline
//     needs none), plus the syncing user's own on full syncs and newly
//     joined rooms, plus, on a limited incremental sync, every member
//     change in the gap, plus the summary's heroes when a summary is sent.
//   - include_redundant_members=false (the default): a member event this
//     device already received, unchanged, is not sent again on incremental
//     syncs; lazyMemberCache below keeps what each device was sent.
//   - use_state_after=true (MSC4222, spec v1.16): state_after replaces
//     state and holds the state at the end of the timeline (full syncs) or
//     every state change between since and the end of the timeline, the
//     timeline's own state events included. With lazy-loading, members
//     are those of the timeline's senders and of the member events in the
//     timeline (the client must not apply the timeline to its state).
//     Only the stable names are served (not org.matrix.msc4222.*).
//   - room.ephemeral and room.account_data filter those sections (types,
//     senders, rooms, limit); presence and account_data the top-level
//     ones. to_device is not filtered (the spec's Filter has no part for
//     it).
//   - On an incremental sync, a joined room whose sections all end up
//     empty after filtering is left out, so a filtered-out change neither
//     shows an empty room nor wakes a long-poll. This only happens when
//     the room filters narrow something; unfiltered syncs are unchanged.
//   - event_format and event_fields reshape the room events of the
//     response (filters_render.go).
//   - room.timeline.unread_thread_notifications is parsed and kept in the
//     request for the unread-notification counts.

const memberType = "m.room.member"

func isMember(ev *rooms.Event) bool { return ev.Type == memberType }

// parseSyncFilter reads /sync's filter and use_state_after parameters
// into req (req.since must be parsed already).
func (s *Server) parseSyncFilter(c echo.Context, r *Requester, req *syncRequest) error {
	f, err := s.resolveFilter(r.UserID, c.QueryParam("filter"))
	if err != nil {
		return err
	}
	req.filter = *f
	if l := f.Room.Timeline.Limit; l != nil {
		req.limit = min(*l, maxPageLimit)
	}
	switch c.QueryParam("use_state_after") {
	case "", "false":
	case "true":
		req.stateAfter = true
	default:
		return errInvalidParam("use_state_after must be true or false")
	}
	if sf := &f.Room.State; sf.LazyLoadMembers {
		req.lazy = &lazyTracker{
			cache: &s.lazyMembers, track: !sf.IncludeRedundantMembers,
			user: r.UserID, device: r.DeviceID, since: req.since,
		}
	}
	return nil
}

// filterUserData applies the top-level account_data and presence filters
// and room.account_data to what /sync carries outside the room sections.
// loadUserData calls it once per response it builds, with the response's
// position, which also starts the response for lazy-loading's records.
func (req *syncRequest) filterUserData(ud *userData, head uint64) {
	f := &req.filter
	ud.global = filterBasic(ud.global, &f.AccountData, nil, "")
	ud.presence = filterBasic(ud.presence, &f.Presence, nil, "")
	for roomID, evs := range ud.perRoom {
		var kept []basicEvent
		if f.Room.includesRoom(roomID) {
			kept = filterBasic(evs, &f.Room.AccountData.eventFilter, &f.Room.AccountData, roomID)
		}
		if len(kept) == 0 {
			delete(ud.perRoom, roomID)
		} else {
			ud.perRoom[roomID] = kept
		}
	}
	if req.lazy != nil {
		req.lazy.begin(head)
	}
}

// narrows reports whether a room section filter can leave a section with
// less than it would have had unfiltered.
func (f *roomEventFilter) narrows() bool {
	return f.restrictsEvents() || f.Rooms != nil || len(f.NotRooms) > 0 || f.Limit != nil || f.LazyLoadMembers
}

// narrowsRooms reports whether the room filters can empty a room's
// sections.
func (f *syncFilter) narrowsRooms() bool {
	r := &f.Room
	return r.Timeline.narrows() || r.State.narrows() || r.Ephemeral.narrows() || r.AccountData.narrows()
}

// filteredRoomTimeline returns the last events in (since, upTo] that pass
// the timeline filter, up to the limit, and the state section that goes
// with them (see the top of this file); full means the client has
// nothing of the room yet.
func (s *Server) filteredRoomTimeline(r pebble.Reader, req *syncRequest, roomID string, since, upTo uint64, full bool) (*roomSection, error) {
	tf := &req.filter.Room.Timeline
	// Without a token the client has nothing of the room (a left room on
	// an initial sync with include_leave comes here with full unset).
	full = full || since == 0
	after := since
	if full {
		after = 0
	}
	v, err := rooms.LoadVisibility(r, roomID, req.viewer.UserID)
	if err != nil {
		return nil, err
	}
	// One more than the limit tells whether the timeline was cut short.
	var dropped []*rooms.Event // visible state events the filter dropped
	evs, _, more, err := tf.scan(r, v, roomID, after, upTo, req.limit+1, true, func(ev *rooms.Event) {
		if ev.StateKey != nil {
			dropped = append(dropped, ev)
		}
	})
	if err != nil {
		return nil, err
	}
	limited := more
	if len(evs) > req.limit {
		evs, limited = evs[:req.limit], true
	}
	slices.Reverse(evs)
	start := upTo // position just before the timeline
	if len(evs) > 0 {
		start = evs[0].Seq - 1
	}
	// Timeline events carry their bundled aggregations (relations.go).
	events, err := req.viewer.renderBundled(r, v, evs)
	if err != nil {
		return nil, err
	}
	out := &roomSection{timeline: timeline{Events: events, Limited: limited, PrevBatch: formatToken(start)}}

	point := start // the state section is as of here
	if req.stateAfter {
		point = upTo
	}
	lazy := req.lazy != nil
	var state []*rooms.Event
	switch {
	case full && lazy:
		state, err = rooms.StateAtExcept(r, roomID, point, memberType)
	case full:
		state, err = rooms.StateAt(r, roomID, point)
	default:
		state, err = stateChanges(r, roomID, since, point)
	}
	if err != nil {
		return nil, err
	}
	var lr *lazyRoom
	if lazy {
		ls := lazySelection{req: req, roomID: roomID, full: full, limited: limited, since: since, start: start, point: point}
		if state, lr, err = ls.apply(r, state, evs); err != nil {
			return nil, err
		}
	}
	if !req.stateAfter && len(dropped) > 0 {
		state = overlayDropped(state, dropped, start, evs, lr)
	}
	if sf := &req.filter.Room.State; sf.narrows() {
		state = slices.DeleteFunc(state, func(ev *rooms.Event) bool { return !sf.matchesEvent(ev) })
	}
	if lr != nil {
		lr.noteSent(state)
		if !req.stateAfter {
			// The client applies the timeline to its state, except with
			// state_after, whose clients must not.
			lr.noteSent(evs)
		}
		lr.membersChanged = full || slices.ContainsFunc(evs, isMember) ||
			slices.ContainsFunc(state, func(ev *rooms.Event) bool { return isMember(ev) && ev.Seq > since })
		req.lazy.record(roomID, lr)
	}
	out.state = eventList{Events: req.viewer.renderAll(state)}
	return out, nil
}

// overlayDropped adds to a state section (as of start) the state events
// after start that the timeline filter dropped: per (type, state_key) the
// latest, unless a returned timeline event of that key is later still.
// With lazy-loading (lr), only members already selected are updated.
func overlayDropped(state, dropped []*rooms.Event, start uint64, timeline []*rooms.Event, lr *lazyRoom) []*rooms.Event {
	latest := map[rooms.StateKeyPair]*rooms.Event{}
	for _, ev := range timeline {
		if ev.StateKey != nil {
			latest[rooms.StateKeyPair{Type: ev.Type, StateKey: *ev.StateKey}] = ev
		}
	}
	index := map[rooms.StateKeyPair]int{}
	for i, ev := range state {
		index[rooms.StateKeyPair{Type: ev.Type, StateKey: *ev.StateKey}] = i
	}
	// dropped is latest first (the scan runs backward).
	done := map[rooms.StateKeyPair]bool{}
	for _, ev := range dropped {
		k := rooms.StateKeyPair{Type: ev.Type, StateKey: *ev.StateKey}
		if ev.Seq <= start || done[k] {
			continue
		}
		done[k] = true
		if t := latest[k]; t != nil && t.Seq > ev.Seq {
			continue
		}
		i, present := index[k]
		if lr != nil && ev.Type == memberType && !present && !lr.needed[*ev.StateKey] {
			continue
		}
		if present {
			state[i] = ev
		} else {
			index[k] = len(state)
			state = append(state, ev)
		}
	}
	return state
}

// lazySelection picks the member events of one room's state section when
// members are lazy-loaded.
type lazySelection struct {
	req           *syncRequest
	roomID        string
	full, limited bool
	since, start  uint64
	point         uint64
}

// apply keeps state's non-member events and the member changes in the
// gap of a limited incremental sync, and adds the member events (as of
// point) of the users the timeline needs that the device does not have
// yet.
func (ls *lazySelection) apply(r pebble.Reader, state, timeline []*rooms.Event) ([]*rooms.Event, *lazyRoom, error) {
	req := ls.req
	lr := &lazyRoom{point: ls.point, sent: map[string]string{}, needed: map[string]bool{}}
	if !ls.full {
		lr.known = req.lazy.known(ls.roomID)
	}
	inGap := func(ev *rooms.Event) bool { return ls.limited && !ls.full && ev.Seq > ls.since && ev.Seq <= ls.start }
	have := map[string]bool{}
	kept := state[:0:0]
	for _, ev := range state {
		if ev.Type == memberType {
			if !inGap(ev) {
				continue
			}
			have[*ev.StateKey] = true
		}
		kept = append(kept, ev)
	}
	var needed []string
	seen := map[string]bool{}
	need := func(u string) {
		if !seen[u] {
			seen[u] = true
			needed = append(needed, u)
		}
	}
	ownFull := ls.full
	if ownFull {
		need(req.viewer.UserID)
	}
	// A sender whose member event came earlier in this timeline needs no
	// state entry, unless the state is as of the end (state_after), where
	// every member event of the timeline is state the client must get.
	earlier := map[string]bool{}
	for _, ev := range timeline {
		if req.stateAfter || !earlier[ev.Sender] {
			need(ev.Sender)
		}
		if ev.Type == memberType && ev.StateKey != nil {
			earlier[*ev.StateKey] = true
			if req.stateAfter {
				need(*ev.StateKey)
			}
		}
	}
	for _, u := range needed {
		lr.needed[u] = true
		if have[u] {
			continue
		}
		ev, err := rooms.StateEntryAt(r, ls.roomID, memberType, u, ls.point)
		if err != nil {
			return nil, nil, err
		}
		if ev == nil {
			continue
		}
		forced := (ownFull && u == req.viewer.UserID) || inGap(ev)
		if !forced && lr.known[u] == ev.EventID {
			continue // redundant: the device has it
		}
		kept = append(kept, ev)
		have[u] = true
	}
	return kept, lr, nil
}

// finishJoinedRoom applies the filters that work on a joined room's whole
// section once syncRoom has built it: the ephemeral filter, the heroes'
// member events under lazy-loading, leaving out a room the filters
// emptied, event_format/event_fields and state_after. It reports whether
// the room stays in the response.
func (s *Server) finishJoinedRoom(r pebble.Reader, req *syncRequest, roomID string, full bool, jr *joinedRoom) (bool, error) {
	f := &req.filter
	jr.Ephemeral.Events = filterBasic(jr.Ephemeral.Events, &f.Room.Ephemeral.eventFilter, &f.Room.Ephemeral, roomID)
	if jr.Ephemeral.Events == nil {
		jr.Ephemeral.Events = []basicEvent{}
	}
	var lr *lazyRoom
	if req.lazy != nil {
		if lr = req.lazy.take(roomID); lr != nil && !lr.membersChanged {
			// syncRoom sends the summary when the section holds member
			// events; lazy-loaded ones that did not change do not count.
			jr.Summary = nil
		}
		if lr != nil && jr.Summary != nil {
			if err := s.addHeroMembers(r, req, roomID, lr, jr); err != nil {
				return false, err
			}
		}
	}
	if !full && f.narrowsRooms() && len(jr.Timeline.Events) == 0 && !jr.Timeline.Limited &&
		len(jr.State.Events) == 0 && len(jr.Ephemeral.Events) == 0 && len(jr.AccountData.Events) == 0 {
		return false, nil
	}
	if lr != nil {
		req.lazy.commit(roomID, lr)
	}
	if err := f.shapeEvents(r, roomID, jr.Timeline.Events); err != nil {
		return false, err
	}
	if err := f.shapeEvents(r, roomID, jr.State.Events); err != nil {
		return false, err
	}
	if req.stateAfter {
		after := jr.State
		jr.StateAfter, jr.State = &after, eventList{}
	}
	return true, nil
}

// addHeroMembers adds the summary heroes' member events to a lazy-loaded
// state section, as the spec asks, unless the device has them.
func (s *Server) addHeroMembers(r pebble.Reader, req *syncRequest, roomID string, lr *lazyRoom, jr *joinedRoom) error {
	sf := &req.filter.Room.State
	for _, hero := range jr.Summary.Heroes {
		if slices.ContainsFunc(jr.State.Events, func(ce clientEvent) bool {
			return ce.Type == memberType && ce.StateKey != nil && *ce.StateKey == hero
		}) {
			continue
		}
		ev, err := rooms.StateEntryAt(r, roomID, memberType, hero, lr.point)
		if err != nil {
			return err
		}
		if ev == nil || lr.known[hero] == ev.EventID || !sf.matchesEvent(ev) {
			continue
		}
		jr.State.Events = append(jr.State.Events, req.viewer.render(ev))
		lr.sent[hero] = ev.EventID
	}
	return nil
}

// finishLeftRoom applies the timeline filter to the events of a room the
// user left (leftRoomTimeline may render the membership event without
// it), then event_format/event_fields and state_after.
func (s *Server) finishLeftRoom(r pebble.Reader, req *syncRequest, roomID string, lr *leftRoom) error {
	f := &req.filter
	if req.lazy != nil {
		req.lazy.take(roomID) // a left room's members are not recorded
	}
	if tf := &f.Room.Timeline; tf.restrictsEvents() || !tf.allowsRoom(roomID) {
		lr.Timeline.Events = slices.DeleteFunc(lr.Timeline.Events, func(ce clientEvent) bool { return !tf.matchesRendered(roomID, &ce) })
	}
	if err := f.shapeEvents(r, roomID, lr.Timeline.Events); err != nil {
		return err
	}
	if err := f.shapeEvents(r, roomID, lr.State.Events); err != nil {
		return err
	}
	if req.stateAfter {
		after := lr.State
		lr.StateAfter, lr.State = &after, eventList{}
	}
	return nil
}
