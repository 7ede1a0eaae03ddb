package machine

import (
	"chronicle/projections/facts"
	"chronicle/projections/rooms"
)

// CmdForgetRoom forgets a room the actor has left
// (POST /rooms/{roomId}/forget).
const CmdForgetRoom = "forget_room"

// ForgetRoom names the room to forget.
type ForgetRoom struct {
	RoomID string `msgpack:"r"`
}

// forgetRoom records that the actor forgot a room. Only a room the actor
// has left (or was banned from) can be forgotten; while joined, invited or
// knocking it is refused (the spec's 400 M_UNKNOWN). As in Synapse,
// forgetting a room one never had a membership in, or forgetting twice,
// succeeds and records nothing.
func (x *applyCtx) forgetRoom() (*Result, error) {
	var p ForgetRoom
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	m, err := rooms.GetMembership(x.b, x.cmd.Actor, p.RoomID)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return &Result{RoomID: p.RoomID}, nil
	}
	if m.Membership != "leave" && m.Membership != "ban" {
		return &Result{Err: reject(KindStillInRoom, "User %s is in room %s", x.cmd.Actor, p.RoomID)}, nil
	}
	if done, err := rooms.IsForgotten(x.b, x.cmd.Actor, p.RoomID, m.Seq); err != nil || done {
		return &Result{RoomID: p.RoomID}, err
	}
	if err := x.emit(facts.TypeRoomForgotten, &facts.RoomForgotten{UserID: x.cmd.Actor, RoomID: p.RoomID, MembershipSeq: m.Seq}); err != nil {
		return nil, err
	}
	return &Result{RoomID: p.RoomID}, nil
}
