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
func (Projection) Version() uint32 { return 3 }
func (Projection) Prefix() byte    { return Prefix }

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
	room := &Room{}
	if p.Type == "m.room.create" && p.StateKey != nil && *p.StateKey == "" {
		room = &Room{Version: f.RoomVersion, CreateEventID: f.EventID, Creator: p.Sender}
	} else if found, err := projections.GetMsgpack(w, roomKey(f.RoomID), room); err != nil {
		return err
	} else if !found {
		return fmt.Errorf("event %s for unknown room %s", f.EventID, f.RoomID)
	}
	room.LastEventID, room.Depth, room.LastSeq = f.EventID, p.Depth, rec.Seq

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
	if err := projections.SetMsgpack(w, eventKey(f.RoomID, rec.Seq), &ev); err != nil {
		return err
	}
	if err := projections.SetMsgpack(w, eventIDKey(f.EventID), &EventRef{RoomID: f.RoomID, Seq: rec.Seq}); err != nil {
		return err
	}
	if f.TxnID != "" {
		if err := w.Set(txnKey(p.Sender, f.DeviceID, f.RoomID, f.TxnID), []byte(f.EventID), nil); err != nil {
			return fmt.Errorf("record txn of %s: %w", f.EventID, err)
		}
	}
	return projections.SetMsgpack(w, roomKey(f.RoomID), room)
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
	if err := w.Set(historyPrefix(roomID, ev.Type, sk).U64(ev.Seq), []byte(ev.EventID), nil); err != nil {
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
