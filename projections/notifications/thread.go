package notifications

import (
	"bytes"
	"encoding/json"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/relations"
)

// mayRelate reports whether content may carry m.relates_to, so that the
// event may have a relation (the relations projection only records
// relations named there). It is false only when no key can be it, however
// decoded: no escape, and no "_to" in any case (the letters t and o have
// no other case folds).
func mayRelate(content json.RawMessage) bool {
	if bytes.IndexByte(content, '\\') >= 0 {
		return true
	}
	for i := bytes.IndexByte(content, '_'); i >= 0; {
		if i+2 < len(content) && content[i+1]|0x20 == 't' && content[i+2]|0x20 == 'o' {
			return true
		}
		j := bytes.IndexByte(content[i+1:], '_')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// threadOf returns the thread root of an event ("" for the main timeline):
// its relation is followed up to three hops to an m.thread relation.
func threadOf(r pebble.Reader, room, eventID string) (string, error) {
	cur := eventID
	for range 3 {
		rel, err := relations.GetRelation(r, room, cur)
		if err != nil || rel == nil {
			return "", err
		}
		if rel.Thread {
			return rel.Parent, nil
		}
		cur = rel.Parent
	}
	return "", nil
}
