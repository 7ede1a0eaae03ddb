package rooms

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"chronicle/projections"
)

// The hand-written encoders must write exactly what msgpack.Marshal
// writes: stored values (and so digests) must not depend on which one
// wrote them.
func TestEncodersMatchMsgpack(t *testing.T) {
	sk, empty := "@bob:localhost", ""
	long := strings.Repeat("x", 300)
	huge := strings.Repeat("y", 70000)
	events := []*Event{
		{},
		{EventID: "$a", Type: "m.room.message", Sender: "@alice:localhost", OriginServerTS: 1_700_000_000_000,
			Content: json.RawMessage(`{"body":"hi"}`), TxnID: "t1", DeviceID: "DEV", Depth: 7, Seq: 42},
		{EventID: "$b", Type: "m.room.member", StateKey: &sk, Content: json.RawMessage(`{}`), PrevContent: json.RawMessage(`{"membership":"invite"}`),
			PrevSender: "@alice:localhost", ReplacesState: "$a", Depth: -3, Seq: math.MaxUint64, OriginServerTS: -1},
		{EventID: long, Type: long, StateKey: &empty, Sender: huge, Content: json.RawMessage(long), Redacts: "$c"},
		{EventID: "$c", Content: json.RawMessage{}, PrevContent: json.RawMessage{}, RoomID: "!ignored:localhost"},
		{EventID: "$d", Content: json.RawMessage(huge), RedactedBecause: &Event{EventID: "$e", Type: "m.room.redaction", Redacts: "$d",
			Content: json.RawMessage(`{"redacts":"$d"}`), Seq: 9}},
	}
	for i, ev := range events {
		want, err := msgpack.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEvent(nil, ev); !bytes.Equal(got, want) {
			t.Errorf("event %d: encoded\n%x\nmsgpack\n%x", i, got, want)
		}
	}
	for i, r := range []*Room{{}, {Version: "12", LastEventID: long, Depth: math.MinInt64, LastSeq: 1 << 40}} {
		want, _ := msgpack.Marshal(r)
		got := appendRoom(nil, r)
		if !bytes.Equal(got, want) {
			t.Errorf("room %d: encoded\n%x\nmsgpack\n%x", i, got, want)
		}
		var back Room
		if err := decodeRoom(got, &back); err != nil || back != *r {
			t.Errorf("room %d decoded as %+v (%v)", i, back, err)
		}
	}
	for i, ref := range []*EventRef{{}, {RoomID: "!r:localhost", Seq: 5}, {RoomID: long, Seq: math.MaxUint64}} {
		want, _ := msgpack.Marshal(ref)
		if got := appendEventRef(nil, ref); !bytes.Equal(got, want) {
			t.Errorf("event ref %d: encoded\n%x\nmsgpack\n%x", i, got, want)
		}
	}
}

// decodeRoom falls back to msgpack for encodings it does not read itself.
func TestDecodeRoomFallsBack(t *testing.T) {
	type compact struct {
		Version string `msgpack:"v"`
		Depth   int64  `msgpack:"d"`
		LastSeq uint64 `msgpack:"s"`
		Extra   string `msgpack:"z"`
	}
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	var buf bytes.Buffer
	enc.Reset(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(&compact{Version: "10", Depth: 3, LastSeq: 4, Extra: "new field"}); err != nil {
		t.Fatal(err)
	}
	var r Room
	if err := decodeRoom(buf.Bytes(), &r); err != nil || r != (Room{Version: "10", Depth: 3, LastSeq: 4}) {
		t.Fatalf("decoded %+v (%v)", r, err)
	}
}

// The one-allocation key builders lay keys out as projections.Key does.
func TestKeysKeepTheirLayout(t *testing.T) {
	room, ev, typ, sk, user := "!r:localhost", "$e", "m.room.member", "@u:localhost", "@u:localhost"
	nk := func(tag byte) projections.Key { return projections.NewKey(Prefix, tag) }
	for _, c := range []struct{ got, want []byte }{
		{roomKey(room), nk(tagRoom).Str(room)},
		{eventsPrefix(room), nk(tagEvent).Str(room)},
		{eventKey(room, 42), nk(tagEvent).Str(room).U64(42)},
		{eventIDKey(ev), nk(tagEventID).Str(ev)},
		{statePrefix(room), nk(tagState).Str(room)},
		{stateKey(room, typ, sk), nk(tagState).Str(room).Str(typ).Str(sk)},
		{historyPrefix(room, typ, ""), nk(tagHistory).Str(room).Str(typ).Str("")},
		{historyKey(room, typ, sk, 7), nk(tagHistory).Str(room).Str(typ).Str(sk).U64(7)},
		{memberPrefix(user), nk(tagMember).Str(user)},
		{memberKey(user, room), nk(tagMember).Str(user).Str(room)},
		{TxnKey(user, "DEV", room, "t1"), nk(tagTxn).Str(user).Str("DEV").Str(room).Str("t1")},
		{tsPrefix(room), nk(tagTimestamp).Str(room)},
		{tsKey(room, -5, 9), nk(tagTimestamp).Str(room).U64(tsOrder(-5)).U64(9)},
	} {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("key %q, want %q", c.got, c.want)
		}
	}
}
