package rooms_test

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/rooms"
)

// TestSharesJoinedRoom compares the merged walk with the plain definition
// (some room where both memberships are "join") for every pair of users,
// after joins, invites and leaves spread over many rooms.
func TestSharesJoinedRoom(t *testing.T) {
	d := newDriver(t)
	var roomIDs []string
	for i := range 30 {
		roomIDs = append(roomIDs, d.createRoom(alice, fmt.Sprint("room ", i)).RoomID)
	}
	users := []string{alice, bob, carol}
	check := func(step string) {
		t.Helper()
		d.view(func(r pebble.Reader) {
			for _, a := range users {
				for _, b := range users {
					want := false
					for _, room := range roomIDs {
						ma, _ := rooms.GetMembership(r, a, room)
						mb, _ := rooms.GetMembership(r, b, room)
						if ma != nil && mb != nil && ma.Membership == "join" && mb.Membership == "join" {
							want = true
						}
					}
					got, err := rooms.SharesJoinedRoom(r, a, b)
					if err != nil || got != want {
						t.Errorf("%s: SharesJoinedRoom(%s, %s) = %v, %v; want %v", step, a, b, got, err, want)
					}
				}
			}
		})
	}
	check("alone")
	d.member(alice, roomIDs[7], bob, "invite")
	check("bob invited")
	d.member(bob, roomIDs[7], bob, "join")
	check("bob joined room 7")
	d.member(bob, roomIDs[7], bob, "leave")
	check("bob left room 7")
	d.member(carol, roomIDs[29], carol, "join")
	d.member(carol, roomIDs[3], carol, "join")
	d.member(bob, roomIDs[3], bob, "join")
	check("carol and bob in room 3")
	d.member(carol, roomIDs[3], carol, "leave")
	check("carol left room 3")
}
