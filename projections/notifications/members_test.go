package notifications

import (
	"reflect"
	"testing"
)

func TestMembersRoundTrip(t *testing.T) {
	ms := members{{User: "@a:x"}, {User: "@b:x", DisplayName: "Bé 🎉", OwnRules: true}, {User: "@c:x", DisplayName: "c"}}
	got, err := decodeMembers(ms.encode())
	if err != nil || !reflect.DeepEqual(got, ms) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	ms = ms.without("@b:x").with(member{User: "@aa:x"})
	if want := []string{"@a:x", "@aa:x", "@c:x"}; len(ms) != 3 || ms[0].User != want[0] || ms[1].User != want[1] || ms[2].User != want[2] {
		t.Fatalf("edits: %+v", ms)
	}
}

// Decoding never panics, and what it accepts encodes back to the same
// bytes.
func FuzzDecodeMembers(f *testing.F) {
	f.Add(members{{User: "@a:x", DisplayName: "A", OwnRules: true}}.encode())
	f.Add([]byte{0, 5, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := decodeMembers(b)
		if err != nil {
			return
		}
		if again, err := decodeMembers(ms.encode()); err != nil || !reflect.DeepEqual(again, ms) {
			t.Fatalf("re-encoding %x: %+v, %v", b, again, err)
		}
	})
}

// A notification entry decodes without panicking, and what decodes
// encodes back to the same bytes.
func FuzzDecodeListed(f *testing.F) {
	b, _ := listed{Thread: "$root", Actions: []byte(`["notify"]`), Highlight: true}.encode()
	f.Add(b)
	f.Add([]byte{0, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeListed(b)
		if err != nil {
			return
		}
		again, _ := l.encode()
		if l2, err := decodeListed(again); err != nil || !reflect.DeepEqual(l2, l) {
			t.Fatalf("re-encoding %x: %+v, %v", b, l2, err)
		}
	})
}
