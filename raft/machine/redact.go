package machine

import (
	"encoding/json"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"chronicle/projections/rooms"
)

// CmdRedact redacts an event (PUT /rooms/{roomId}/redact/{eventId}/{txnId},
// and m.room.redaction events sent through /send).
const CmdRedact = "redact"

// Redact asks for an m.room.redaction event of EventID in RoomID.
type Redact struct {
	RoomID  string `msgpack:"r"`
	EventID string `msgpack:"e"`
	// Content is the request body (a JSON object: reason and whatever
	// else the client put there); the machine sets content.redacts in the
	// room versions that keep it there.
	Content json.RawMessage `msgpack:"c"`
	TxnID   string          `msgpack:"x"`
}

// redact decides a redaction. The order of the checks matters: whether
// the target exists is told only to members of the room, so that nobody
// can probe another room's event IDs.
//
//   - The sender must be joined (the auth rules would refuse anyway).
//   - The target must be an event of this room: an unknown event ID, or
//     the ID of another room's event, is 404 M_NOT_FOUND. (Synapse accepts
//     a redaction of an unknown event, which matters only with federation,
//     where the target may arrive later, and answers 400 for another room's
//     event, which tells the caller the event exists. One homeserver on a
//     linear log has every event of its rooms, so 404 is the useful answer
//     and reveals nothing.)
//   - m.room.create and m.room.server_acl events cannot be redacted (403,
//     as in Synapse): their redacted forms would change who may take part.
//   - The spec's redaction power rule: another user's event needs the
//     room's "redact" level; one's own events need only the level to send
//     m.room.redaction, which the auth rules check.
//   - content.redacts, if given, must name the same event (400
//     M_INVALID_PARAM); room versions 11+ carry it there, 1-10 at the top
//     level.
func (x *applyCtx) redact() (*Result, error) {
	var p Redact
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	return x.redactEvent(&p)
}

func (x *applyCtx) redactEvent(p *Redact) (*Result, error) {
	if res, err := x.priorTxn(p.RoomID, p.TxnID); res != nil || err != nil {
		return res, err
	}
	version, rej, err := x.roomVersion(p.RoomID, KindForbidden)
	if err != nil || rej != nil {
		return &Result{Err: rej}, err
	}
	content := map[string]json.RawMessage{}
	if len(p.Content) > 0 && (!isJSONObject(p.Content) || json.Unmarshal(p.Content, &content) != nil) {
		return &Result{Err: reject(KindBadJSON, "redaction content must be a JSON object")}, nil
	}
	if content == nil {
		content = map[string]json.RawMessage{}
	}
	if raw, ok := content["redacts"]; ok {
		var named string
		if json.Unmarshal(raw, &named) != nil || named != p.EventID {
			return &Result{Err: reject(KindInvalidParam, "content.redacts does not name the event being redacted")}, nil
		}
	}
	if m, err := rooms.GetMembership(x.b, x.cmd.Actor, p.RoomID); err != nil {
		return nil, err
	} else if m == nil || m.Membership != "join" {
		return &Result{Err: reject(KindForbidden, "you are not in room %s", p.RoomID)}, nil
	}
	ref, err := rooms.LocateEvent(x.b, p.EventID)
	if err != nil {
		return nil, err
	}
	if ref == nil || ref.RoomID != p.RoomID {
		return &Result{Err: reject(KindNotFound, "event %s not found in room %s", p.EventID, p.RoomID)}, nil
	}
	target, err := rooms.GetEvent(x.b, p.RoomID, ref.Seq)
	if err != nil {
		return nil, err
	}
	if target == nil {
		return &Result{Err: reject(KindNotFound, "event %s not found in room %s", p.EventID, p.RoomID)}, nil
	}
	if target.StateKey != nil && (target.Type == "m.room.create" || target.Type == "m.room.server_acl") {
		return &Result{Err: reject(KindForbidden, "redacting %s events is not permitted", target.Type)}, nil
	}
	if target.Sender != x.cmd.Actor {
		pl, err := x.currentPower(p.RoomID, version)
		if err != nil {
			return nil, err
		}
		if have, need := pl.GetUserLevel(id.UserID(x.cmd.Actor)), pl.Redact(); have < need {
			return &Result{Err: reject(KindForbidden, "redacting another user's event needs power level %d; you have %d", need, have)}, nil
		}
	}
	ev := &newEvent{RoomID: p.RoomID, Version: version, Type: "m.room.redaction", TxnID: p.TxnID}
	if version.RedactsInContent() {
		content["redacts"], _ = json.Marshal(p.EventID)
	} else {
		ev.Redacts = p.EventID
	}
	raw, err := json.Marshal(content) // map keys marshal sorted: deterministic
	if err != nil {
		return &Result{Err: reject(KindBadJSON, "redaction content: %v", err)}, nil
	}
	ev.Content = raw
	evID, _, rej, err := x.appendEvent(ev)
	if err != nil || rej != nil {
		return &Result{Err: rej}, err
	}
	// The target's parsed PDU may sit in the cache unredacted; auth rules
	// must read its redacted form from now on (pduAt redacts on load).
	x.m.pdus.drop(p.EventID)
	return &Result{EventID: evID, RoomID: p.RoomID}, nil
}

// redactFromSend handles an m.room.redaction event sent through /send,
// which clients may use in every room version (spec v1.18): it names its
// target in content.redacts and passes the same checks as /redact.
func (x *applyCtx) redactFromSend(p *SendEvent) (*Result, error) {
	var c struct {
		Redacts *string `json:"redacts"`
	}
	if !isJSONObject(p.Content) || json.Unmarshal(p.Content, &c) != nil || c.Redacts == nil || *c.Redacts == "" {
		return &Result{Err: reject(KindBadJSON, "an m.room.redaction event needs content.redacts naming an event")}, nil
	}
	return x.redactEvent(&Redact{RoomID: p.RoomID, EventID: *c.Redacts, Content: p.Content, TxnID: p.TxnID})
}

// drop removes an event from the cache of parsed PDUs (after it was
// redacted, the one change an accepted event can undergo).
func (c *pduCache) drop(eventID string) {
	c.mu.Lock()
	delete(c.m, eventID)
	c.mu.Unlock()
}

// redactLoaded applies a stored redaction to a PDU just read from the log,
// so that the auth rules see redacted events as the spec says they behave:
// "as though their properties were simply not specified, except those
// protected by the redaction algorithm".
func (x *applyCtx) redactLoaded(p *pdu.PDU, roomID, version string, seq uint64) error {
	ev, err := rooms.GetEvent(x.b, roomID, seq)
	if err != nil || ev == nil || ev.RedactedBecause == nil {
		return err
	}
	p.Redact(id.RoomVersion(version))
	return nil
}
