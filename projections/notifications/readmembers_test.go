package notifications

import (
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"chronicle/projections/pushrules"
)

// readMembers gives what the store holds, however the memo of decoded
// lists was filled: a list put, replaced and put again reads back as put,
// with each member's evaluator when they have no rules of their own.
func TestReadMembersFollowsTheStore(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const room = "!r:x"
	lists := []members{
		{{User: "@a:x", DisplayName: "A"}, {User: "@b:x", OwnRules: true}},
		{{User: "@a:x", DisplayName: "A2"}, {User: "@b:x", OwnRules: true}},
		{{User: "@a:x", DisplayName: "A"}, {User: "@b:x", OwnRules: true}},
		{{User: "@a:x", DisplayName: "A"}, {User: "@b:x"}},
		nil,
	}
	for _, want := range lists {
		b := db.NewIndexedBatch()
		if err := putMembers(b, room, want); err != nil {
			t.Fatal(err)
		}
		l, err := readMembers(b, room)
		if err != nil {
			t.Fatal(err)
		}
		if want == nil {
			if l != nil {
				t.Fatalf("no list: read %+v", l.members)
			}
			continue
		}
		if !reflect.DeepEqual(l.members, want) {
			t.Fatalf("read %+v, want %+v", l.members, want)
		}
		for i, m := range want {
			if got, wantEval := l.evals[i], pushrules.DefaultEvaluator(m.User); (got == nil) != m.OwnRules || (got != nil && got != wantEval) {
				t.Fatalf("%s: evaluator %p, want %p (own rules %v)", m.User, got, wantEval, m.OwnRules)
			}
		}
		// The batch is discarded (a rejected command): the committed
		// state (nothing) is what reads.
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if l, err := readMembers(db, room); err != nil || l != nil {
			t.Fatalf("after discarding: %+v, %v", l, err)
		}
	}
}
