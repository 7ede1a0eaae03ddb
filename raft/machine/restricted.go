package machine

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"chronicle/projections/rooms"
)

// Restricted joins (room versions 8+, join rules restricted and, from v10,
// knock_restricted): a user who is neither invited nor joined may join if
// they are joined to one of the rooms the join rule's allow list names.
// The joining server proves it checked by naming, in the join's
// join_authorised_via_users_server, a joined user of its own with power to
// invite; the auth rules then check that user's power and membership.

// authoriseRestrictedJoin fills content.join_authorised_via_users_server
// for a join by user into a restricted room, or refuses the join when the
// allow rules are not met. It leaves every other join alone: a join the
// room's rules do not restrict, or one by a user already invited or joined
// (the auth rules let those through without an authoriser).
//
// The authoriser is the joined local user with power to invite whose user
// ID sorts first, so every node picks the same one.
func (x *applyCtx) authoriseRestrictedJoin(roomID string, version id.RoomVersion, user string, content map[string]any) (*Rejection, error) {
	if !version.RestrictedJoins() {
		return nil, nil
	}
	jrEv, err := rooms.StateEvent(x.b, roomID, "m.room.join_rules", "")
	if err != nil || jrEv == nil {
		return nil, err
	}
	var jr event.JoinRulesEventContent
	if json.Unmarshal(jrEv.Content, &jr) != nil {
		// The auth rules read only join_rule; a malformed allow list
		// allows nobody.
		jr = event.JoinRulesEventContent{JoinRule: event.JoinRule(stringField(jrEv.Content, "join_rule"))}
	}
	switch jr.JoinRule {
	case event.JoinRuleRestricted:
	case event.JoinRuleKnockRestricted:
		if !version.KnockRestricted() {
			return nil, nil
		}
	default:
		return nil, nil
	}
	if m, err := rooms.GetMembership(x.b, user, roomID); err != nil {
		return nil, err
	} else if m != nil && (m.Membership == "invite" || m.Membership == "join" || m.Membership == "ban") {
		// Invited and joined users need no authoriser; a ban is refused
		// by the auth rules with their own reason.
		return nil, nil
	}
	allowed := false
	for _, a := range jr.Allow {
		if a.Type != event.JoinRuleAllowRoomMembership || a.RoomID == "" {
			continue
		}
		m, err := rooms.GetMembership(x.b, user, string(a.RoomID))
		if err != nil {
			return nil, err
		}
		if m != nil && m.Membership == "join" {
			allowed = true
			break
		}
	}
	if !allowed {
		return reject(KindForbidden, "you are not invited to this room and not a member of any room its join rules allow"), nil
	}
	pl, err := x.currentPower(roomID, version)
	if err != nil {
		return nil, err
	}
	members, err := rooms.JoinedMembers(x.b, roomID) // in user ID order
	if err != nil {
		return nil, err
	}
	for _, u := range members {
		if id.UserID(u).Homeserver() != x.m.cfg.ServerName {
			continue
		}
		if pl.GetUserLevel(id.UserID(u)) >= pl.Invite() {
			content["join_authorised_via_users_server"] = u
			return nil, nil
		}
	}
	return reject(KindForbidden, "no user of this server who may invite is in the room to authorise the join"), nil
}

// Events are not signed yet: the server has no federation signing key
// until federation arrives. One auth rule reads a signature all the same:
// a join naming join_authorised_via_users_server must be signed by that
// user's server (rule 5.2). When that server is this one, the machine is
// the signer vouching for the event it is authoring right now, so it signs
// a transient copy with a key derived from the server name, used for this
// check only and never published, and checks that copy. The stored PDU
// stays unsigned like every other event here. Authorisers on other servers
// still fail the rule, as they must without their signature.
const localVouchKeyID id.KeyID = "ed25519:chronicle_local_vouch"

// authTarget returns the PDU the auth rules check for p and the key lookup
// they verify signatures with.
func (x *applyCtx) authTarget(p *pdu.PDU, version id.RoomVersion) (*pdu.PDU, pdu.GetKeyFunc, error) {
	if p.Type != "m.room.member" || !bytes.Contains(p.Content, []byte("join_authorised_via_users_server")) {
		return p, noKeys, nil // every other event, without parsing its content
	}
	via := stringField(p.Content, "join_authorised_via_users_server")
	if via == "" || id.UserID(via).Homeserver() != x.m.cfg.ServerName {
		return p, noKeys, nil
	}
	seed := sha256.Sum256([]byte("chronicle local vouch key/" + x.m.cfg.ServerName))
	priv := ed25519.NewKeyFromSeed(seed[:])
	signed := p.Clone()
	if err := signed.Sign(version, x.m.cfg.ServerName, localVouchKeyID, priv); err != nil {
		return nil, nil, err
	}
	pub := id.SigningKey(base64.RawStdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)))
	server := x.m.cfg.ServerName
	getKey := func(name string, keyID id.KeyID, at time.Time) (id.SigningKey, time.Time, error) {
		if name != server || keyID != localVouchKeyID {
			return noKeys(name, keyID, at)
		}
		return pub, at, nil
	}
	return signed, getKey, nil
}

// stringField reads a top-level string field of a JSON object ("" if the
// object or the field is not there or is not a string).
func stringField(raw []byte, name string) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return ""
	}
	var s string
	_ = json.Unmarshal(fields[name], &s)
	return s
}
