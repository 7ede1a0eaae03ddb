package machine

import (
	"chronicle/projections/accounts"
	"chronicle/projections/facts"
	"chronicle/projections/rooms"
)

// CmdReport files a report of an event, a room or a user.
const CmdReport = "report"

// Report is one of the spec's three reports: of an event (RoomID and
// EventID), of a room (RoomID) or of a user (UserID).
type Report struct {
	RoomID  string `msgpack:"r"`
	EventID string `msgpack:"e"`
	UserID  string `msgpack:"u"`
	Reason  string `msgpack:"why"`
	Score   *int   `msgpack:"sc"`
}

// maxReasonBytes bounds a report's reason, so one report cannot bloat the
// log.
const maxReasonBytes = 4096

// report records a report as the spec asks:
//   - an event report needs the reporter joined to the room and the event
//     in that room; otherwise it is M_NOT_FOUND either way, so a report
//     never reveals whether an event exists in a room the reporter is not
//     in;
//   - a room report needs only the room to exist, a user report only the
//     user (the reporter need share no room with either).
func (x *applyCtx) report() (*Result, error) {
	var p Report
	if rej := x.payload(&p); rej != nil {
		return &Result{Err: rej}, nil
	}
	if len(p.Reason) > maxReasonBytes {
		return &Result{Err: reject(KindTooLarge, "the reason is longer than %d bytes", maxReasonBytes)}, nil
	}
	f := &facts.ReportFiled{RoomID: p.RoomID, EventID: p.EventID, UserID: p.UserID, Reason: p.Reason}
	switch {
	case p.EventID != "" && p.RoomID != "" && p.UserID == "":
		f.Kind, f.Score = facts.ReportEvent, p.Score
		notFound := reject(KindNotFound, "the event was not found or you are not joined to the room")
		m, err := rooms.GetMembership(x.b, x.cmd.Actor, p.RoomID)
		if err != nil {
			return nil, err
		}
		if m == nil || m.Membership != "join" {
			return &Result{Err: notFound}, nil
		}
		ref, err := rooms.LocateEvent(x.b, p.EventID)
		if err != nil {
			return nil, err
		}
		if ref == nil || ref.RoomID != p.RoomID {
			return &Result{Err: notFound}, nil
		}
	case p.RoomID != "" && p.EventID == "" && p.UserID == "":
		f.Kind = facts.ReportRoom
		room, err := rooms.GetRoom(x.b, p.RoomID)
		if err != nil {
			return nil, err
		}
		if room == nil {
			return &Result{Err: reject(KindNotFound, "the room was not found")}, nil
		}
	case p.UserID != "" && p.RoomID == "" && p.EventID == "":
		f.Kind = facts.ReportUser
		u, err := accounts.GetUser(x.b, p.UserID)
		if err != nil {
			return nil, err
		}
		if u == nil {
			return &Result{Err: reject(KindNotFound, "the user was not found")}, nil
		}
	default:
		return &Result{Err: reject(KindBadJSON, "a report names an event in a room, a room, or a user")}, nil
	}
	if err := x.emit(facts.TypeReportFiled, f); err != nil {
		return nil, err
	}
	return &Result{RoomID: p.RoomID}, nil
}
