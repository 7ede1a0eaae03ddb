package facts

import (
	"encoding/json"
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

// RoomEventOf decodes a room.event record's body and its PDU once, however
// many projections fold the record: the first call stores the result on
// the record, later calls reuse it. Callers must not modify the results.
func RoomEventOf(rec *rlog.Record) (*RoomEvent, *PDUFields, error) {
	if m, ok := rec.Memo.(*roomEventMemo); ok {
		return &m.event, &m.pdu, nil
	}
	m := &roomEventMemo{}
	if err := Decode(rec.Body, &m.event); err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(m.event.PDU, &m.pdu); err != nil {
		return nil, nil, fmt.Errorf("parse PDU %s: %w", m.event.EventID, err)
	}
	rec.Memo = m
	return &m.event, &m.pdu, nil
}
