package rooms

import (
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"chronicle/projections"
)

// Redactions.
//
// A redaction is an accepted m.room.redaction event; the state machine has
// already checked the redaction power rule before authoring it. When the
// projection folds one, it rewrites the stored target event in place: its
// content becomes what the room version's redaction algorithm keeps, and
// the redaction event itself is kept in the target as RedactedBecause, so
// that every read (timelines, /messages, /event, /context, state) renders
// the redacted event with unsigned.redacted_because and nothing ever reads
// the old content from this projection again. The original PDU stays in
// the log record: the log is the unredacted system of record; the
// projection is what clients see.
//
// Places that copy an event's content are rewritten too: the
// unsigned.prev_content of the state event that replaced a redacted state
// event, and the redacted_because copy held by the target of a redaction
// that is itself redacted.
//
// Rules, following Synapse where the spec is silent:
//   - Only a non-state m.room.redaction event redacts, and only an event of
//     the same room it is in; others are ignored.
//   - The first redaction of an event is its redacted_because; later ones
//     change nothing (the content is already redacted).
//   - Room versions 1-10 carry "redacts" at the top level, 11+ inside
//     content. The projection stores both forms for clients, as the spec's
//     v11 notes ask: Redacts is always set (rendered at the top level) and
//     content.redacts is added in versions before 11.

const typeRedaction = "m.room.redaction"

// isRedaction reports whether ev redacts another event.
func isRedaction(ev *Event) bool { return ev.Type == typeRedaction && ev.StateKey == nil }

// foldRedaction normalises a new redaction event for clients and applies it
// to its target. Apply calls it for every event before storing it.
func foldRedaction(w projections.Writer, roomID, version string, ev *Event) error {
	if !isRedaction(ev) {
		return nil
	}
	normaliseRedaction(ev, id.RoomVersion(version))
	if ev.Redacts == "" {
		return nil
	}
	ref, err := LocateEvent(w, ev.Redacts)
	if err != nil || ref == nil || ref.RoomID != roomID {
		return err
	}
	target, err := GetEvent(w, roomID, ref.Seq)
	if err != nil || target == nil || target.RedactedBecause != nil {
		return err
	}
	innerTarget := ""
	if isRedaction(target) {
		innerTarget = target.Redacts
	}
	RedactEvent(target, id.RoomVersion(version))
	because := *ev
	because.RedactedBecause, because.RoomID = nil, ""
	target.RedactedBecause = &because
	if err := projections.SetMsgpack(w, eventKey(roomID, target.Seq), target); err != nil {
		return err
	}
	if target.StateKey != nil {
		if err := redactPrevContent(w, roomID, target); err != nil {
			return err
		}
	}
	if innerTarget != "" {
		return refreshRedactedBecause(w, roomID, innerTarget, target)
	}
	return nil
}

// normaliseRedaction gives a redaction event both forms of "redacts": the
// top-level field (from content in v11+) and content.redacts (added for
// clients in versions before 11).
func normaliseRedaction(ev *Event, version id.RoomVersion) {
	var content map[string]json.RawMessage
	_ = json.Unmarshal(ev.Content, &content) // accepted content is an object
	var inContent string
	_ = json.Unmarshal(content["redacts"], &inContent)
	if version.RedactsInContent() {
		ev.Redacts = inContent
		return
	}
	if ev.Redacts == "" || inContent != "" || content["redacts"] != nil {
		return
	}
	if content == nil {
		content = map[string]json.RawMessage{}
	}
	content["redacts"], _ = json.Marshal(ev.Redacts)
	if raw, err := json.Marshal(content); err == nil {
		ev.Content = raw
	}
}

// RedactContent is the room version's redaction algorithm applied to an
// event's content (mautrix-go implements it per version).
func RedactContent(evType string, content json.RawMessage, version id.RoomVersion) json.RawMessage {
	if len(content) == 0 {
		content = json.RawMessage("{}")
	}
	return json.RawMessage(pdu.RedactContent(evType, content, version))
}

// RedactEvent strips an event to what the redaction algorithm keeps, in
// the parts this projection stores. Top-level keys clients see (sender,
// type, state_key, origin_server_ts, event_id) are protected in every
// version; "redacts" is protected only inside content, from v11.
func RedactEvent(ev *Event, version id.RoomVersion) {
	ev.Content = RedactContent(ev.Type, ev.Content, version)
	if isRedaction(ev) && !version.RedactsInContent() {
		ev.Redacts = ""
	}
}

// redactPrevContent rewrites unsigned.prev_content of the state event that
// replaced target, which copied target's content when it was folded.
func redactPrevContent(w projections.Writer, roomID string, target *Event) error {
	p := historyPrefix(roomID, target.Type, *target.StateKey)
	it, err := w.NewIter(&pebble.IterOptions{LowerBound: p.U64(target.Seq + 1), UpperBound: p.End()})
	if err != nil {
		return fmt.Errorf("state history of %s: %w", target.EventID, err)
	}
	next := uint64(0)
	if it.First() {
		next = projections.U64At(it.Key())
	}
	if err := it.Close(); err != nil {
		return err
	}
	if next == 0 {
		return nil
	}
	succ, err := GetEvent(w, roomID, next)
	if err != nil || succ == nil || succ.ReplacesState != target.EventID {
		return err
	}
	succ.PrevContent = target.Content
	return projections.SetMsgpack(w, eventKey(roomID, next), succ)
}

// refreshRedactedBecause updates the copy of redaction, just redacted
// itself, that its own target holds as redacted_because.
func refreshRedactedBecause(w projections.Writer, roomID, targetID string, redaction *Event) error {
	ref, err := LocateEvent(w, targetID)
	if err != nil || ref == nil || ref.RoomID != roomID {
		return err
	}
	ev, err := GetEvent(w, roomID, ref.Seq)
	if err != nil || ev == nil || ev.RedactedBecause == nil || ev.RedactedBecause.EventID != redaction.EventID {
		return err
	}
	because := *redaction
	because.RedactedBecause, because.RoomID = nil, ""
	ev.RedactedBecause = &because
	return projections.SetMsgpack(w, eventKey(roomID, ref.Seq), ev)
}
