package api

import (
	"maps"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/e2ekeys"
	"chronicle/projections/rooms"
	"chronicle/projections/syncstream"
)

// Device list updates: /sync's device_lists and /keys/changes.
//
// Between two positions, a user is "changed" for the requester when they
// share a joined room with them at the later position and either their
// device list changed in between (the e2ekeys device list log) or they did
// not share one at the earlier position; the requester's own changes are
// always included, and so are changes meant for the requester alone (a
// signature they made on another user's key). A user is "left" when they
// shared a room at the earlier position and share none at the later one.
//
// Only users whose sharing can have changed are examined: those named by
// a key change, and those whose membership changed in a room the
// requester was or is joined to (every member, when it was the
// requester's own membership that changed), from the sync stream's
// membership entries. A very old token whose stream is too long to read
// falls back to examining every user of the requester's rooms, and a
// device list log too long to read counts every one of them as changed:
// reporting too many users as changed only costs the client a
// /keys/query, while missing one breaks encryption.
const (
	maxListLogScan   = 10000
	maxMemberScanLen = 20000
)

type deviceLists struct {
	Changed []string `json:"changed"`
	Left    []string `json:"left"`
}

func emptyDeviceLists() *deviceLists { return &deviceLists{Changed: []string{}, Left: []string{}} }

// deviceListsBetween computes the updates for user in (from, to]; to must
// not be past the reader's head. Its cost follows what changed in between
// (and, per user examined, how many rooms that user is in), not how many
// rooms the requester is in, except on the fallbacks above.
func deviceListsBetween(r pebble.Reader, user string, from, to uint64) (*deviceLists, error) {
	out := emptyDeviceLists()
	if to <= from {
		return out, nil
	}
	logged, complete, err := e2ekeys.DeviceListChanges(r, from, to, maxListLogScan)
	if err != nil {
		return nil, err
	}
	allChanged := !complete
	keysChanged := map[string]bool{}
	changed := map[string]bool{}
	for _, c := range logged {
		switch c.OnlyFor {
		case user:
			changed[c.User] = true
		case "":
			keysChanged[c.User] = true
		}
	}
	if keysChanged[user] || allChanged {
		changed[user] = true
	}
	candidates, err := sharingCandidates(r, user, from, to)
	if err != nil {
		return nil, err
	}
	for u := range keysChanged {
		candidates[u] = true
	}
	if allChanged {
		now, err := joinedRoomsAt(r, user, to)
		if err != nil {
			return nil, err
		}
		for room := range now {
			if err := addJoinedAt(r, room, to, candidates); err != nil {
				return nil, err
			}
		}
	}
	delete(candidates, user)
	for u := range candidates {
		sharesNow, err := sharesJoinedRoomAt(r, user, u, to)
		if err != nil {
			return nil, err
		}
		sharedThen, err := sharesJoinedRoomAt(r, user, u, from)
		if err != nil {
			return nil, err
		}
		switch {
		case sharesNow && (keysChanged[u] || allChanged || !sharedThen):
			changed[u] = true
		case sharedThen && !sharesNow:
			out.Left = append(out.Left, u)
		}
	}
	out.Changed = append(out.Changed, slices.Collect(maps.Keys(changed))...)
	slices.Sort(out.Changed)
	slices.Sort(out.Left)
	return out, nil
}

// sharingCandidates returns the users whose sharing a room with user may
// differ between from and to (see above).
func sharingCandidates(r pebble.Reader, user string, from, to uint64) (map[string]bool, error) {
	out := map[string]bool{}
	entries, complete, err := syncstream.Changes(r, from, to, maxMemberScanLen)
	if err != nil {
		return nil, err
	}
	if !complete {
		for _, at := range []uint64{from, to} {
			joined, err := joinedRoomsAt(r, user, at)
			if err != nil {
				return nil, err
			}
			for room := range joined {
				if err := addJoinedAt(r, room, at, out); err != nil {
					return nil, err
				}
			}
		}
		return out, nil
	}
	mine := map[string]bool{} // room -> user joined at from or at to
	ownDone := map[string]bool{}
	for _, c := range entries {
		if c.Kind != syncstream.KindMember {
			continue
		}
		if c.User == user {
			if ownDone[c.Room] {
				continue
			}
			ownDone[c.Room] = true
			for _, at := range []uint64{from, to} {
				if err := addJoinedAt(r, c.Room, at, out); err != nil {
					return nil, err
				}
			}
			continue
		}
		in, known := mine[c.Room]
		if !known {
			for _, at := range []uint64{from, to} {
				m, err := membershipAt(r, c.Room, user, at)
				if err != nil {
					return nil, err
				}
				in = in || m == "join"
			}
			mine[c.Room] = in
		}
		if in {
			out[c.User] = true
		}
	}
	return out, nil
}

// membershipAt is a user's membership in a room after position seq (""
// at 0: before the log began).
func membershipAt(r pebble.Reader, room, user string, seq uint64) (string, error) {
	if seq == 0 {
		return "", nil
	}
	return rooms.MembershipOf(r, room, user, seq)
}

// joinedRoomsAt returns the rooms user was joined to at seq.
func joinedRoomsAt(r pebble.Reader, user string, seq uint64) (map[string]bool, error) {
	out := map[string]bool{}
	if seq == 0 {
		return out, nil
	}
	urs, err := rooms.UserRooms(r, user)
	if err != nil {
		return nil, err
	}
	for _, ur := range urs {
		m := ur.Membership.Membership
		if ur.Seq > seq {
			if m, err = rooms.MembershipAt(r, ur.RoomID, user, seq); err != nil {
				return nil, err
			}
		}
		if m == "join" {
			out[ur.RoomID] = true
		}
	}
	return out, nil
}

// sharesJoinedRoomAt reports whether a and b were both joined to some room
// at seq. It walks b's rooms (b is the user examined, a the requester, who
// may be in many more).
func sharesJoinedRoomAt(r pebble.Reader, a, b string, seq uint64) (bool, error) {
	if seq == 0 {
		return false, nil
	}
	urs, err := rooms.UserRooms(r, b)
	if err != nil {
		return false, err
	}
	for _, ur := range urs {
		mb := ur.Membership.Membership
		if ur.Seq > seq {
			if mb, err = rooms.MembershipAt(r, ur.RoomID, b, seq); err != nil {
				return false, err
			}
		}
		if mb != "join" {
			continue
		}
		if ma, err := membershipAt(r, ur.RoomID, a, seq); err != nil || ma == "join" {
			return ma == "join", err
		}
	}
	return false, nil
}

// addJoinedAt adds the members joined to room at seq.
func addJoinedAt(r pebble.Reader, room string, seq uint64, into map[string]bool) error {
	if seq == 0 {
		return nil
	}
	members, err := rooms.StateOfTypeAt(r, room, "m.room.member", seq)
	if err != nil {
		return err
	}
	for _, ev := range members {
		if ev.StateKey != nil && ev.Membership() == "join" {
			into[*ev.StateKey] = true
		}
	}
	return nil
}
