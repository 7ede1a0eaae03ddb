package facts

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	rlog "chronicle/log"
)

// decodeRoomEvent reads what Encode writes exactly as Decode does, and
// leaves anything else to Decode.
func TestDecodeRoomEventMatchesDecode(t *testing.T) {
	long := strings.Repeat("p", 70000)
	for i, f := range []RoomEvent{
		{},
		{RoomID: "!r:localhost", EventID: "$e", RoomVersion: "12", PDU: []byte(`{"type":"m.room.message"}`)},
		{RoomID: "!r:localhost", EventID: "$e", RoomVersion: "10", PDU: []byte(strings.Repeat("x", 300)), TxnID: "t1", DeviceID: "DEV"},
		{RoomID: strings.Repeat("r", 40), EventID: strings.Repeat("e", 300), PDU: []byte(long), TxnID: long},
	} {
		body, err := Encode(&f)
		if err != nil {
			t.Fatal(err)
		}
		var want, got RoomEvent
		if err := Decode(body, &want); err != nil {
			t.Fatal(err)
		}
		if !decodeRoomEvent(body, &got) {
			t.Fatalf("body %d not read", i)
		}
		if len(want.PDU) == 0 {
			want.PDU = nil
		}
		if len(got.PDU) == 0 {
			got.PDU = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("body %d: %+v, want %+v", i, got, want)
		}
	}
	// A field this code does not know (added later) goes to Decode.
	body, _ := msgpack.Marshal(map[string]any{"r": "!r:localhost", "e": "$e", "zz": "new"})
	var f RoomEvent
	if decodeRoomEvent(body, &f) {
		t.Error("unknown field read")
	}
	for _, bad := range [][]byte{nil, {0x81}, {0x81, 0xa1, 'r'}, {0x81, 0xa1, 'r', 0xa5, 'x'}, {0x81, 0xa1, 'r', 0x01}, {0x80, 0x00}} {
		if decodeRoomEvent(bad, &f) {
			t.Errorf("%x read", bad)
		}
	}
}

// RoomEventOf reads the PDU's fields as encoding/json does.
func TestRoomEventOfParsesThePDU(t *testing.T) {
	pdu := []byte(`{"auth_events":["$a","$b"],"content":{"body":"hi","m.relates_to":{"rel_type":"m.thread"}},"depth":12,` +
		`"hashes":{"sha256":"x"},"origin_server_ts":1700000000000,"prev_events":["$p"],"redacts":"$r","room_id":"!r:localhost",` +
		`"sender":"@alice:localhost","state_key":"","type":"m.room.name"}`)
	body, _ := Encode(&RoomEvent{RoomID: "!r:localhost", EventID: "$e", RoomVersion: "12", PDU: pdu, TxnID: "t"})
	rec := &rlog.Record{Type: TypeRoomEvent, Body: body}
	f, p, err := RoomEventOf(rec)
	if err != nil {
		t.Fatal(err)
	}
	var want PDUFields
	if err := json.Unmarshal(pdu, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*p, want) || f.EventID != "$e" || f.TxnID != "t" || !bytes.Equal(f.PDU, pdu) {
		t.Errorf("got %+v %+v, want %+v", f, p, want)
	}
	if f2, p2, _ := RoomEventOf(rec); f2 != f || p2 != p {
		t.Error("second call decoded again")
	}
}
