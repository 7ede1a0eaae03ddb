package api

import (
	"encoding/json"
	"testing"
)

type plainEvent clientEventJSON

func benchEvents() []clientEvent {
	sk := ""
	out := make([]clientEvent, 500)
	for i := range out {
		out[i] = clientEvent{Content: json.RawMessage(`{"msgtype":"m.text","body":"hello there, this is a message"}`), EventID: "$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", OriginServerTS: 1700000000000, Sender: "@alice:localhost", Type: "m.room.message", StateKey: &sk}
	}
	return out
}

func BenchmarkMarshalWithMethod(b *testing.B) {
	evs := benchEvents()
	for b.Loop() {
		if _, err := json.Marshal(evs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalPlain(b *testing.B) {
	evs := benchEvents()
	plain := make([]plainEvent, len(evs))
	for i := range evs {
		plain[i] = plainEvent(evs[i])
	}
	for b.Loop() {
		if _, err := json.Marshal(plain); err != nil {
			b.Fatal(err)
		}
	}
}
