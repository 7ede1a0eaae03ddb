package rooms

import (
	"encoding/binary"

	"chronicle/projections"
)

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

// key builds tag, then each part 0x00-terminated (projections.Key's
// layout), in one allocation with room for extra more bytes: the fold
// builds several of these keys for every event, and chaining Key.Str
// allocates once per part.
func key(tag byte, extra int, parts ...string) []byte {
	n := 2 + extra
	for _, p := range parts {
		n += len(p) + 1
	}
	k := append(make([]byte, 0, n), Prefix, tag)
	for _, p := range parts {
		k = append(append(k, p...), 0)
	}
	return k
}

func roomKey(roomID string) []byte { return key(tagRoom, 0, roomID) }

func eventsPrefix(roomID string) projections.Key { return key(tagEvent, 0, roomID) }

func eventKey(roomID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(key(tagEvent, 8, roomID), seq)
}

func eventIDKey(eventID string) []byte { return key(tagEventID, 0, eventID) }

func statePrefix(roomID string) projections.Key { return key(tagState, 0, roomID) }

func stateKey(roomID, evType, sk string) []byte { return key(tagState, 0, roomID, evType, sk) }

func historyPrefix(roomID, evType, sk string) projections.Key {
	return key(tagHistory, 0, roomID, evType, sk)
}

func historyKey(roomID, evType, sk string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(key(tagHistory, 8, roomID, evType, sk), seq)
}

func memberPrefix(userID string) projections.Key { return key(tagMember, 0, userID) }

func memberKey(userID, roomID string) []byte { return key(tagMember, 0, userID, roomID) }

// TxnKey is the key of a client transaction, scoped as the spec does, by
// the request path (user, device, room and transaction ID):
// the same txnId sent to another room is another request.
func TxnKey(userID, deviceID, roomID, txnID string) []byte {
	return key(tagTxn, 0, userID, deviceID, roomID, txnID)
}
