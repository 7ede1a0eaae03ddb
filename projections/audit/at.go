package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"maunium.net/go/mautrix/id"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/accounts"
	"chronicle/projections/facts"
	"chronicle/projections/rooms"
)

// ClientEvent is the spec's ClientEvent as the server renders it, plus
// the position of the event's record (an auditor's addition).
type ClientEvent struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	Redacts        string          `json:"redacts,omitempty"`
	Unsigned       Unsigned        `json:"unsigned"`
	Position       uint64          `json:"position"`
}

// Unsigned is the event's unsigned block; Age is counted to the time of
// the record at the queried position.
type Unsigned struct {
	Age             int64           `json:"age"`
	PrevContent     json.RawMessage `json:"prev_content,omitempty"`
	PrevSender      string          `json:"prev_sender,omitempty"`
	ReplacesState   string          `json:"replaces_state,omitempty"`
	RedactedBecause *ClientEvent    `json:"redacted_because,omitempty"`
}

// UserRoom is a user's membership in one room.
type UserRoom struct {
	RoomID     string `json:"room_id"`
	Membership string `json:"membership"`
}

// Device is one of a user's devices.
type Device struct {
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name,omitempty"`
	LastSeenTS  int64  `json:"last_seen_ts"`
}

// DeviceKeys is one device's end-to-end encryption keys.
type DeviceKeys struct {
	DeviceID string `json:"device_id"`
	// Identity is the DeviceKeys object the device uploaded (absent if
	// none).
	Identity json.RawMessage `json:"device_keys,omitempty"`
	// OneTimeKeyCounts counts the unclaimed one-time keys per algorithm.
	OneTimeKeyCounts map[string]int `json:"one_time_key_counts"`
	FallbackKeys     []FallbackKey  `json:"fallback_keys,omitempty"`
}

// FallbackKey is one of a device's fallback keys.
type FallbackKey struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	Used      bool   `json:"used"`
}

// Answer is a point-in-time answer.
type Answer struct {
	Position uint64 `json:"position"`
	Time     string `json:"time,omitempty"`
	RoomID   string `json:"room_id,omitempty"`
	UserID   string `json:"user_id,omitempty"`
	What     string `json:"what"`
	// Method says how it was answered: "history" (the projections' state
	// history by position, in the live store) or "replay" (the log
	// replayed up to Position into a scratch store).
	Method  string        `json:"method"`
	Events  []ClientEvent `json:"events,omitempty"`
	Rooms   []UserRoom    `json:"rooms,omitempty"`
	Devices []Device      `json:"devices,omitempty"`
	// Keys are the user's devices' keys and CrossSigning their
	// cross-signing keys by usage ("keys").
	Keys         []DeviceKeys               `json:"keys,omitempty"`
	CrossSigning map[string]json.RawMessage `json:"cross_signing_keys,omitempty"`
	// Profile is the user's profile fields, as GET /profile/{userId}
	// answered then ("profile").
	Profile map[string]json.RawMessage `json:"profile,omitempty"`
	timeMS  int64
}

// ErrNotRecorded answers questions about data this server does not keep.
var ErrNotRecorded = errors.New("not recorded")

// RoomQuestions and UserQuestions are what at can answer.
var (
	RoomQuestions = []string{"state", "members", "timeline"}
	UserQuestions = []string{"rooms", "devices", "keys", "profile"}
)

// AtOptions shape a point-in-time query.
type AtOptions struct {
	// Limit bounds a timeline (default 10, as sync's).
	Limit int
	// Replay answers room questions by replaying the log into a scratch
	// store instead of reading the live store's history (a cross-check).
	Replay bool
}

// RoomAt answers a question ("state", "members", "timeline") about a room
// as of position seq.
func (e *Env) RoomAt(src pebble.Reader, seq uint64, roomID, what string, o AtOptions) (*Answer, error) {
	if !slices.Contains(RoomQuestions, what) {
		return nil, questionf("unknown question %q about a room: ask %v", what, RoomQuestions)
	}
	ans, err := newAnswer(src, seq, what)
	if err != nil {
		return nil, err
	}
	ans.RoomID = roomID
	if o.Limit <= 0 {
		o.Limit = 10
	}
	ask := func(r pebble.Reader, p *pit) error {
		room, err := rooms.GetRoom(r, roomID)
		if err != nil {
			return err
		}
		if room == nil {
			return questionf("room %s is unknown to this server", roomID)
		}
		create, err := rooms.CreateEvent(r, roomID)
		if err != nil {
			return err
		}
		if create == nil || create.Seq > seq {
			return questionf("room %s did not exist yet at position %d", roomID, seq)
		}
		var evs []*rooms.Event
		switch what {
		case "state", "members":
			if evs, err = rooms.StateAt(r, roomID, p.query); err != nil {
				return err
			}
			if what == "members" {
				evs = slices.DeleteFunc(evs, func(ev *rooms.Event) bool { return ev.Type != "m.room.member" })
			}
		case "timeline":
			upTo := seq
			if p.query == 0 {
				upTo = room.LastSeq
			}
			if evs, _, err = rooms.Events(r, roomID, 0, upTo, o.Limit, true); err != nil {
				return err
			}
			slices.Reverse(evs)
		}
		for _, ev := range evs {
			ce, err := p.render(ev)
			if err != nil {
				return err
			}
			ans.Events = append(ans.Events, ce)
		}
		return nil
	}
	if o.Replay {
		ans.Method = "replay"
		err = e.ReplayTo(src, seq, "rooms", func(r pebble.Reader) error {
			return ask(r, &pit{r: r, log: src, seq: seq, query: 0, at: ans.timeMS})
		})
	} else {
		ans.Method = "history"
		err = ask(src, &pit{r: src, log: src, seq: seq, query: seq, at: ans.timeMS})
	}
	if err != nil {
		return nil, err
	}
	if ans.Events == nil {
		ans.Events = []ClientEvent{}
	}
	return ans, nil
}

// UserAt answers a question ("rooms", "devices", "keys", "profile") about
// a user as of position seq.
func (e *Env) UserAt(src pebble.Reader, seq uint64, userID, what string) (*Answer, error) {
	if !slices.Contains(UserQuestions, what) {
		return nil, questionf("unknown question %q about a user: ask %v", what, UserQuestions)
	}
	ans, err := newAnswer(src, seq, what)
	if err != nil {
		return nil, err
	}
	ans.UserID = userID
	switch what {
	case "rooms":
		// Memberships have history by position in the rooms projection.
		ans.Method = "history"
		urs, err := rooms.UserRooms(src, userID)
		if err != nil {
			return nil, err
		}
		ans.Rooms = []UserRoom{}
		for _, ur := range urs {
			m, err := rooms.MembershipAt(src, ur.RoomID, userID, seq)
			if err != nil {
				return nil, err
			}
			if m != "" {
				ans.Rooms = append(ans.Rooms, UserRoom{RoomID: ur.RoomID, Membership: m})
			}
		}
	case "devices":
		// Accounts keep no history: replay the log up to seq.
		ans.Method = "replay"
		err := e.ReplayTo(src, seq, "accounts", func(r pebble.Reader) error {
			ids, err := deviceIDsAt(r, seq, userID)
			if err != nil {
				return err
			}
			ans.Devices = []Device{}
			for _, id := range ids {
				d, err := accounts.GetDevice(r, userID, id)
				if err != nil {
					return err
				}
				if d != nil {
					ans.Devices = append(ans.Devices, Device{DeviceID: id, DisplayName: d.DisplayName, LastSeenTS: d.LastSeenTS})
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	case "keys":
		// Like devices: the keys projection keeps no history.
		ans.Method = "replay"
		if err := e.ReplayTo(src, seq, "e2ekeys", func(r pebble.Reader) error { return keysAt(r, seq, userID, ans) }); err != nil {
			return nil, err
		}
	case "profile":
		// Profiles have history by position in the profiles projection.
		ans.Method = "history"
		if err := profileAt(src, seq, userID, ans); err != nil {
			return nil, err
		}
	}
	return ans, nil
}

func newAnswer(src pebble.Reader, seq uint64, what string) (*Answer, error) {
	head, err := rlog.ReadHead(src)
	if err != nil {
		return nil, err
	}
	if seq == 0 || seq > head.Seq {
		return nil, questionf("position %d is not in the log (1 to %d)", seq, head.Seq)
	}
	rec, err := rlog.Get(src, seq)
	if err != nil {
		return nil, err
	}
	return &Answer{Position: seq, Time: FormatTime(rec.Time), What: what, timeMS: rec.Time}, nil
}

// ReplayTo folds the log up to position seq into a scratch store, through
// the projections up to and including the one named (those it may read),
// and calls fn on it: the generic way to see any projection as it was.
func (e *Env) ReplayTo(src pebble.Reader, seq uint64, name string, fn func(r pebble.Reader) error) error {
	k := -1
	for i, p := range e.Engine.Projections() {
		if p.Name() == name {
			k = i
		}
	}
	if k < 0 {
		return fmt.Errorf("no projection %q", name)
	}
	sc, err := e.newScratch("")
	if err != nil {
		return err
	}
	defer sc.close()
	f := projections.NewFolds(e.Engine.Sub(k + 1))
	if _, err := f.Replay(sc.db, src, projections.ReplayOptions{To: seq,
		Progress: func(done uint64) { e.progress("replay", done, seq) }}); err != nil {
		return err
	}
	return fn(sc.db)
}

// pit renders events as the server served them at position seq.
type pit struct {
	r     pebble.Reader // where events are read
	log   pebble.Reader // where records are read
	seq   uint64        // the position asked about
	query uint64        // the position passed to history queries (0: current)
	at    int64         // time of the record at seq
}

func (p *pit) render(ev *rooms.Event) (ClientEvent, error) {
	ev, err := p.asOf(ev)
	if err != nil {
		return ClientEvent{}, err
	}
	return p.client(ev), nil
}

func (p *pit) client(ev *rooms.Event) ClientEvent {
	ce := ClientEvent{
		Content: ev.Content, EventID: ev.EventID, OriginServerTS: ev.OriginServerTS, RoomID: ev.RoomID,
		Sender: ev.Sender, StateKey: ev.StateKey, Type: ev.Type, Redacts: ev.Redacts, Position: ev.Seq,
		Unsigned: Unsigned{Age: max(p.at-ev.OriginServerTS, 0), PrevContent: ev.PrevContent, PrevSender: ev.PrevSender, ReplacesState: ev.ReplacesState},
	}
	if len(ce.Content) == 0 {
		ce.Content = json.RawMessage("{}")
	}
	if ev.RedactedBecause != nil {
		b := *ev.RedactedBecause
		b.RoomID = ev.RoomID
		rb := p.client(&b)
		ce.Unsigned.RedactedBecause = &rb
	}
	return ce
}

// asOf undoes what happened to a stored event after position seq:
// redactions rewrite stored events in place (the log keeps the original
// PDU), so an event redacted later is restored from its record, and so are
// a prev_content copied from a state event redacted later and the
// redacted_because copy of a redaction redacted later.
func (p *pit) asOf(ev *rooms.Event) (*rooms.Event, error) {
	out := *ev
	later := func(e *rooms.Event) bool {
		return e != nil && e.RedactedBecause != nil && e.RedactedBecause.Seq > p.seq
	}
	if later(ev) {
		if err := p.restore(&out); err != nil {
			return nil, err
		}
		out.RedactedBecause = nil
	} else if ev.RedactedBecause != nil {
		b := *ev.RedactedBecause
		inner, err := rooms.GetEvent(p.r, ev.RoomID, b.Seq)
		if err != nil {
			return nil, err
		}
		if later(inner) {
			if err := p.restore(&b); err != nil {
				return nil, err
			}
		}
		out.RedactedBecause = &b
	}
	if out.ReplacesState != "" && out.PrevContent != nil {
		pred, err := rooms.EventByID(p.r, out.ReplacesState)
		if err != nil {
			return nil, err
		}
		if later(pred) {
			orig := *pred
			if err := p.restore(&orig); err != nil {
				return nil, err
			}
			out.PrevContent = orig.Content
		}
	}
	return &out, nil
}

// restore sets ev's content (and redacts) back to its PDU's, normalised as
// the rooms projection does when it folds the event.
func (p *pit) restore(ev *rooms.Event) error {
	rec, err := rlog.Get(p.log, ev.Seq)
	if err != nil {
		return fmt.Errorf("record %d of event %s: %w", ev.Seq, ev.EventID, err)
	}
	var f facts.RoomEvent
	if rec.Type != facts.TypeRoomEvent || facts.Decode(rec.Body, &f) != nil || f.EventID != ev.EventID {
		return fmt.Errorf("record %d does not hold event %s", ev.Seq, ev.EventID)
	}
	var pdu struct {
		Content json.RawMessage `json:"content"`
		Redacts string          `json:"redacts"`
	}
	if err := json.Unmarshal(f.PDU, &pdu); err != nil {
		return fmt.Errorf("PDU of %s: %w", ev.EventID, err)
	}
	ev.Content, ev.Redacts = pdu.Content, pdu.Redacts
	if ev.Type == "m.room.redaction" && ev.StateKey == nil {
		normaliseRedaction(ev, id.RoomVersion(f.RoomVersion))
	}
	return nil
}

// normaliseRedaction is the rooms projection's normalisation of a
// redaction event (projections/rooms/redact.go): both forms of "redacts".
func normaliseRedaction(ev *rooms.Event, version id.RoomVersion) {
	var content map[string]json.RawMessage
	_ = json.Unmarshal(ev.Content, &content)
	var inContent string
	_ = json.Unmarshal(content["redacts"], &inContent)
	if version.RedactsInContent() {
		ev.Redacts = inContent
		return
	}
	if ev.Redacts == "" || inContent != "" || content["redacts"] != nil {
		return
	}
	if content == nil {
		content = map[string]json.RawMessage{}
	}
	content["redacts"], _ = json.Marshal(ev.Redacts)
	if raw, err := json.Marshal(content); err == nil {
		ev.Content = raw
	}
}
