package machine

import (
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	rlog "chronicle/log"
	"chronicle/projections/facts"
	"chronicle/projections/rooms"
)

// maxPDUSize is the spec's limit on an event's canonical JSON (65536 bytes).
const maxPDUSize = 65536

// newEvent is an event the machine is about to author.
type newEvent struct {
	RoomID   string // "" only for a v12+ create event, whose ID names the room
	Version  id.RoomVersion
	Type     string
	StateKey *string
	Content  jsontext.Value
	Redacts  string
	TxnID    string
}

// appendEvent builds the PDU for ev on top of the room's current head,
// authorises it with the room version's auth rules against the current
// state, and appends it. It returns the event ID and room ID, or a
// rejection.
func (x *applyCtx) appendEvent(ev *newEvent) (eventID, roomID string, rej *Rejection, err error) {
	p := &pdu.PDU{
		Type:           ev.Type,
		StateKey:       ev.StateKey,
		Content:        ev.Content,
		Sender:         id.UserID(x.cmd.Actor),
		OriginServerTS: x.cmd.Time,
		RoomID:         id.RoomID(ev.RoomID),
		AuthEvents:     []id.EventID{},
		PrevEvents:     []id.EventID{},
		Depth:          1,
	}
	if ev.Redacts != "" {
		r := id.EventID(ev.Redacts)
		p.Redacts = &r
	}
	var authEvents []*pdu.PDU
	isCreate := ev.Type == "m.room.create" && ev.StateKey != nil && *ev.StateKey == ""
	if !isCreate {
		room, err := rooms.GetRoom(x.b, ev.RoomID)
		if err != nil {
			return "", "", nil, err
		}
		if room == nil {
			return "", "", reject(KindNotFound, "unknown room %s", ev.RoomID), nil
		}
		p.Depth = room.Depth + 1
		p.PrevEvents = []id.EventID{id.EventID(room.LastEventID)}
		if authEvents, p.AuthEvents, err = x.selectAuthEvents(p, ev.Version); err != nil {
			return "", "", nil, err
		}
	}
	var v1 *pdu.RoomV1PDU // the stored form in room versions 1 and 2 (v1events.go)
	var evID id.EventID
	if customEventIDs(ev.Version) {
		evID, v1, rej, err = x.identifyV1(p, ev)
		roomID = ev.RoomID
	} else {
		evID, roomID, rej, err = x.identify(p, ev)
	}
	if err != nil || rej != nil {
		return "", "", rej, err
	}
	checked, getKey, err := x.authTarget(p, ev.Version)
	if err != nil {
		return "", "", nil, err
	}
	if err := eventauth.Authorize(ev.Version, checked, authEvents, x.getEvents, getKey); err != nil {
		return "", "", reject(KindForbidden, "%v", err), nil
	}
	if rej, err := x.authorizeV1(p, ev.Version); err != nil || rej != nil {
		return "", "", rej, err
	}
	raw, err := marshalPDU(p, v1)
	if err != nil {
		return "", "", nil, fmt.Errorf("marshal PDU: %w", err)
	}
	if len(raw) > maxPDUSize {
		return "", "", reject(KindTooLarge, "event is larger than %d bytes", maxPDUSize), nil
	}
	f := &facts.RoomEvent{
		RoomID: roomID, EventID: string(evID), RoomVersion: string(ev.Version), PDU: raw,
		TxnID: ev.TxnID, DeviceID: txnDevice(ev.TxnID, x.cmd.Device),
	}
	if f.TxnID != "" {
		// The key the rooms fold records (the event's sender is the
		// actor), added first so the filter never misses a stored
		// transaction (txnfilter.go).
		x.m.txns.add(rooms.TxnKey(x.cmd.Actor, f.DeviceID, f.RoomID, f.TxnID))
	}
	if err := x.emit(facts.TypeRoomEvent, f); err != nil {
		return "", "", nil, err
	}
	return string(evID), roomID, nil, nil
}

// identify fills the content hash and computes the event ID (and, for a
// v12 create event, the room ID it names). Two creates by one user in the
// same millisecond would hash alike and name the same room; the machine
// then moves the later one's timestamp on by a millisecond until the room ID
// is new, which keeps deciding deterministic without random input.
func (x *applyCtx) identify(p *pdu.PDU, ev *newEvent) (id.EventID, string, *Rejection, error) {
	for attempt := 0; ; attempt++ {
		p.Hashes = nil
		if err := p.FillContentHash(); err != nil {
			return "", "", reject(KindBadJSON, "event content: %v", err), nil
		}
		evID, err := p.GetEventID(ev.Version)
		if err != nil {
			return "", "", reject(KindBadJSON, "event: %v", err), nil
		}
		if ev.RoomID != "" {
			return evID, ev.RoomID, nil, nil
		}
		rid, err := p.GetRoomID()
		if err != nil {
			return "", "", reject(KindBadJSON, "create event: %v", err), nil
		}
		existing, err := rooms.GetRoom(x.b, string(rid))
		if err != nil {
			return "", "", nil, err
		}
		if existing == nil {
			return evID, string(rid), nil, nil
		}
		if attempt > 1000 {
			return "", "", reject(KindBadState, "could not find a free room ID"), nil
		}
		p.OriginServerTS++
	}
}

func txnDevice(txnID, device string) string {
	if txnID == "" {
		return ""
	}
	return device
}

// selectAuthEvents loads the current state entries the auth rules ask for,
// with their event IDs.
func (x *applyCtx) selectAuthEvents(p *pdu.PDU, version id.RoomVersion) ([]*pdu.PDU, []id.EventID, error) {
	var out []*pdu.PDU
	ids := []id.EventID{}
	for _, key := range p.AuthEventSelection(version) {
		ref, err := rooms.CurrentStateRef(x.b, string(p.RoomID), key.Type, key.StateKey)
		if err != nil {
			return nil, nil, err
		}
		if ref == nil {
			continue
		}
		ae, err := x.pduAt(ref.EventID, ref.Seq)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, ae)
		ids = append(ids, id.EventID(ref.EventID))
	}
	return out, ids, nil
}

// pduAt loads the PDU recorded at a log position, through the machine's
// cache of parsed PDUs (auth events are read for nearly every event).
func (x *applyCtx) pduAt(eventID string, seq uint64) (*pdu.PDU, error) {
	if p := x.m.pdus.get(eventID); p != nil {
		return p, nil
	}
	rec, err := rlog.Get(x.b, seq)
	if err != nil {
		return nil, err
	}
	var f facts.RoomEvent
	if err := facts.Decode(rec.Body, &f); err != nil {
		return nil, err
	}
	p, err := parseStoredPDU(f.PDU, id.RoomVersion(f.RoomVersion))
	if err != nil {
		return nil, fmt.Errorf("parse PDU at %d: %w", seq, err)
	}
	if err := x.redactLoaded(p, f.RoomID, f.RoomVersion, seq); err != nil {
		return nil, err
	}
	// The auth rules ask a loaded event for its ID (eventauth reads the
	// create event as a client event on every check in v12 rooms); with the
	// known ID here, mautrix need not hash the event again each time
	// (pdu.UseInternalMetaForGetEventID, set in v1events.go). Redaction
	// does not change an event's ID.
	p.InternalMeta.EventID = id.EventID(eventID)
	x.m.pdus.put(eventID, p)
	return p, nil
}

// getEvents resolves event IDs for the auth rules (in v12, the create event
// named by the room ID).
func (x *applyCtx) getEvents(ids []id.EventID) ([]*pdu.PDU, error) {
	out := make([]*pdu.PDU, 0, len(ids))
	for _, eid := range ids {
		if p := x.m.pdus.get(string(eid)); p != nil {
			out = append(out, p)
			continue
		}
		ref, err := rooms.LocateEvent(x.b, string(eid))
		if err != nil {
			return nil, err
		}
		if ref == nil {
			continue
		}
		p, err := x.pduAt(string(eid), ref.Seq)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

var errNoKeys = errors.New("third-party invite signatures are not supported")

func noKeys(string, id.KeyID, time.Time) (id.SigningKey, time.Time, error) {
	return "", time.Time{}, errNoKeys
}
