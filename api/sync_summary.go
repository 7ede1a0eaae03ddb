package api

import (
	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/rooms"
)

// syncSummary is the spec's RoomSummary: what a client needs to name a
// room without a name (heroes) and to show its size.
type syncSummary struct {
	Heroes      []string `json:"m.heroes"`
	JoinedCount int      `json:"m.joined_member_count"`
	InvitedCnt  int      `json:"m.invited_member_count"`
}

// maxHeroes is how many members name an unnamed room.
const maxHeroes = 5

// summarize counts members and picks heroes: other joined or invited
// members first, then those who left, in user ID order.
func summarize(r pebble.Reader, roomID, user string) (*syncSummary, error) {
	by, err := rooms.MembersByMembership(r, roomID)
	if err != nil {
		return nil, err
	}
	sum := &syncSummary{Heroes: []string{}, JoinedCount: len(by["join"]), InvitedCnt: len(by["invite"])}
	for _, group := range [][]string{by["join"], by["invite"], by["leave"], by["ban"]} {
		for _, u := range group {
			if u != user && len(sum.Heroes) < maxHeroes {
				sum.Heroes = append(sum.Heroes, u)
			}
		}
	}
	return sum, nil
}

// hasStateChange reports whether a room section changes membership, so
// the summary is worth sending again.
func hasStateChange(rs *roomSection) bool {
	for _, ev := range rs.state.Events {
		if ev.Type == "m.room.member" {
			return true
		}
	}
	for _, ev := range rs.timeline.Events {
		if ev.Type == "m.room.member" {
			return true
		}
	}
	return false
}
