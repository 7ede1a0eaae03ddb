package machine

import (
	"encoding/json"

	"maunium.net/go/mautrix/id"

	"chronicle/projections/rooms"
)

// roomVersion returns the version of an existing room, or a rejection.
func (x *applyCtx) roomVersion(roomID string, missing Kind) (id.RoomVersion, *Rejection, error) {
	room, err := rooms.GetRoom(x.b, roomID)
	if err != nil {
		return "", nil, err
	}
	if room == nil {
		if missing == KindForbidden {
			// Do not reveal whether a room exists to someone not in it.
			return "", reject(KindForbidden, "you are not in room %s", roomID), nil
		}
		return "", reject(missing, "unknown room %s", roomID), nil
	}
	return id.RoomVersion(room.Version), nil, nil
}

// priorTxn answers a retried client transaction (possibly after a leader
// change) with the event it produced the first time; nil if it is new.
func (x *applyCtx) priorTxn(roomID, txnID string) (*Result, error) {
	if txnID == "" {
		return nil, nil
	}
	key := rooms.TxnKey(x.cmd.Actor, x.cmd.Device, roomID, txnID)
	if !x.m.txns.mayContain(key) {
		return nil, nil // never recorded (txnfilter.go)
	}
	prior, err := rooms.TxnEventID(x.b, key)
	if err != nil || prior == "" {
		return nil, err
	}
	return &Result{EventID: prior, RoomID: roomID}, nil
}

func (x *applyCtx) sendEvent() (*Result, error) {
	var p SendEvent
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	if res, err := x.priorTxn(p.RoomID, p.TxnID); res != nil || err != nil {
		return res, err
	}
	version, rej, err := x.roomVersion(p.RoomID, KindForbidden)
	if err != nil || rej != nil {
		return &Result{Err: rej}, err
	}
	if !isJSONObject(p.Content) {
		return &Result{Err: reject(KindBadJSON, "event content must be a JSON object")}, nil
	}
	if p.Type == "m.room.create" {
		return &Result{Err: reject(KindForbidden, "a room has exactly one m.room.create event")}, nil
	}
	if p.Type == "m.room.redaction" && p.StateKey == nil {
		return x.redactFromSend(&p) // the redaction power rule applies (redact.go)
	}
	if rej, err := x.checkCanonicalAlias(p.RoomID, p.Type, p.StateKey, p.Content); err != nil || rej != nil {
		return &Result{Err: rej}, err
	}
	evID, _, rej, err := x.appendEvent(&newEvent{
		RoomID: p.RoomID, Version: version, Type: p.Type, StateKey: p.StateKey,
		Content: json.RawMessage(p.Content), TxnID: p.TxnID,
	})
	if err != nil || rej != nil {
		return &Result{Err: rej}, err
	}
	return &Result{EventID: evID, RoomID: p.RoomID}, nil
}

func (x *applyCtx) membership() (*Result, error) {
	var p Membership
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	missing := KindForbidden
	if p.Membership == "join" || p.Membership == "knock" {
		missing = KindNotFound
	}
	version, rej, err := x.roomVersion(p.RoomID, missing)
	if err != nil || rej != nil {
		return &Result{Err: rej}, err
	}
	if !ValidUserID(p.Target) {
		return &Result{Err: reject(KindInvalidParam, "invalid user ID %q", p.Target)}, nil
	}
	membership := p.Membership
	if p.Membership == "unban" {
		if m, err := rooms.GetMembership(x.b, p.Target, p.RoomID); err != nil {
			return nil, err
		} else if m == nil || m.Membership != "ban" {
			return &Result{Err: reject(KindForbidden, "%s is not banned", p.Target)}, nil
		}
	}
	if membership == "kick" || membership == "unban" {
		// Both are a leave set by someone else; the auth rules tell them
		// apart by the target's current membership and the sender's power.
		membership = "leave"
	}
	if p.Membership == "join" {
		// Joining again while joined is a no-op per the spec; answer with
		// the existing membership event.
		if m, err := rooms.GetMembership(x.b, p.Target, p.RoomID); err != nil {
			return nil, err
		} else if m != nil && m.Membership == "join" {
			return &Result{RoomID: p.RoomID, EventID: m.EventID}, nil
		}
	}
	content := map[string]any{"membership": membership}
	if p.Reason != "" {
		content["reason"] = p.Reason
	}
	if p.IsDirect {
		content["is_direct"] = true
	}
	if p.DisplayName != "" {
		content["displayname"] = p.DisplayName
	}
	if p.AvatarURL != "" {
		content["avatar_url"] = p.AvatarURL
	}
	if membership == "join" || membership == "invite" || membership == "knock" {
		if err := x.withProfile(p.Target, content); err != nil { // profile.go
			return nil, err
		}
	}
	if membership == "join" {
		if rej, err := x.authoriseRestrictedJoin(p.RoomID, version, p.Target, content); err != nil || rej != nil {
			return &Result{Err: rej}, err
		}
	}
	evID, _, rej, err := x.appendState(p.RoomID, version, "m.room.member", p.Target, content)
	if err != nil || rej != nil {
		return &Result{Err: rej}, err
	}
	return &Result{EventID: evID, RoomID: p.RoomID}, nil
}
