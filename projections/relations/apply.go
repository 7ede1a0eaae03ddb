package relations

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
	"chronicle/projections/rooms"
)

// Projection folds event relationships. It runs after rooms, whose event
// index it reads to find a child's parent.
type Projection struct{}

func (Projection) Name() string    { return "relations" }
func (Projection) Version() uint32 { return 1 }
func (Projection) Prefix() byte    { return Prefix }

// maxRelPart bounds rel_type and event_id: they become key parts.
const maxRelPart = 255

// RelatesTo returns content["m.relates_to"].rel_type and .event_id when
// both are strings ("" otherwise). It never fails: content is client input.
func RelatesTo(content json.RawMessage) (relType, eventID string) {
	if !mayRelate(content) {
		return "", ""
	}
	var c struct {
		RelatesTo json.RawMessage `json:"m.relates_to"`
	}
	if json.Unmarshal(content, &c) != nil || len(c.RelatesTo) == 0 {
		return "", ""
	}
	var rt map[string]json.RawMessage
	if json.Unmarshal(c.RelatesTo, &rt) != nil {
		return "", ""
	}
	_ = json.Unmarshal(rt["rel_type"], &relType)
	_ = json.Unmarshal(rt["event_id"], &eventID)
	return relType, eventID
}

// mayRelate reports whether content can hold an m.relates_to member, as
// RelatesTo's json.Unmarshal matches member names: case-insensitively
// (Unicode simple folding, under which only "ſ", U+017F, folds onto one of
// the name's ASCII letters), and after unescaping \uXXXX. Most events
// relate to nothing, and this scan costs a fraction of the parse it saves
// on every event folded.
func mayRelate(content []byte) bool {
	if bytes.Contains(content, []byte(`\u`)) || bytes.Contains(content, []byte("\u017f")) {
		return true
	}
	const name = "m.relates_to"
	for i := 0; ; i++ {
		j := bytes.IndexByte(content[i:], '.') // the name's only non-letter but '_'
		if j < 0 {
			return false
		}
		i += j
		if i >= 1 && len(content)-(i-1) >= len(name) && bytes.EqualFold(content[i-1:i-1+len(name)], []byte(name)) {
			return true
		}
	}
}

func validPart(s string) bool {
	return s != "" && len(s) <= maxRelPart && !strings.ContainsRune(s, 0)
}

// hasNewContent reports whether content carries an m.new_content object.
func hasNewContent(content json.RawMessage) bool {
	var c struct {
		NewContent json.RawMessage `json:"m.new_content"`
	}
	if json.Unmarshal(content, &c) != nil || len(c.NewContent) == 0 {
		return false
	}
	var obj map[string]json.RawMessage
	return json.Unmarshal(c.NewContent, &obj) == nil && obj != nil
}

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	if rec.Type != facts.TypeRoomEvent {
		return nil
	}
	f, p, err := facts.RoomEventOf(rec)
	if err != nil {
		return err
	}
	if p.Type == "m.room.redaction" && p.StateKey == nil {
		return applyRedaction(w, f.RoomID, f.EventID, rec.Seq)
	}
	relType, parentID := RelatesTo(p.Content)
	if !validPart(relType) || !validPart(parentID) || !strings.HasPrefix(parentID, "$") {
		return nil
	}
	ref, err := rooms.LocateEvent(w, parentID)
	if err != nil {
		return err
	}
	if ref == nil || ref.RoomID != f.RoomID || ref.Seq >= rec.Seq {
		return nil // unknown parent, another room's event, or itself
	}
	parent, err := rooms.GetEvent(w, f.RoomID, ref.Seq)
	if err != nil || parent == nil {
		return err
	}
	child := Child{EventID: f.EventID, Type: p.Type, RelType: relType, Sender: p.Sender, StateKey: p.StateKey, Seq: rec.Seq}
	rel := Relation{Parent: parentID, Child: child, Seq: rec.Seq}
	sum, err := summary(w, f.RoomID, parentID)
	if err != nil {
		return err
	}
	sum.Children++
	parentRel, _ := RelatesTo(parent.Content)
	switch relType {
	case RelThread:
		// A thread root must not itself relate to anything.
		if parentRel != "" {
			break
		}
		rel.Thread = true
		if err := moveActivity(w, f.RoomID, parent, sum.ThreadLatest, rec.Seq); err != nil {
			return err
		}
		sum.Threads++
		sum.ThreadLatest = rec.Seq
		if err := addParticipant(w, f.RoomID, parentID, p.Sender, 1); err != nil {
			return err
		}
	case RelReplace:
		valid := p.Sender == parent.Sender && p.Type == parent.Type && p.StateKey == nil && parent.StateKey == nil &&
			parentRel != RelReplace && (p.Type == "m.room.encrypted" || hasNewContent(p.Content))
		if !valid {
			break
		}
		rel.Edit, rel.EditTS = true, p.OriginServerTS
		if err := projections.SetMsgpack(w, editKey(f.RoomID, parentID, p.OriginServerTS, f.EventID),
			&Edit{EventID: f.EventID, Seq: rec.Seq, TS: p.OriginServerTS}); err != nil {
			return err
		}
		sum.Edits++
	case RelReference:
		sum.References++
	}
	for _, k := range childKeys(f.RoomID, parentID, &child) {
		if err := projections.SetMsgpack(w, k, &child); err != nil {
			return err
		}
	}
	if err := projections.SetMsgpack(w, relationKey(f.RoomID, f.EventID), &rel); err != nil {
		return err
	}
	return projections.SetMsgpack(w, summaryKey(f.RoomID, parentID), sum)
}

// applyRedaction de-aggregates the target of a redaction that took effect.
// The rooms projection (folded before this one) decides that: it applies
// the first redaction of an event of the same room and records it as the
// target's RedactedBecause; it also normalises where "redacts" is, per
// room version, in the stored redaction event.
func applyRedaction(w projections.Writer, roomID, redactionID string, seq uint64) error {
	red, err := rooms.GetEvent(w, roomID, seq)
	if err != nil || red == nil || red.Redacts == "" {
		return err
	}
	ref, err := rooms.LocateEvent(w, red.Redacts)
	if err != nil || ref == nil || ref.RoomID != roomID {
		return err
	}
	target, err := rooms.GetEvent(w, roomID, ref.Seq)
	if err != nil || target == nil || target.RedactedBecause == nil || target.RedactedBecause.EventID != redactionID {
		return err
	}
	return unrelate(w, roomID, target.EventID)
}

// childKeys are the three index entries of one child.
func childKeys(roomID, parentID string, c *Child) [][]byte {
	return [][]byte{
		childPrefix(roomID, parentID).U64(c.Seq),
		byRelPrefix(roomID, parentID, c.RelType).U64(c.Seq),
		byTypePrefix(roomID, parentID, c.RelType, c.Type).U64(c.Seq),
	}
}

func summary(r pebble.Reader, roomID, parentID string) (*Summary, error) {
	s, err := projections.Lookup[Summary](r, summaryKey(roomID, parentID))
	if s == nil && err == nil {
		s = &Summary{}
	}
	return s, err
}

// moveActivity moves a thread's entry in the activity index from position
// from (0: not listed) to to (0: unlist it).
func moveActivity(w projections.Writer, roomID string, root *rooms.Event, from, to uint64) error {
	if from != 0 {
		if err := w.Delete(activityPrefix(roomID).U64(from), nil); err != nil {
			return fmt.Errorf("unlist thread %s: %w", root.EventID, err)
		}
	}
	if to == 0 {
		return nil
	}
	return projections.SetMsgpack(w, activityPrefix(roomID).U64(to), &ThreadRef{RootID: root.EventID, RootSeq: root.Seq})
}

// addParticipant changes the number of a user's events in a thread by d.
func addParticipant(w projections.Writer, roomID, rootID, userID string, d int64) error {
	k := participantKey(roomID, rootID, userID)
	n, err := readU64(w, k)
	if err != nil {
		return err
	}
	n = uint64(int64(n) + d)
	if n == 0 {
		return w.Delete(k, nil)
	}
	return w.Set(k, binary.BigEndian.AppendUint64(nil, n), nil)
}

func readU64(r pebble.Reader, k []byte) (uint64, error) {
	v, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("get %x: %w", k, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("value of %x has %d bytes", k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// unrelate removes the child from every index and aggregate of its parent:
// what a redaction of the child must do (its relationship is broken). It
// does nothing for an event that relates to nothing. See the package doc.
func unrelate(w projections.Writer, roomID, childID string) error {
	rel, err := projections.Lookup[Relation](w, relationKey(roomID, childID))
	if err != nil || rel == nil {
		return err
	}
	child := rel.Child
	child.Seq = rel.Seq
	for _, k := range childKeys(roomID, rel.Parent, &child) {
		if err := w.Delete(k, nil); err != nil {
			return fmt.Errorf("unindex %s: %w", childID, err)
		}
	}
	if err := w.Delete(relationKey(roomID, childID), nil); err != nil {
		return fmt.Errorf("unindex %s: %w", childID, err)
	}
	sum, err := summary(w, roomID, rel.Parent)
	if err != nil {
		return err
	}
	sum.Children--
	switch {
	case rel.Thread:
		sum.Threads--
		if err := addParticipant(w, roomID, rel.Parent, child.Sender, -1); err != nil {
			return err
		}
		if sum.ThreadLatest == rel.Seq {
			// The latest thread event is gone: the one before it is latest.
			latest, err := lastSeq(w, byRelPrefix(roomID, rel.Parent, RelThread))
			if err != nil {
				return err
			}
			ref, err := rooms.LocateEvent(w, rel.Parent)
			if err != nil {
				return err
			}
			if ref == nil {
				return fmt.Errorf("thread root %s is not indexed", rel.Parent)
			}
			if err := moveActivity(w, roomID, &rooms.Event{EventID: rel.Parent, Seq: ref.Seq}, sum.ThreadLatest, latest); err != nil {
				return err
			}
			sum.ThreadLatest = latest
		}
	case rel.Edit:
		if err := w.Delete(editKey(roomID, rel.Parent, rel.EditTS, childID), nil); err != nil {
			return fmt.Errorf("unindex edit %s: %w", childID, err)
		}
		sum.Edits--
	case child.RelType == RelReference:
		sum.References--
	}
	if sum.Empty() {
		return w.Delete(summaryKey(roomID, rel.Parent), nil)
	}
	return projections.SetMsgpack(w, summaryKey(roomID, rel.Parent), sum)
}

// lastSeq returns the position in the last key under p, or 0.
func lastSeq(r pebble.Reader, p projections.Key) (uint64, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: p.End()})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	return projections.U64At(it.Key()), nil
}
