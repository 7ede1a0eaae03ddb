package api

import (
	"encoding/json"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/rooms"
)

// A Filter's event_format and event_fields reshape the room events /sync
// returns (timeline, state, state_after). A reshaped event keeps its
// clientEvent fields, which the rest of the sync code reads, and carries
// the JSON to send in clientEvent.shaped.
//
// event_format "federation" is the event's PDU as the log recorded it
// (redacted by the room version's algorithm if it was redacted; see
// rooms.FederationJSON), plus event_id and the unsigned block a client
// would get, as Synapse serves it. event_fields then keeps only the
// listed dot-separated paths of that JSON (or of the client form), as
// Synapse does: a path whose parent is missing or not an object is left
// out, and an empty list keeps everything.

// MarshalJSONTo writes a reshaped event's JSON, or the event itself. The
// encoder's options (encoding/json's v1 semantics for echo's responses)
// carry through. The pointer receiver spares a copy per event; events are
// only reshaped in slices, whose elements are addressable, and a
// clientEvent marshalled as a bare value is never reshaped.
func (ce *clientEvent) MarshalJSONTo(enc *jsontext.Encoder) error {
	if ce.shaped != nil {
		return enc.WriteValue(jsontext.Value(ce.shaped))
	}
	return jsonv2.MarshalEncode(enc, (*clientEventJSON)(ce), enc.Options())
}

// clientEventJSON is clientEvent without its MarshalJSONTo.
type clientEventJSON clientEvent

// shapesEvents reports whether the filter reshapes events at all.
func (f *syncFilter) shapesEvents() bool {
	return len(f.fields) > 0 || f.EventFormat == eventFormatFederation
}

// shapeEvents applies event_format and event_fields to events rendered in
// roomID, in place.
func (f *syncFilter) shapeEvents(r pebble.Reader, roomID string, evs []clientEvent) error {
	if !f.shapesEvents() {
		return nil
	}
	var tree fieldTree
	if len(f.fields) > 0 {
		tree = buildFieldTree(f.fields)
	}
	for i := range evs {
		ce := &evs[i]
		if ce.shaped != nil {
			continue // already reshaped (a section shaped twice)
		}
		raw, err := json.Marshal(ce)
		if err != nil {
			return err
		}
		if f.EventFormat == eventFormatFederation {
			if raw, err = federationEvent(r, roomID, ce, raw); err != nil {
				return err
			}
		}
		if tree != nil {
			raw = tree.pick(raw)
		}
		ce.shaped = raw
	}
	return nil
}

// federationEvent renders ce (whose client form is clientJSON) as its
// PDU with event_id and the client's unsigned block added. An event the
// projection cannot locate keeps its client form.
func federationEvent(r pebble.Reader, roomID string, ce *clientEvent, clientJSON []byte) ([]byte, error) {
	ref, err := rooms.LocateEvent(r, ce.EventID)
	if err != nil {
		return nil, err
	}
	if ref == nil || ref.RoomID != roomID {
		return clientJSON, nil
	}
	ev, err := rooms.GetEvent(r, roomID, ref.Seq)
	if err != nil || ev == nil {
		return clientJSON, err
	}
	pduJSON, err := rooms.FederationJSON(r, ev)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(pduJSON, &obj); err != nil {
		return nil, err
	}
	var client struct {
		Unsigned json.RawMessage `json:"unsigned"`
	}
	if err := json.Unmarshal(clientJSON, &client); err != nil {
		return nil, err
	}
	obj["event_id"], _ = json.Marshal(ce.EventID)
	if _, ok := obj["room_id"]; !ok {
		obj["room_id"], _ = json.Marshal(roomID) // v12 create events carry none
	}
	if len(client.Unsigned) > 0 {
		obj["unsigned"] = client.Unsigned
	}
	return json.Marshal(obj)
}
