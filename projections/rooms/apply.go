package rooms

import (
	"encoding/json"
	"fmt"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Projection folds room events.
type Projection struct{}

func (Projection) Name() string    { return "rooms" }
func (Projection) Version() uint32 { return 4 }
func (Projection) Prefix() byte    { return Prefix }

// Prepare decodes a room event's body and PDU ahead of the fold (see
// projections.Preparer), for rooms and every later projection that reads
// it through facts.RoomEventOf. A record that does not decode is left for
// Apply to report.
func (Projection) Prepare(rec *rlog.Record) {
	if rec.Type == facts.TypeRoomEvent {
		_, _, _ = facts.RoomEventOf(rec)
	}
}

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	if rec.Type == facts.TypeRoomForgotten {
		return applyForgotten(w, rec)
	}
	if rec.Type != facts.TypeRoomEvent {
		return nil
	}
	f, p, err := facts.RoomEventOf(rec)
	if err != nil {
		return err
	}
	ev := Event{
		EventID: f.EventID, Type: p.Type, StateKey: p.StateKey, Sender: p.Sender,
		OriginServerTS: p.OriginServerTS, Content: p.Content, Redacts: p.Redacts,
		TxnID: f.TxnID, DeviceID: f.DeviceID, Depth: p.Depth, Seq: rec.Seq,
	}
	// The summary is written whole from the event (types.go): the state
	// machine appends events only to rooms it knows.
	room := Room{Version: f.RoomVersion, LastEventID: f.EventID, Depth: p.Depth, LastSeq: rec.Seq}

	if p.StateKey != nil {
		if err := applyState(w, f.RoomID, &ev); err != nil {
			return err
		}
	}
	// Redactions rewrite their target (redact.go); every event is indexed
	// by timestamp (timestamps.go).
	if err := foldRedaction(w, f.RoomID, f.RoomVersion, &ev); err != nil {
		return err
	}
	if err := indexTimestamp(w, f.RoomID, &ev); err != nil {
		return err
	}
	// One buffer for the three values: Set copies them into the batch.
	buf := appendEvent(make([]byte, 0, 256+len(ev.Content)), &ev)
	if err := setValue(w, eventKey(f.RoomID, rec.Seq), buf); err != nil {
		return err
	}
	buf = appendEventRef(buf[:0], &EventRef{RoomID: f.RoomID, Seq: rec.Seq})
	if err := setValue(w, eventIDKey(f.EventID), buf); err != nil {
		return err
	}
	if f.TxnID != "" {
		if err := w.Set(TxnKey(p.Sender, f.DeviceID, f.RoomID, f.TxnID), []byte(f.EventID), nil); err != nil {
			return fmt.Errorf("record txn of %s: %w", f.EventID, err)
		}
	}
	return setValue(w, roomKey(f.RoomID), appendRoom(buf[:0], &room))
}

// applyState moves the current state entry to ev, keeps its history and
// records what it replaced in ev for the client's unsigned block.
func applyState(w projections.Writer, roomID string, ev *Event) error {
	sk := *ev.StateKey
	var prev StateRef
	found, err := projections.GetMsgpack(w, stateKey(roomID, ev.Type, sk), &prev)
	if err != nil {
		return err
	}
	if found {
		var old Event
		ok, err := projections.GetMsgpack(w, eventKey(roomID, prev.Seq), &old)
		if err != nil {
			return err
		}
		if ok {
			ev.PrevContent, ev.PrevSender, ev.ReplacesState = old.Content, old.Sender, old.EventID
		}
	}
	if err := projections.SetMsgpack(w, stateKey(roomID, ev.Type, sk), &StateRef{EventID: ev.EventID, Seq: ev.Seq}); err != nil {
		return err
	}
	if err := w.Set(historyKey(roomID, ev.Type, sk, ev.Seq), []byte(ev.EventID), nil); err != nil {
		return fmt.Errorf("state history of %s: %w", ev.EventID, err)
	}
	if ev.Type != "m.room.member" {
		return nil
	}
	var content struct {
		Membership string `json:"membership"`
	}
	// Content was accepted by the auth rules, which require a membership.
	_ = json.Unmarshal(ev.Content, &content)
	return projections.SetMsgpack(w, memberKey(sk, roomID), &Membership{Membership: content.Membership, Seq: ev.Seq, EventID: ev.EventID})
}
