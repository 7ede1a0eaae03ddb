package rooms

import "chronicle/projections"

// Prefix is the key space of this projection.
const Prefix byte = 0x20

const (
	tagRoom    byte = 'm' // m roomID -> Room
	tagEvent   byte = 'e' // e roomID seq -> Event
	tagEventID byte = 'i' // i eventID -> EventRef
	tagState   byte = 's' // s roomID type stateKey -> StateRef (current)
	tagHistory byte = 'h' // h roomID type stateKey seq -> event ID
	tagMember  byte = 'u' // u userID roomID -> Membership
	tagTxn     byte = 'x' // x userID deviceID roomID txnID -> event ID
	// Redaction and room-history endpoints (forget.go, timestamps.go).
	tagForgotten byte = 'f' // f userID roomID -> uint64 BE membership seq forgotten at
	tagTimestamp byte = 't' // t roomID ts^(1<<63) seq -> empty (timestamp_to_event)
)

func roomKey(roomID string) []byte { return projections.NewKey(Prefix, tagRoom).Str(roomID) }

func eventsPrefix(roomID string) projections.Key {
	return projections.NewKey(Prefix, tagEvent).Str(roomID)
}

func eventKey(roomID string, seq uint64) []byte { return eventsPrefix(roomID).U64(seq) }

func eventIDKey(eventID string) []byte { return projections.NewKey(Prefix, tagEventID).Str(eventID) }

func statePrefix(roomID string) projections.Key {
	return projections.NewKey(Prefix, tagState).Str(roomID)
}

func stateKey(roomID, evType, sk string) []byte { return statePrefix(roomID).Str(evType).Str(sk) }

func historyPrefix(roomID, evType, sk string) projections.Key {
	return projections.NewKey(Prefix, tagHistory).Str(roomID).Str(evType).Str(sk)
}

func memberPrefix(userID string) projections.Key {
	return projections.NewKey(Prefix, tagMember).Str(userID)
}

func memberKey(userID, roomID string) []byte { return memberPrefix(userID).Str(roomID) }

// txnKey scopes a transaction ID as the spec does, by the request path:
// the same txnId sent to another room is another request.
func txnKey(userID, deviceID, roomID, txnID string) []byte {
	return projections.NewKey(Prefix, tagTxn).Str(userID).Str(deviceID).Str(roomID).Str(txnID)
}
