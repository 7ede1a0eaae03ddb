package audit

import (
	"reflect"
	"strings"
	"testing"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

func checkpointRecord(t *testing.T, cp facts.Checkpoint) *rlog.Record {
	t.Helper()
	body, err := facts.Encode(&cp)
	if err != nil {
		t.Fatal(err)
	}
	return &rlog.Record{Seq: cp.Head + 1, PrevHash: cp.HeadHash, Type: facts.TypeCheckpoint, Body: body}
}

func TestCheckCheckpoint(t *testing.T) {
	folds := []projections.FoldHash{{Name: "accounts", Version: 1, Hash: [32]byte{1}}, {Name: "rooms", Version: 3, Hash: [32]byte{2}}, {Name: "relations", Version: 1, Hash: [32]byte{3}}}
	cp := facts.Checkpoint{Head: 99, HeadHash: [32]byte{9}, Every: 100}
	for _, f := range folds {
		cp.Projections = append(cp.Projections, facts.CheckpointProjection{Name: f.Name, Version: f.Version, Fold: f.Hash})
	}
	if r := checkCheckpoint(checkpointRecord(t, cp), folds); r != nil {
		t.Fatalf("a matching checkpoint: %+v", r)
	}
	// The live node folded rooms differently: rooms (and what follows and
	// differs) is named.
	bad := cp
	bad.Projections = append([]facts.CheckpointProjection(nil), cp.Projections...)
	bad.Projections[1].Fold[0] ^= 1
	bad.Projections[2].Fold[0] ^= 1
	r := checkCheckpoint(checkpointRecord(t, bad), folds)
	if r == nil || !reflect.DeepEqual(r.Differs, []string{"rooms", "relations"}) || !strings.Contains(r.Reason, "projection rooms") {
		t.Fatalf("a differing checkpoint: %+v", r)
	}
	// Written under another rooms version: rooms and every later
	// projection are not comparable, so not reported.
	old := bad
	old.Projections = append([]facts.CheckpointProjection(nil), bad.Projections...)
	old.Projections[1].Version = 2
	if r := checkCheckpoint(checkpointRecord(t, old), folds); r != nil {
		t.Fatalf("a checkpoint of other versions: %+v", r)
	}
	// A checkpoint that does not attest the record before it.
	rec := checkpointRecord(t, cp)
	rec.PrevHash[0] ^= 1
	if r := checkCheckpoint(rec, folds); r == nil || !strings.Contains(r.Reason, "follows record 99") {
		t.Fatalf("a checkpoint with the wrong head: %+v", r)
	}
}

func TestEntryBodies(t *testing.T) {
	for _, c := range []struct{ in, want string }{{"UserID", "user_id"}, {"PDU", "pdu"}, {"FirstOfRequest", "first_of_request"}, {"MembershipSeq", "membership_seq"}, {"HeadHash", "head_hash"}} {
		if got := snake(c.in); got != c.want {
			t.Errorf("snake(%s) = %s, want %s", c.in, got, c.want)
		}
	}
	body, _ := facts.Encode(&facts.AccountRegistered{UserID: "@a:x", PasswordHash: "$2a$10$secret"})
	e := NewEntry(&rlog.Record{Seq: 1, Type: facts.TypeAccountRegistered, Body: body}, nil)
	if string(e.Body) != `{"user_id":"@a:x","password_hash":"[withheld]","guest":false}` {
		t.Errorf("registration body %s", e.Body)
	}
	body, _ = facts.Encode(&facts.RoomEvent{RoomID: "!r:x", EventID: "$e", PDU: []byte(`{"type":"m.room.message", "content":{"body":"hi"}}`)})
	e = NewEntry(&rlog.Record{Seq: 2, Type: facts.TypeRoomEvent, Body: body}, nil)
	if e.RoomID != "!r:x" || !strings.Contains(string(e.Body), `"pdu":{"type":"m.room.message","content":{"body":"hi"}}`) {
		t.Errorf("room event %s %s", e.RoomID, e.Body)
	}
	e = NewEntry(&rlog.Record{Seq: 3, Type: "some.future_type", Body: []byte{1, 2, 3}}, nil)
	if e.Body != nil || string(e.BodyBase64) != "\x01\x02\x03" {
		t.Errorf("unknown type: %+v", e)
	}
}
