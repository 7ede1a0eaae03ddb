package rooms_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/rooms"
	"chronicle/raft/machine"
)

func (d *driver) link(actor, space, child, content string) *machine.Result {
	d.T.Helper()
	return d.Do(machine.CmdSendEvent, actor, &machine.SendEvent{RoomID: space, Type: "m.space.child", StateKey: &child,
		Content: json.RawMessage(content)})
}

func TestPointInTimeStateReads(t *testing.T) {
	d := newDriver(t)
	created := d.createRoom(alice, "n0")
	room := created.RoomID
	renamed := d.rename(alice, room, "n1").Seq
	linkedA := d.link(alice, room, "!a:localhost", `{"via":["localhost"]}`).Seq
	bobJoined := d.member(bob, room, bob, "join").Seq
	linkedB := d.link(alice, room, "!b:localhost", `{"via":["localhost"]}`).Seq
	unlinkedA := d.link(alice, room, "!a:localhost", `{}`).Seq
	bobLeft := d.member(bob, room, bob, "leave").Seq
	carolJoined := d.member(carol, room, carol, "join").Seq

	d.view(func(r pebble.Reader) {
		name := func(seq uint64) string {
			ev, err := rooms.StateEntryAt(r, room, "m.room.name", "", seq)
			if err != nil {
				t.Fatal(err)
			}
			if ev == nil {
				return ""
			}
			var c struct{ Name string }
			_ = json.Unmarshal(ev.Content, &c)
			return c.Name
		}
		if got := name(created.Seq); got != "n0" {
			t.Errorf("name at creation = %q", got)
		}
		if got, now := name(renamed), name(0); got != "n1" || now != "n1" {
			t.Errorf("name after rename = %q, now %q", got, now)
		}
		if ev, err := rooms.StateEntryAt(r, "!nosuch:localhost", "m.room.name", "", 0); err != nil || ev != nil {
			t.Errorf("unknown room: %v, %v", ev, err)
		}

		links := func(seq uint64) []string {
			evs, err := rooms.StateOfTypeAt(r, room, "m.space.child", seq)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, ev := range evs {
				out = append(out, fmt.Sprintf("%s=%s", *ev.StateKey, ev.Content))
			}
			return out
		}
		for _, tc := range []struct {
			seq  uint64
			want []string
		}{
			{renamed, nil},
			{linkedA, []string{`!a:localhost={"via":["localhost"]}`}},
			{linkedB, []string{`!a:localhost={"via":["localhost"]}`, `!b:localhost={"via":["localhost"]}`}},
			{unlinkedA, []string{`!a:localhost={}`, `!b:localhost={"via":["localhost"]}`}},
			{0, []string{`!a:localhost={}`, `!b:localhost={"via":["localhost"]}`}},
		} {
			if got := links(tc.seq); !slices.Equal(got, tc.want) {
				t.Errorf("links at %d = %v, want %v", tc.seq, got, tc.want)
			}
		}

		for _, tc := range []struct {
			seq  uint64
			want int
		}{{created.Seq, 1}, {bobJoined, 2}, {bobLeft - 1, 2}, {bobLeft, 1}, {carolJoined, 2}, {0, 2}} {
			if got, err := rooms.JoinedCountAt(r, room, tc.seq); err != nil || got != tc.want {
				t.Errorf("joined at %d = %d, %v; want %d", tc.seq, got, err, tc.want)
			}
		}
		for _, tc := range []struct {
			seq  uint64
			want string
		}{{created.Seq, ""}, {bobJoined, "join"}, {bobLeft, "leave"}, {0, "leave"}} {
			if got, err := rooms.MembershipOf(r, room, bob, tc.seq); err != nil || got != tc.want {
				t.Errorf("bob's membership at %d = %q, %v; want %q", tc.seq, got, err, tc.want)
			}
		}
	})
}
