// Package directory is the projection of room aliases and the published
// room directory: each local alias with its room and the user who created
// it, each room's aliases, the rooms published in /publicRooms, and every
// room's joined member count (which /publicRooms reports and sorts by).
//
// The member count is folded from m.room.member events: the rooms
// projection, ordered before this one, has already moved the member's
// current state, so the membership before the event is read from its state
// history at the previous position. A byte search for "m.room.member" in
// the record body skips the JSON parse for the messages that make up most
// of the log.
//
// Deleting an alias leaves the room's m.room.canonical_alias event as it
// is (the spec lets servers choose); because the machine validates only
// the aliases a new canonical alias event adds, the room can still edit
// that event afterwards without first removing the stale alias.
package directory
