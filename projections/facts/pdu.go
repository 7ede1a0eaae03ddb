package facts

import (
	"encoding/binary"
	"encoding/json"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"fmt"

	rlog "chronicle/log"
)

// PDUFields are the parts of a room event's PDU that projections read.
type PDUFields struct {
	Type           string          `json:"type"`
	StateKey       *string         `json:"state_key"`
	Sender         string          `json:"sender"`
	Content        json.RawMessage `json:"content"`
	OriginServerTS int64           `json:"origin_server_ts"`
	Redacts        string          `json:"redacts"`
	Depth          int64           `json:"depth"`
}

// roomEventMemo is what RoomEventOf leaves on a record.
type roomEventMemo struct {
	event RoomEvent
	pdu   PDUFields
}

// pduOptions parse a PDU the state machine wrote itself: its member names
// are exact and unique and its strings valid UTF-8 (it was built, and
// hashed, as canonical JSON), so the checks for duplicate names and
// invalid UTF-8, and encoding/json's case-insensitive matching, are
// skipped. They were half the cost of the parse, on every room event a
// rebuild folds.
var pduOptions = jsonv2.JoinOptions(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))

// RoomEventOf decodes a room.event record's body and its PDU once, however
// many projections fold the record: the first call stores the result on
// the record, later calls reuse it. Callers must not modify the results.
func RoomEventOf(rec *rlog.Record) (*RoomEvent, *PDUFields, error) {
	if m, ok := rec.Memo.(*roomEventMemo); ok {
		return &m.event, &m.pdu, nil
	}
	m := &roomEventMemo{}
	if !decodeRoomEvent(rec.Body, &m.event) {
		m.event = RoomEvent{}
		if err := Decode(rec.Body, &m.event); err != nil {
			return nil, nil, err
		}
	}
	if !scanPDU(m.event.PDU, &m.pdu) {
		m.pdu = PDUFields{}
		if err := jsonv2.Unmarshal(m.event.PDU, &m.pdu, pduOptions); err != nil {
			return nil, nil, fmt.Errorf("parse PDU %s: %w", m.event.EventID, err)
		}
	}
	rec.Memo = m
	return &m.event, &m.pdu, nil
}

// decodeRoomEvent reads a RoomEvent body as Encode writes it (a map of
// the fields' tags to strings and the PDU's bytes) without msgpack's
// reflection; false sends anything else (a field added later, another
// encoding) to Decode. f.PDU aliases b.
func decodeRoomEvent(b []byte, f *RoomEvent) bool {
	n, b, ok := mapLen(b)
	if !ok {
		return false
	}
	for range n {
		var key, val []byte
		if key, b, ok = bytesOf(b); !ok || len(key) == 0 || len(key) > 2 {
			return false
		}
		if val, b, ok = bytesOf(b); !ok {
			return false
		}
		switch string(key) {
		case "r":
			f.RoomID = string(val)
		case "e":
			f.EventID = string(val)
		case "v":
			f.RoomVersion = string(val)
		case "p":
			f.PDU = val[:len(val):len(val)] // nil stays nil
		case "x":
			f.TxnID = string(val)
		case "d":
			f.DeviceID = string(val)
		default:
			return false
		}
	}
	return len(b) == 0
}

// mapLen reads a msgpack map header.
func mapLen(b []byte) (int, []byte, bool) {
	switch {
	case len(b) >= 1 && b[0]&0xf0 == 0x80:
		return int(b[0] & 0x0f), b[1:], true
	case len(b) >= 3 && b[0] == 0xde:
		return int(binary.BigEndian.Uint16(b[1:])), b[3:], true
	}
	return 0, nil, false
}

// bytesOf reads a msgpack str or bin (msgpack decodes either into a
// string or a []byte field), or nil (an empty string, a nil slice).
func bytesOf(b []byte) (val, rest []byte, ok bool) {
	var n int
	switch {
	case len(b) >= 1 && b[0] == 0xc0:
		return nil, b[1:], true
	case len(b) >= 1 && b[0]&0xe0 == 0xa0:
		n, b = int(b[0]&0x1f), b[1:]
	case len(b) >= 2 && (b[0] == 0xd9 || b[0] == 0xc4):
		n, b = int(b[1]), b[2:]
	case len(b) >= 3 && (b[0] == 0xda || b[0] == 0xc5):
		n, b = int(binary.BigEndian.Uint16(b[1:])), b[3:]
	case len(b) >= 5 && (b[0] == 0xdb || b[0] == 0xc6):
		n, b = int(binary.BigEndian.Uint32(b[1:])), b[5:]
	default:
		return nil, nil, false
	}
	if len(b) < n {
		return nil, nil, false
	}
	return b[:n], b[n:], true
}
