package relations

import "chronicle/projections"

// Prefix is the key space of this projection.
const Prefix byte = 0x60

const (
	tagChild    byte = 'c' // c room parent seq -> Child (every child)
	tagByRel    byte = 'r' // r room parent relType seq -> Child
	tagByType   byte = 't' // t room parent relType evType seq -> Child
	tagSummary  byte = 's' // s room parent -> Summary
	tagActivity byte = 'a' // a room latestSeq -> ThreadRef (threads by latest activity)
	tagPart     byte = 'p' // p room root userID -> uint64 BE: the user's thread events
	tagEdit     byte = 'e' // e room original ts eventID -> Edit (valid replacements)
	tagRelation byte = 'k' // k room child -> Relation (what a child relates to)
)

func childPrefix(roomID, parentID string) projections.Key {
	return projections.NewKey(Prefix, tagChild).Str(roomID).Str(parentID)
}

func byRelPrefix(roomID, parentID, relType string) projections.Key {
	return projections.NewKey(Prefix, tagByRel).Str(roomID).Str(parentID).Str(relType)
}

func byTypePrefix(roomID, parentID, relType, evType string) projections.Key {
	return projections.NewKey(Prefix, tagByType).Str(roomID).Str(parentID).Str(relType).Str(evType)
}

// scanPrefix is the index a Scan with these filters reads.
func scanPrefix(roomID, parentID, relType, evType string) projections.Key {
	switch {
	case relType == "":
		return childPrefix(roomID, parentID)
	case evType == "":
		return byRelPrefix(roomID, parentID, relType)
	}
	return byTypePrefix(roomID, parentID, relType, evType)
}

func summaryKey(roomID, parentID string) []byte {
	return projections.NewKey(Prefix, tagSummary).Str(roomID).Str(parentID)
}

func activityPrefix(roomID string) projections.Key {
	return projections.NewKey(Prefix, tagActivity).Str(roomID)
}

func participantKey(roomID, rootID, userID string) []byte {
	return projections.NewKey(Prefix, tagPart).Str(roomID).Str(rootID).Str(userID)
}

func editPrefix(roomID, originalID string) projections.Key {
	return projections.NewKey(Prefix, tagEdit).Str(roomID).Str(originalID)
}

// editKey orders edits as the spec does: by origin_server_ts, then event
// ID. The timestamp's sign bit is flipped so negative values sort first.
func editKey(roomID, originalID string, ts int64, eventID string) []byte {
	return editPrefix(roomID, originalID).U64(uint64(ts) ^ (1 << 63)).Str(eventID)
}

func relationKey(roomID, childID string) []byte {
	return projections.NewKey(Prefix, tagRelation).Str(roomID).Str(childID)
}
