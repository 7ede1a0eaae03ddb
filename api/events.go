package api

import (
	"encoding/json"
	"time"

	"chronicle/projections/rooms"
)

// clientEvent is the spec's ClientEvent (ClientEventWithoutRoomID in sync).
type clientEvent struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id,omitempty"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	Redacts        string          `json:"redacts,omitempty"`
	Unsigned       unsignedData    `json:"unsigned"`

	// shaped, when set, is the JSON sent instead: the event as a filter's
	// event_format and event_fields reshaped it (filters_render.go).
	shaped json.RawMessage
}

type unsignedData struct {
	Age           int64           `json:"age"`
	PrevContent   json.RawMessage `json:"prev_content,omitempty"`
	PrevSender    string          `json:"prev_sender,omitempty"`
	ReplacesState string          `json:"replaces_state,omitempty"`
	TransactionID string          `json:"transaction_id,omitempty"`

	// RedactedBecause is the redaction event of a redacted event.
	RedactedBecause *clientEvent `json:"redacted_because,omitempty"`
	// Relations is the bundled aggregation of the event's children
	// (m.thread, m.replace, m.reference); bundleAggregations in
	// relations.go fills it for a slice of events.
	Relations map[string]any `json:"m.relations,omitempty"`
}

// viewer says who an event is rendered for: transaction_id is shown only
// to the device that sent the event.
type viewer struct {
	UserID   string
	DeviceID string
	// OmitRoomID renders the sync form, where the room ID is the map key.
	OmitRoomID bool
}

func (v viewer) render(ev *rooms.Event) clientEvent {
	ce := clientEvent{
		Content: ev.Content, EventID: ev.EventID, OriginServerTS: ev.OriginServerTS,
		Sender: ev.Sender, StateKey: ev.StateKey, Type: ev.Type, Redacts: ev.Redacts,
	}
	if !v.OmitRoomID {
		ce.RoomID = ev.RoomID
	}
	if len(ce.Content) == 0 {
		ce.Content = json.RawMessage("{}")
	}
	ce.Unsigned = unsignedData{
		Age:         max(time.Now().UnixMilli()-ev.OriginServerTS, 0),
		PrevContent: ev.PrevContent, PrevSender: ev.PrevSender, ReplacesState: ev.ReplacesState,
	}
	if ev.TxnID != "" && ev.Sender == v.UserID && ev.DeviceID == v.DeviceID {
		ce.Unsigned.TransactionID = ev.TxnID
	}
	if ev.RedactedBecause != nil {
		because := *ev.RedactedBecause
		because.RoomID = ev.RoomID
		rendered := v.render(&because)
		ce.Unsigned.RedactedBecause = &rendered
	}
	return ce
}

func (v viewer) renderAll(evs []*rooms.Event) []clientEvent {
	out := make([]clientEvent, 0, len(evs))
	for _, ev := range evs {
		out = append(out, v.render(ev))
	}
	return out
}
