package machine

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	jsonv2 "encoding/json/v2"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"chronicle/projections/rooms"
)

// Room versions 1 and 2.
//
// Their events differ from later versions' in format only (the auth rules
// are v3's plus one rule for redactions, below; v2 changes only state
// resolution, which a linear log never runs):
//
//   - An event ID is "$opaque:server", chosen by the server that creates
//     the event, not a hash of the event. It is part of the event: the
//     stored PDU carries it in event_id, and the content hash covers it.
//   - prev_events and auth_events are [event_id, {"sha256": reference
//     hash}] pairs, the reference hash being the SHA-256 of the referenced
//     event in its redacted form, without signatures and unsigned (so a
//     later redaction never changes it).
//
// Stored PDUs are mautrix's pdu.RoomV1PDU. For the auth rules (eventauth
// takes *pdu.PDU) they are converted to a pdu.PDU holding the referenced
// event IDs, with the event's own ID in InternalMeta.EventID: mautrix
// computes a pdu.PDU's event ID as a reference hash, which does not exist
// for these versions, unless pdu.UseInternalMetaForGetEventID is set (the
// join rule "the only previous event is the m.room.create" compares event
// IDs). The machine sets it in init; it changes nothing for later room
// versions, whose PDUs never carry InternalMeta.EventID here.
//
// Choosing the IDs. Deciding must be deterministic, so the machine cannot
// draw random IDs itself. Every command carries a random Salt drawn by the
// API node that built it (NewCommand), and the machine derives the ID of
// each event it authors as
//
//	base64url(HMAC-SHA256(Salt, "chronicle v1 event id" || seq || attempt)[:18])
//
// where seq is the log sequence number the event's record will get, unique
// in the log, so IDs differ within a command and across commands even with
// an empty salt (commands built by hand) and are not predictable by anyone
// who does not see the command. attempt moves on in the vanishingly
// unlikely case that the ID is taken already. Every node computes the same
// IDs from the same command, and the salt itself stays only in the Raft
// log: records hold the resulting event IDs.
//
// Auth rules. eventauth implements the rules of every version through the
// room version's feature flags, so it handles v1 and v2 except for:
//
//   - rule 11 of v1/v2, m.room.redaction: allowed if the sender has the
//     redact level or the redacted event's ID has the redaction's domain.
//     eventauth has no such rule (from v3 it moved out of the auth rules),
//     so authorizeV1 adds it after eventauth allowed the event.
//   - rule 4 of v1-v5, m.room.aliases (allowed whenever the sender's domain
//     is the state key, even for non-members): eventauth omits it for all
//     of v1-v5, which makes those events need membership and the state
//     power level like other state. That is stricter than the spec, as it
//     already was for v3-v5, and is left so: m.room.aliases is deprecated
//     and no client needs to send it.
const v1RefHashKey = "chronicle_v1_reference_hash"

func init() { pdu.UseInternalMetaForGetEventID = true }

// customEventIDs reports whether a room version uses server-chosen event
// IDs and the v1 event format (versions 1 and 2).
func customEventIDs(v id.RoomVersion) bool { return v.EventIDFormat() == id.EventIDFormatCustom }

// newSalt draws a command's salt (on the API node, never while deciding).
func newSalt() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return b
}

// identifyV1 gives a v1/v2 event its ID and builds its stored form: p's
// references become [id, hashes] pairs, the content hash is filled in, and
// p (what the auth rules read) gets the same hashes and its ID in
// InternalMeta.
func (x *applyCtx) identifyV1(p *pdu.PDU, ev *newEvent) (id.EventID, *pdu.RoomV1PDU, *Rejection, error) {
	if ev.RoomID == "" {
		return "", nil, reject(KindInvalidParam, "room ID missing for room version %s", ev.Version), nil
	}
	evID, err := x.newV1EventID(ev.RoomID)
	if err != nil {
		return "", nil, nil, err
	}
	prev, err := x.v1References(p.PrevEvents)
	if err != nil {
		return "", nil, nil, err
	}
	auth, err := x.v1References(p.AuthEvents)
	if err != nil {
		return "", nil, nil, err
	}
	v1 := &pdu.RoomV1PDU{
		AuthEvents:     auth,
		Content:        p.Content,
		Depth:          p.Depth,
		EventID:        evID,
		OriginServerTS: p.OriginServerTS,
		PrevEvents:     prev,
		Redacts:        p.Redacts,
		RoomID:         p.RoomID,
		Sender:         p.Sender,
		StateKey:       p.StateKey,
		Type:           p.Type,
	}
	if err := v1.FillContentHash(); err != nil {
		return "", nil, reject(KindBadJSON, "event content: %v", err), nil
	}
	p.Hashes = v1.Hashes
	p.InternalMeta.EventID = evID
	return evID, v1, nil, nil
}

// newV1EventID derives a free event ID for the next record (see the top of
// this file).
func (x *applyCtx) newV1EventID(roomID string) (id.EventID, error) {
	server := x.m.cfg.ServerName
	if server == "" {
		_, _, server = id.ParseCommonIdentifier(roomID)
	}
	seq := x.m.log.Pending().Seq + 1
	var msg [8 + 8]byte
	binary.BigEndian.PutUint64(msg[:8], seq)
	for attempt := uint64(0); ; attempt++ {
		binary.BigEndian.PutUint64(msg[8:], attempt)
		mac := hmac.New(sha256.New, x.cmd.Salt)
		mac.Write([]byte("chronicle v1 event id"))
		mac.Write(msg[:])
		sum := mac.Sum(nil)
		evID := "$" + base64.RawURLEncoding.EncodeToString(sum[:18]) + ":" + server
		ref, err := rooms.LocateEvent(x.b, evID)
		if err != nil {
			return "", err
		}
		if ref == nil {
			return id.EventID(evID), nil
		}
	}
}

// v1References turns event IDs into [id, {sha256: reference hash}] pairs.
func (x *applyCtx) v1References(ids []id.EventID) ([]pdu.V1EventReference, error) {
	out := make([]pdu.V1EventReference, 0, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	evs, err := x.getEvents(ids)
	if err != nil {
		return nil, err
	}
	if len(evs) != len(ids) {
		return nil, fmt.Errorf("v1 references: found %d of events %v", len(evs), ids)
	}
	for i, ev := range evs {
		hash, _ := ev.InternalMeta.Extra[v1RefHashKey].([]byte)
		if len(hash) == 0 {
			return nil, fmt.Errorf("v1 references: event %s has no reference hash (not a v1 event?)", ids[i])
		}
		out = append(out, pdu.V1EventReference{ID: ids[i], Hashes: pdu.Hashes{SHA256: hash}})
	}
	return out, nil
}

// parseStoredPDU parses a PDU from the log into the form the auth rules
// read. v1/v2 PDUs are converted (see the top of this file), keeping their
// reference hash in InternalMeta for the events that will reference them.
func parseStoredPDU(raw []byte, version id.RoomVersion) (*pdu.PDU, error) {
	if !customEventIDs(version) {
		var p pdu.PDU
		if err := jsonv2.Unmarshal(raw, &p); err != nil {
			return nil, err
		}
		return &p, nil
	}
	var v1 pdu.RoomV1PDU
	if err := jsonv2.Unmarshal(raw, &v1); err != nil {
		return nil, err
	}
	hash, err := v1.GetReferenceHash(version)
	if err != nil {
		return nil, err
	}
	p := &pdu.PDU{
		AuthEvents:           refIDs(v1.AuthEvents),
		Content:              v1.Content,
		Depth:                v1.Depth,
		Hashes:               v1.Hashes,
		OriginServerTS:       v1.OriginServerTS,
		PrevEvents:           refIDs(v1.PrevEvents),
		Redacts:              v1.Redacts,
		RoomID:               v1.RoomID,
		Sender:               v1.Sender,
		Signatures:           v1.Signatures,
		StateKey:             v1.StateKey,
		Sticky:               v1.Sticky,
		Type:                 v1.Type,
		Unsigned:             v1.Unsigned,
		Unknown:              v1.Unknown,
		DeprecatedPrevState:  v1.DeprecatedPrevState,
		DeprecatedOrigin:     v1.DeprecatedOrigin,
		DeprecatedMembership: v1.DeprecatedMembership,
	}
	p.InternalMeta.EventID = v1.EventID
	p.InternalMeta.Extra = map[string]any{v1RefHashKey: hash[:]}
	return p, nil
}

func refIDs(refs []pdu.V1EventReference) []id.EventID {
	out := make([]id.EventID, len(refs))
	for i, r := range refs {
		out[i] = r.ID
	}
	return out
}

// marshalPDU encodes the PDU to store: the v1 form when there is one.
func marshalPDU(p *pdu.PDU, v1 *pdu.RoomV1PDU) ([]byte, error) {
	if v1 != nil {
		return jsonv2.Marshal(v1)
	}
	return jsonv2.Marshal(p)
}

// authorizeV1 applies the auth rule of room versions 1 and 2 that
// eventauth does not have (rule 11): an m.room.redaction is allowed if the
// sender has the redact level, or if the redacted event's ID has the same
// domain as the redaction's own ID; otherwise it is rejected.
func (x *applyCtx) authorizeV1(p *pdu.PDU, version id.RoomVersion) (*Rejection, error) {
	if !customEventIDs(version) || p.Type != "m.room.redaction" || p.Redacts == nil {
		return nil, nil
	}
	pl, err := x.currentPower(string(p.RoomID), version)
	if err != nil {
		return nil, err
	}
	if pl.GetUserLevel(p.Sender) >= pl.Redact() {
		return nil, nil
	}
	if eventIDDomain(string(*p.Redacts)) == eventIDDomain(string(p.InternalMeta.EventID)) {
		return nil, nil
	}
	return reject(KindForbidden, "fail 11: redacting an event of another server needs the redact power level"), nil
}

// eventIDDomain is the server part of a v1/v2 event ID ("" if none).
func eventIDDomain(eventID string) string {
	_, domain, ok := strings.Cut(eventID, ":")
	if !ok {
		return ""
	}
	return domain
}
