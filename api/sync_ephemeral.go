package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/accountdata"
	"chronicle/projections/presence"
	"chronicle/projections/receipts"
	"chronicle/projections/todevice"
	"chronicle/projections/typing"
	"chronicle/raft/machine"
)

// basicEvent is the spec's event without room or sender fields: account
// data, ephemeral events, presence and to-device messages.
type basicEvent struct {
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
	Sender  string          `json:"sender,omitempty"`
}

type basicList struct {
	Events []basicEvent `json:"events"`
}

func newBasicList() basicList { return basicList{Events: []basicEvent{}} }

// maxToDevicePerSync bounds one response; the rest follow in later syncs.
const maxToDevicePerSync = 100

// ephemeral returns a joined room's typing and receipts that changed in
// (since, head] (all current ones on a full sync). m.read.private receipts
// are shown only to their owner.
func ephemeral(r pebble.Reader, user, roomID string, since, head uint64, full bool) ([]basicEvent, error) {
	var out []basicEvent
	after := since
	if full {
		after = 0
	}
	changedAt, err := typing.ChangedAt(r, roomID)
	if err != nil {
		return nil, err
	}
	if changedAt > after && changedAt <= head {
		users, err := typing.Users(r, roomID)
		if err != nil {
			return nil, err
		}
		if !(full && len(users) == 0) {
			raw, _ := json.Marshal(map[string]any{"user_ids": users})
			out = append(out, basicEvent{Type: "m.typing", Content: raw})
		}
	}
	rcs, err := receipts.Changed(r, roomID, after, head)
	if err != nil {
		return nil, err
	}
	content := map[string]map[string]map[string]map[string]any{}
	for _, rc := range rcs {
		if rc.Type == "m.read.private" && rc.UserID != user {
			continue
		}
		byType := content[rc.EventID]
		if byType == nil {
			byType = map[string]map[string]map[string]any{}
			content[rc.EventID] = byType
		}
		byUser := byType[rc.Type]
		if byUser == nil {
			byUser = map[string]map[string]any{}
			byType[rc.Type] = byUser
		}
		info := map[string]any{"ts": rc.TS}
		if rc.ThreadID != "" {
			info["thread_id"] = rc.ThreadID
		}
		byUser[rc.UserID] = info
	}
	if len(content) > 0 {
		raw, _ := json.Marshal(content)
		out = append(out, basicEvent{Type: "m.receipt", Content: raw})
	}
	return out, nil
}

// userData is what /sync carries outside rooms, read in the same snapshot.
type userData struct {
	global   []basicEvent
	perRoom  map[string][]basicEvent
	presence []basicEvent
	toDevice []basicEvent
}

func loadUserData(r pebble.Reader, req *syncRequest, head uint64) (*userData, error) {
	ud := &userData{perRoom: map[string][]basicEvent{}}
	after := req.since
	if req.fullState {
		after = 0
	}
	items, err := accountdata.Changed(r, req.viewer.UserID, after, head)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		ev := basicEvent{Type: it.Type, Content: it.Content}
		if it.RoomID == "" {
			ud.global = append(ud.global, ev)
		} else {
			ud.perRoom[it.RoomID] = append(ud.perRoom[it.RoomID], ev)
		}
	}
	// m.push_rules is server-controlled global account data (notifications.go).
	if ev, err := pushRulesEvent(r, req.viewer.UserID, after); err != nil {
		return nil, err
	} else if ev != nil {
		ud.global = append(ud.global, *ev)
	}
	users, err := presence.ChangedUsers(r, after, head)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if u != req.viewer.UserID {
			if ok, err := sharesRoom(r, req.viewer.UserID, u); err != nil {
				return nil, err
			} else if !ok {
				continue
			}
		}
		st, err := presence.Get(r, u)
		if err != nil || st == nil {
			return nil, err
		}
		raw, _ := json.Marshal(presenceContent(st, false))
		ud.presence = append(ud.presence, basicEvent{Type: "m.presence", Sender: u, Content: raw})
	}
	// Messages at or before since were delivered by the response that
	// minted since; skipping them here keeps delivery exactly-once even
	// when the acknowledgement record has not been applied (no quorum).
	msgs, err := todevice.Pending(r, req.viewer.UserID, req.viewer.DeviceID, req.since, head, maxToDevicePerSync)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		ud.toDevice = append(ud.toDevice, basicEvent{Type: m.Type, Content: m.Content, Sender: m.Sender})
	}
	req.filterUserData(ud, head) // account_data, presence filters (filters_sync.go)
	return ud, nil
}

// backgroundWriteTimeout bounds the writes a sync makes on the side.
const backgroundWriteTimeout = 10 * time.Second

// presenceWriteTimeout bounds how long a sync waits to record a presence
// change before answering anyway.
const presenceWriteTimeout = time.Second

// sideWrites runs a sync's incidental writes without letting them hold
// the read up: a sync must answer even when the cluster cannot write (no
// quorum). A presence change is waited for briefly, so that it lands
// before the position this response returns and does not wake the next
// sync; acknowledging to-device messages is only garbage collection (see
// loadUserData) and runs in the background.
func (s *Server) sideWrites(ctx context.Context, req *syncRequest) {
	pctx, cancel := context.WithTimeout(ctx, presenceWriteTimeout)
	if err := s.setPresence(pctx, req); err != nil {
		s.logger.Debug("set presence from sync", "user", req.viewer.UserID, "err", err)
	}
	cancel()
	go func() {
		ctx, cancel := context.WithTimeout(s.baseCtx, backgroundWriteTimeout)
		defer cancel()
		if err := s.acknowledgeToDevice(ctx, req); err != nil {
			s.logger.Debug("acknowledge to-device messages", "user", req.viewer.UserID, "err", err)
		}
	}()
}

// acknowledgeToDevice drops the device's to-device messages up to since:
// a client syncing with a token has received everything before it.
func (s *Server) acknowledgeToDevice(ctx context.Context, req *syncRequest) error {
	if req.since == 0 {
		return nil
	}
	var pending bool
	if err := s.state.View(func(r pebble.Reader) error {
		var err error
		pending, err = todevice.HasUpTo(r, req.viewer.UserID, req.viewer.DeviceID, req.since)
		return err
	}); err != nil || !pending {
		return err
	}
	cmd, err := machine.NewCommand(machine.CmdToDeviceAck, now(), req.viewer.UserID, req.viewer.DeviceID, &machine.ToDeviceAck{UpTo: req.since})
	if err != nil {
		return err
	}
	_, err = s.submit.Submit(ctx, cmd)
	return err
}

// setPresence applies /sync's set_presence (online when omitted). The
// machine writes a record only when the presence actually changes.
func (s *Server) setPresence(ctx context.Context, req *syncRequest) error {
	if req.setPresence == "" {
		return nil
	}
	var cur *presence.State
	if err := s.state.View(func(r pebble.Reader) error {
		var err error
		cur, err = presence.Get(r, req.viewer.UserID)
		return err
	}); err != nil {
		return err
	}
	if cur != nil && cur.Presence == req.setPresence {
		return nil // the common case: no write at all
	}
	cmd, err := machine.NewCommand(machine.CmdPresence, now(), req.viewer.UserID, req.viewer.DeviceID, &machine.Presence{Presence: req.setPresence, StatusMsg: statusOf(cur)})
	if err != nil {
		return err
	}
	_, err = s.submit.Submit(ctx, cmd)
	return err
}

func statusOf(st *presence.State) string {
	if st == nil {
		return ""
	}
	return st.StatusMsg
}
