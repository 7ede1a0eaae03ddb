package rooms

import (
	jsonv2 "encoding/json/v2"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Reads that serve the client API's filters (api/filters.go): the state
// of a room without one event type, so that lazy-loading members never
// reads a large room's member list, and an event's federation form for
// event_format "federation".

// StateAtExcept is StateAt without the entries of one event type: the
// room's state after every event at or before seq (0: now), in (type,
// state_key) order, skipping the whole key range of skipType.
func StateAtExcept(r pebble.Reader, roomID string, seq uint64, skipType string) ([]*Event, error) {
	p := statePrefix(roomID)
	skip := projections.Key(p).Str(skipType)
	before, err := stateRangeAt(r, roomID, p, p, skip, seq)
	if err != nil {
		return nil, err
	}
	after, err := stateRangeAt(r, roomID, p, skip.End(), p.End(), seq)
	if err != nil {
		return nil, err
	}
	return append(before, after...), nil
}

// stateRangeAt reads the current-state entries in [lower, upper) (keys
// under p) and resolves each to the event in force at seq.
func stateRangeAt(r pebble.Reader, roomID string, p projections.Key, lower, upper []byte, seq uint64) ([]*Event, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("state of %s: %w", roomID, err)
	}
	defer it.Close()
	var out []*Event
	for it.First(); it.Valid(); it.Next() {
		var ref StateRef
		if err := decode(it.Value(), &ref); err != nil {
			return nil, err
		}
		evType, sk := splitStateKey(it.Key()[len(p):])
		ev, err := stateEventAt(r, roomID, evType, sk, ref, seq)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			out = append(out, ev)
		}
	}
	return out, it.Error()
}

// FederationJSON returns ev's PDU as the log recorded it (the federation
// form of the event), redacted by the room version's algorithm if the
// event has been redacted. ev must have been read from this projection
// (its Seq locates the record).
func FederationJSON(r pebble.Reader, ev *Event) ([]byte, error) {
	rec, err := rlog.Get(r, ev.Seq)
	if err != nil {
		return nil, err
	}
	if rec.Type != facts.TypeRoomEvent {
		return nil, fmt.Errorf("record %d holds %s, not event %s", ev.Seq, rec.Type, ev.EventID)
	}
	var f facts.RoomEvent
	if err := facts.Decode(rec.Body, &f); err != nil {
		return nil, err
	}
	if f.EventID != ev.EventID {
		return nil, fmt.Errorf("record %d holds event %s, not %s", ev.Seq, f.EventID, ev.EventID)
	}
	if ev.RedactedBecause == nil {
		return f.PDU, nil
	}
	var p pdu.PDU
	if err := jsonv2.Unmarshal(f.PDU, &p); err != nil {
		return nil, fmt.Errorf("parse PDU %s: %w", ev.EventID, err)
	}
	p.Redact(id.RoomVersion(f.RoomVersion))
	return jsonv2.Marshal(&p)
}
