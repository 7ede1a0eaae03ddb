package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/labstack/echo/v4"

	rlog "chronicle/log"
	"chronicle/projections/rooms"
)

const (
	defaultTimelineLimit = 10
	maxSyncTimeout       = 5 * time.Minute
)

type syncRequest struct {
	// setPresence is the presence a sync sets ("" for none).
	setPresence string
	since       uint64
	fullState   bool
	timeout     time.Duration
	limit       int
	filter      syncFilter // the spec's Filter (filters.go, filters_sync.go)
	viewer      viewer
	// stateAfter is use_state_after=true (MSC4222): state_after instead
	// of state.
	stateAfter bool
	// lazy is set when room.state.lazy_load_members is (filters_lazy.go).
	lazy *lazyTracker
}

func (s *Server) parseSyncRequest(c echo.Context, r *Requester) (*syncRequest, error) {
	req := &syncRequest{limit: defaultTimelineLimit, viewer: viewer{UserID: r.UserID, DeviceID: r.DeviceID, OmitRoomID: true}}
	if v := c.QueryParam("since"); v != "" {
		seq, ok := parseToken(v)
		if !ok {
			return nil, errInvalidParam("invalid since token")
		}
		req.since = seq
	}
	switch p := c.QueryParam("set_presence"); p {
	case "":
		req.setPresence = "online"
	case "online", "unavailable", "offline":
		req.setPresence = p
	default:
		return nil, errInvalidParam("set_presence must be online, unavailable or offline")
	}
	switch c.QueryParam("full_state") {
	case "", "false":
	case "true":
		req.fullState = true
	default:
		return nil, errInvalidParam("full_state must be true or false")
	}
	if v := c.QueryParam("timeout"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			return nil, errInvalidParam("timeout must be a non-negative integer")
		}
		// Compare in milliseconds first: a huge value would overflow a
		// Duration and wrap negative.
		req.timeout = time.Duration(min(ms, maxSyncTimeout.Milliseconds())) * time.Millisecond
	}
	if err := s.parseSyncFilter(c, r, req); err != nil {
		return nil, err
	}
	return req, nil
}

// syncResponse is the spec's /sync response.
type syncResponse struct {
	NextBatch   string    `json:"next_batch"`
	Rooms       syncRooms `json:"rooms"`
	AccountData basicList `json:"account_data"`
	Presence    basicList `json:"presence"`
	ToDevice    basicList `json:"to_device"`
	// device_lists, device_one_time_keys_count and
	// device_unused_fallback_key_types (sync_keys.go).
	syncKeys
}

type syncRooms struct {
	Join   map[string]*joinedRoom  `json:"join"`
	Invite map[string]*invitedRoom `json:"invite"`
	Leave  map[string]*leftRoom    `json:"leave"`
	Knock  map[string]any          `json:"knock"`
}

type eventList struct {
	Events []clientEvent `json:"events"`
}

type timeline struct {
	Events    []clientEvent `json:"events"`
	Limited   bool          `json:"limited"`
	PrevBatch string        `json:"prev_batch,omitempty"`
}

type joinedRoom struct {
	Summary     *syncSummary `json:"summary,omitempty"`
	State       eventList    `json:"state,omitzero"`        // omitted with use_state_after
	StateAfter  *eventList   `json:"state_after,omitempty"` // MSC4222
	Timeline    timeline     `json:"timeline"`
	Ephemeral   basicList    `json:"ephemeral"`
	AccountData basicList    `json:"account_data"`
	// Notification counts (api/notifications.go).
	UnreadNotifications       *unreadCounts            `json:"unread_notifications,omitempty"`
	UnreadThreadNotifications map[string]*unreadCounts `json:"unread_thread_notifications,omitempty"`
}

type strippedEvent struct {
	Content  json.RawMessage `json:"content"`
	Sender   string          `json:"sender"`
	StateKey string          `json:"state_key"`
	Type     string          `json:"type"`
}

type invitedRoom struct {
	InviteState struct {
		Events []strippedEvent `json:"events"`
	} `json:"invite_state"`
}

type leftRoom struct {
	State       eventList `json:"state,omitzero"` // omitted with use_state_after
	Timeline    timeline  `json:"timeline"`
	AccountData basicList `json:"account_data"`

	// StateAfter replaces State with use_state_after (MSC4222).
	StateAfter *eventList `json:"state_after,omitempty"`
}

func (r *syncResponse) empty() bool {
	return len(r.Rooms.Join) == 0 && len(r.Rooms.Invite) == 0 && len(r.Rooms.Leave) == 0 && len(r.Rooms.Knock) == 0 &&
		len(r.AccountData.Events) == 0 && len(r.Presence.Events) == 0 && len(r.ToDevice.Events) == 0 && r.syncKeys.empty()
}

func (s *Server) sync(c echo.Context) error {
	req, err := s.parseSyncRequest(c, requester(c))
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	deadline := time.Now().Add(req.timeout)
	s.sideWrites(ctx, req)
	wake := s.newWakeFilter(req) // sync_stream.go
	for {
		head, changed := s.state.Log().Changed()
		// A token from the future (another node ahead of this one) waits
		// for this node to catch up rather than going backwards.
		if head.Seq >= req.since && !wake.skip(head.Seq, deadline) {
			resp, err := s.buildSync(req)
			if err != nil {
				return err
			}
			if !resp.empty() || req.since == 0 || req.fullState || !time.Now().Before(deadline) {
				return c.JSON(http.StatusOK, resp)
			}
			wake.built(resp)
		} else if !time.Now().Before(deadline) {
			resp := &syncResponse{NextBatch: formatToken(req.since), Rooms: newSyncRooms(),
				AccountData: newBasicList(), Presence: newBasicList(), ToDevice: newBasicList()}
			if err := s.state.View(func(r pebble.Reader) error {
				var err error
				resp.syncKeys, err = loadSyncKeys(r, req, req.since) // counts only: nothing new
				return err
			}); err != nil {
				return err
			}
			return c.JSON(http.StatusOK, resp)
		}
		s.metrics.syncWaiters.Inc()
		err := wake.wait(ctx, changed, deadline)
		s.metrics.syncWaiters.Dec()
		if err != nil {
			return err
		}
	}
}

// maxCatchUpWait bounds how long a request carrying a token from a node
// that is ahead waits for this node to catch up.
const maxCatchUpWait = 10 * time.Second

// waitForPosition waits until this node's log reaches seq, so a token
// minted on a node that is ahead never reads as "nothing new" here.
func (s *Server) waitForPosition(ctx context.Context, seq uint64) error {
	deadline := time.Now().Add(maxCatchUpWait)
	for {
		head, changed := s.state.Log().Changed()
		if head.Seq >= seq {
			return nil
		}
		if !time.Now().Before(deadline) {
			return &Error{Status: 503, Code: "M_UNAVAILABLE", Msg: "This server has not caught up with the given token yet; retry shortly", RetryAfter: 1}
		}
		if err := waitChange(ctx, changed, deadline); err != nil {
			return err
		}
	}
}

// waitChange parks until the log head moves, the deadline passes or the
// client goes away. It never polls storage.
func waitChange(ctx context.Context, changed <-chan struct{}, deadline time.Time) error {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-changed:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func newSyncRooms() syncRooms {
	return syncRooms{Join: map[string]*joinedRoom{}, Invite: map[string]*invitedRoom{}, Leave: map[string]*leftRoom{}, Knock: map[string]any{}}
}

// buildSync assembles one response from one snapshot, so everything in it
// is as of a single log position, which becomes next_batch.
func (s *Server) buildSync(req *syncRequest) (*syncResponse, error) {
	resp := &syncResponse{Rooms: newSyncRooms(), AccountData: newBasicList(), Presence: newBasicList(), ToDevice: newBasicList()}
	err := s.state.View(func(r pebble.Reader) error {
		head, err := rlog.ReadHead(r)
		if err != nil {
			return err
		}
		resp.NextBatch = formatToken(head.Seq)
		ud, err := loadUserData(r, req, head.Seq)
		if err != nil {
			return err
		}
		resp.AccountData.Events = append(resp.AccountData.Events, ud.global...)
		resp.Presence.Events = append(resp.Presence.Events, ud.presence...)
		resp.ToDevice.Events = append(resp.ToDevice.Events, ud.toDevice...)
		if resp.syncKeys, err = loadSyncKeys(r, req, head.Seq); err != nil { // sync_keys.go
			return err
		}
		memberships, err := syncMemberships(r, req, head.Seq, ud)
		if err != nil {
			return err
		}
		for _, m := range memberships {
			if err := s.syncRoom(r, req, head.Seq, m, ud, resp); err != nil {
				return err
			}
		}
		return nil
	})
	return resp, err
}

func (s *Server) syncRoom(r pebble.Reader, req *syncRequest, head uint64, m rooms.UserRoom, ud *userData, resp *syncResponse) error {
	if !req.filter.Room.includesRoom(m.RoomID) {
		return nil // room.rooms / room.not_rooms apply before anything else
	}
	changedMembership := m.Seq > req.since
	switch m.Membership.Membership {
	case "join":
		room, err := rooms.GetRoom(r, m.RoomID)
		if err != nil || room == nil {
			return err
		}
		// A room joined since the token is new to the client: full state.
		full := req.since == 0 || changedMembership || req.fullState
		eph, err := ephemeral(r, req.viewer.UserID, m.RoomID, req.since, head, full)
		if err != nil {
			return err
		}
		roomData := ud.perRoom[m.RoomID]
		timelineChanged := full || room.LastSeq > req.since
		if !timelineChanged && len(eph) == 0 && len(roomData) == 0 {
			return nil // nothing new: the common case
		}
		jr := &roomSection{state: eventList{Events: []clientEvent{}}, timeline: timeline{Events: []clientEvent{}, PrevBatch: formatToken(head)}}
		if timelineChanged {
			if jr, err = s.roomTimeline(r, req, m.RoomID, req.since, head, full); err != nil {
				return err
			}
		}
		joined := &joinedRoom{State: jr.state, Timeline: jr.timeline, Ephemeral: newBasicList(), AccountData: newBasicList()}
		joined.Ephemeral.Events = append(joined.Ephemeral.Events, eph...)
		joined.AccountData.Events = append(joined.AccountData.Events, roomData...)
		if full || hasStateChange(jr) {
			if joined.Summary, err = summarize(r, m.RoomID, req.viewer.UserID); err != nil {
				return err
			}
		}
		if err := addUnreadCounts(r, req, m.RoomID, joined); err != nil {
			return err
		}
		if keep, err := s.finishJoinedRoom(r, req, m.RoomID, full, joined); err != nil || !keep {
			return err
		}
		resp.Rooms.Join[m.RoomID] = joined
	case "invite":
		if req.since != 0 && !changedMembership {
			return nil
		}
		ir, err := inviteState(r, m)
		if err != nil {
			return err
		}
		resp.Rooms.Invite[m.RoomID] = ir
	case "knock":
		if req.since != 0 && !changedMembership {
			return nil
		}
		kr, err := knockState(r, m)
		if err != nil {
			return err
		}
		resp.Rooms.Knock[m.RoomID] = kr
	case "leave", "ban":
		if !changedMembership || (req.since == 0 && !req.filter.Room.IncludeLeave) {
			return nil
		}
		if forgotten, err := rooms.IsForgotten(r, req.viewer.UserID, m.RoomID, m.Seq); err != nil || forgotten {
			return err // a forgotten room is never in rooms.leave
		}
		lr, err := s.leftRoomTimeline(r, req, m)
		if err != nil {
			return err
		}
		left := &leftRoom{State: lr.state, Timeline: lr.timeline, AccountData: newBasicList()}
		left.AccountData.Events = append(left.AccountData.Events, ud.perRoom[m.RoomID]...)
		if err := s.finishLeftRoom(r, req, m.RoomID, left); err != nil {
			return err
		}
		resp.Rooms.Leave[m.RoomID] = left
	}
	return nil
}

// leftRoomTimeline is what a user who left (or was banned) may still be
// told: the events up to their leave if they had joined, otherwise (a
// rejected or rescinded invite, a ban before joining) only the membership
// event itself, since they never saw the room's history.
func (s *Server) leftRoomTimeline(r pebble.Reader, req *syncRequest, m rooms.UserRoom) (*roomSection, error) {
	prior, err := rooms.MembershipAt(r, m.RoomID, req.viewer.UserID, m.Seq-1)
	if err != nil {
		return nil, err
	}
	if prior == "join" {
		return s.roomTimeline(r, req, m.RoomID, req.since, m.Seq, false)
	}
	ev, err := rooms.GetEvent(r, m.RoomID, m.Seq)
	if err != nil || ev == nil {
		return nil, err
	}
	return &roomSection{
		state:    eventList{Events: []clientEvent{}},
		timeline: timeline{Events: req.viewer.renderAll([]*rooms.Event{ev}), PrevBatch: formatToken(m.Seq - 1)},
	}, nil
}

type roomSection struct {
	state    eventList
	timeline timeline
}

// roomTimeline returns the last events in (since, upTo] that pass the
// request's filter, up to the limit, and the state the client needs with
// them; filteredRoomTimeline (filters_sync.go) has the rules.
func (s *Server) roomTimeline(r pebble.Reader, req *syncRequest, roomID string, since, upTo uint64, full bool) (*roomSection, error) {
	return s.filteredRoomTimeline(r, req, roomID, since, upTo, full)
}

// stateChanges returns the latest state event per (type, state_key) among
// the room's events in (after, upTo].
func stateChanges(r pebble.Reader, roomID string, after, upTo uint64) ([]*rooms.Event, error) {
	if upTo <= after {
		return nil, nil
	}
	evs, _, err := rooms.Events(r, roomID, after, upTo, int(upTo-after), false)
	if err != nil {
		return nil, err
	}
	latest := map[rooms.StateKeyPair]int{}
	var out []*rooms.Event
	for _, ev := range evs {
		if ev.StateKey == nil {
			continue
		}
		k := rooms.StateKeyPair{Type: ev.Type, StateKey: *ev.StateKey}
		if i, ok := latest[k]; ok {
			out[i] = ev
			continue
		}
		latest[k] = len(out)
		out = append(out, ev)
	}
	return out, nil
}

// strippedTypes are the state events an invitee sees before joining.
var strippedTypes = []string{"m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar", "m.room.canonical_alias", "m.room.encryption", "m.room.topic"}

func inviteState(r pebble.Reader, m rooms.UserRoom) (*invitedRoom, error) {
	ir := &invitedRoom{}
	ir.InviteState.Events = []strippedEvent{}
	add := func(ev *rooms.Event) {
		ir.InviteState.Events = append(ir.InviteState.Events, strippedEvent{Content: ev.Content, Sender: ev.Sender, StateKey: *ev.StateKey, Type: ev.Type})
	}
	state, err := rooms.StateAt(r, m.RoomID, m.Seq)
	if err != nil {
		return nil, err
	}
	for _, ev := range state {
		for _, t := range strippedTypes {
			if ev.Type == t && *ev.StateKey == "" {
				add(ev)
			}
		}
	}
	inv, err := rooms.GetEvent(r, m.RoomID, m.Seq)
	if err != nil {
		return nil, err
	}
	if inv != nil {
		add(inv)
	}
	return ir, nil
}
