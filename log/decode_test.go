package log

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// DecodeRecord's fast path reads what Encode writes exactly as msgpack
// does, so that a decoded record encodes (and hashes) to the same bytes.
func TestDecodeRecordMatchesMsgpack(t *testing.T) {
	long := strings.Repeat("b", 70000)
	recs := []*Record{
		{},
		{Seq: 1, RaftIndex: 2, Time: 1_700_000_000_000, Type: "room.event", Actor: "@alice:localhost", Body: []byte{1, 2, 3}, PrevHash: Hash{1, 2, 3}},
		{Seq: 1 << 63, RaftIndex: ^uint64(0), Time: -5, Type: strings.Repeat("t", 40), Actor: strings.Repeat("a", 300), Body: []byte(long)},
		{Seq: 9, Body: []byte{}},
		{Seq: 10, Type: "x", Body: []byte(strings.Repeat("c", 200))},
	}
	for i, rec := range recs {
		enc, err := rec.Encode()
		if err != nil {
			t.Fatal(err)
		}
		var fast, slow Record
		if !decodeRecordFast(enc, &fast) {
			t.Fatalf("record %d: fast path refused Encode's bytes", i)
		}
		if err := msgpack.Unmarshal(enc, &slow); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Errorf("record %d: fast %+v, msgpack %+v", i, fast, slow)
		}
		again, _ := fast.Encode()
		if !bytes.Equal(again, enc) {
			t.Errorf("record %d: re-encodes to other bytes", i)
		}
	}
	// What Encode never writes goes to msgpack.
	extra, _ := msgpack.Marshal(map[string]any{"s": uint64(1), "z": "new"})
	compact, _ := msgpack.Marshal(map[string]any{"s": 1})
	for _, b := range [][]byte{extra, compact, nil, {0x81, 0xa1, 's'}, {0x81, 0xa1, 'y', 0xa5, 'x'}, {0x81, 0xa1, 'p', 0xc4, 0x02, 1, 2}} {
		var r Record
		if decodeRecordFast(b, &r) {
			t.Errorf("%x read by the fast path", b)
		}
	}
	r, err := DecodeRecord(extra)
	if err != nil || r.Seq != 1 {
		t.Errorf("fallback: %+v %v", r, err)
	}
}
