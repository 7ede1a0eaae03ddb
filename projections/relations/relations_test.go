package relations_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/relations"
	"chronicle/raft/machine"
)

const (
	alice = "@alice:localhost"
	bob   = "@bob:localhost"
	carol = "@carol:localhost"
)

const baseTime int64 = 1_700_000_000_000

// driver applies commands to a real machine at consecutive indexes and
// keeps them for replays.
type driver struct {
	t    *testing.T
	m    *machine.Machine
	idx  uint64
	head uint64 // the log position after the last command
	cmds []*machine.Command
}

func openMachine(t *testing.T) *machine.Machine {
	t.Helper()
	m, err := machine.Open(t.TempDir(), machine.Config{ServerName: "localhost", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newDriver(t *testing.T) *driver {
	t.Helper()
	d := &driver{t: t, m: openMachine(t)}
	for _, u := range []string{alice, bob, carol} {
		d.do(machine.CmdRegister, "", &machine.Register{UserID: u, DeviceID: "D"})
	}
	return d
}

// doAt applies a command with the given timestamp (0: one per index).
func (d *driver) doAt(ts int64, typ, actor string, payload any) *machine.Result {
	d.t.Helper()
	d.idx++
	if ts == 0 {
		ts = baseTime + int64(d.idx)*1000
	}
	c, err := machine.NewCommand(typ, ts, actor, "D", payload)
	if err != nil {
		d.t.Fatal(err)
	}
	res, err := d.m.Apply(d.idx, c)
	if err != nil {
		d.t.Fatal(err)
	}
	if res.Err != nil {
		d.t.Fatalf("index %d %s by %s: %v", d.idx, typ, actor, res.Err)
	}
	d.cmds = append(d.cmds, c)
	d.head = res.Seq
	return res
}

func (d *driver) do(typ, actor string, payload any) *machine.Result {
	d.t.Helper()
	return d.doAt(0, typ, actor, payload)
}

func (d *driver) room(actor string) string {
	d.t.Helper()
	return d.do(machine.CmdCreateRoom, actor, &machine.CreateRoom{Preset: "public_chat"}).RoomID
}

func (d *driver) join(user, roomID string) {
	d.t.Helper()
	d.do(machine.CmdMembership, user, &machine.Membership{RoomID: roomID, Target: user, Membership: "join"})
}

// send sends an event of type evType (m.room.message if "") with content.
func (d *driver) sendAt(ts int64, actor, roomID, evType, content string) *machine.Result {
	d.t.Helper()
	if evType == "" {
		evType = "m.room.message"
	}
	return d.doAt(ts, machine.CmdSendEvent, actor, &machine.SendEvent{RoomID: roomID, Type: evType, Content: json.RawMessage(content)})
}

func (d *driver) send(actor, roomID, content string) *machine.Result {
	d.t.Helper()
	return d.sendAt(0, actor, roomID, "", content)
}

func (d *driver) say(actor, roomID, body string) *machine.Result {
	d.t.Helper()
	return d.send(actor, roomID, fmt.Sprintf(`{"msgtype":"m.text","body":%q}`, body))
}

func relContent(relType, parent, extra string) string {
	return fmt.Sprintf(`{"msgtype":"m.text","body":"x"%s,"m.relates_to":{"rel_type":%q,"event_id":%q}}`, extra, relType, parent)
}

func (d *driver) relate(actor, roomID, relType, parent string) *machine.Result {
	d.t.Helper()
	return d.send(actor, roomID, relContent(relType, parent, ""))
}

func (d *driver) edit(ts int64, actor, roomID, parent string) *machine.Result {
	d.t.Helper()
	return d.sendAt(ts, actor, roomID, "", relContent(relations.RelReplace, parent, `,"m.new_content":{"msgtype":"m.text","body":"new"}`))
}

func (d *driver) view(fn func(r pebble.Reader)) {
	d.t.Helper()
	if err := d.m.View(func(r pebble.Reader) error { fn(r); return nil }); err != nil {
		d.t.Fatal(err)
	}
}

func scanIDs(t *testing.T, r pebble.Reader, roomID, parent, relType, evType string, after, upTo uint64, backward bool) []string {
	t.Helper()
	var out []string
	err := relations.Scan(r, roomID, parent, relType, evType, after, upTo, backward, func(c *relations.Child) (bool, error) {
		out = append(out, c.EventID)
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func threadRoots(t *testing.T, r pebble.Reader, roomID string, upTo uint64) []string {
	t.Helper()
	var out []string
	err := relations.Threads(r, roomID, upTo, func(th *relations.ThreadRef) (bool, error) {
		out = append(out, th.RootID)
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func editIDs(t *testing.T, r pebble.Reader, roomID, original string) []string {
	t.Helper()
	var out []string
	err := relations.Edits(r, roomID, original, func(e *relations.Edit) (bool, error) {
		out = append(out, e.EventID)
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRelationsIndexes(t *testing.T) {
	d := newDriver(t)
	room := d.room(alice)
	d.join(bob, room)
	other := d.room(carol)
	otherMsg := d.say(carol, other, "elsewhere").EventID

	root := d.say(alice, room, "root")
	t1 := d.relate(bob, room, relations.RelThread, root.EventID)
	t2 := d.relate(alice, room, relations.RelThread, root.EventID)
	annotation := d.send(bob, room, fmt.Sprintf(`{"m.relates_to":{"rel_type":"m.annotation","event_id":%q,"key":"👍"}}`, root.EventID))
	ref := d.relate(bob, room, relations.RelReference, root.EventID)
	// A custom event type in the thread, for the event type filter.
	t3 := d.sendAt(0, bob, room, "org.example.poll", relContent(relations.RelThread, root.EventID, ""))

	// Relations the projection must ignore.
	d.relate(bob, room, relations.RelThread, "$unknown")
	d.relate(bob, room, relations.RelThread, otherMsg)
	d.send(bob, room, fmt.Sprintf(`{"m.relates_to":{"rel_type":7,"event_id":%q}}`, root.EventID))
	d.send(bob, room, fmt.Sprintf(`{"m.relates_to":[%q]}`, root.EventID))
	d.send(bob, room, `{"m.relates_to":"nope"}`)
	// A thread off a thread event is listed but forms no thread.
	nested := d.relate(alice, room, relations.RelThread, t1.EventID)

	d.view(func(r pebble.Reader) {
		all := scanIDs(t, r, room, root.EventID, "", "", 0, root.Seq+100, false)
		want := []string{t1.EventID, t2.EventID, annotation.EventID, ref.EventID, t3.EventID}
		if !slices.Equal(all, want) {
			t.Errorf("children of root %v, want %v", all, want)
		}
		rev := slices.Clone(want)
		slices.Reverse(rev)
		if got := scanIDs(t, r, room, root.EventID, "", "", 0, root.Seq+100, true); !slices.Equal(got, rev) {
			t.Errorf("children backward %v, want %v", got, rev)
		}
		if got := scanIDs(t, r, room, root.EventID, relations.RelThread, "", 0, root.Seq+100, false); !slices.Equal(got, []string{t1.EventID, t2.EventID, t3.EventID}) {
			t.Errorf("thread children %v", got)
		}
		if got := scanIDs(t, r, room, root.EventID, relations.RelThread, "m.room.message", 0, root.Seq+100, false); !slices.Equal(got, []string{t1.EventID, t2.EventID}) {
			t.Errorf("thread m.room.message children %v", got)
		}
		if got := scanIDs(t, r, room, root.EventID, relations.RelThread, "org.example.poll", 0, root.Seq+100, false); !slices.Equal(got, []string{t3.EventID}) {
			t.Errorf("thread poll children %v", got)
		}
		// Bounds: after exclusive, upTo inclusive.
		if got := scanIDs(t, r, room, root.EventID, "", "", t1.Seq, ref.Seq, false); !slices.Equal(got, []string{t2.EventID, annotation.EventID, ref.EventID}) {
			t.Errorf("children in (t1, ref] %v", got)
		}
		if got := scanIDs(t, r, room, root.EventID, "", "", ref.Seq, t1.Seq, false); got != nil {
			t.Errorf("inverted range %v", got)
		}
		if got := scanIDs(t, r, room, root.EventID, "m.annotation", "m.room.message", 0, root.Seq+100, false); !slices.Equal(got, []string{annotation.EventID}) {
			t.Errorf("annotations %v", got)
		}
		if got := scanIDs(t, r, room, t1.EventID, "", "", 0, root.Seq+100, false); !slices.Equal(got, []string{nested.EventID}) {
			t.Errorf("children of t1 %v", got)
		}
		if got := scanIDs(t, r, other, otherMsg, "", "", 0, root.Seq+100, false); got != nil {
			t.Errorf("a relation across rooms was indexed: %v", got)
		}

		sum, err := relations.GetSummary(r, room, root.EventID)
		if err != nil || sum == nil {
			t.Fatalf("summary %v %v", sum, err)
		}
		if *sum != (relations.Summary{Children: 5, Threads: 3, ThreadLatest: t3.Seq, References: 1}) {
			t.Errorf("summary %+v", *sum)
		}
		// t1 has a child, but the thread off it is invalid: no thread.
		if s, _ := relations.GetSummary(r, room, t1.EventID); s == nil || s.Threads != 0 || s.Children != 1 {
			t.Errorf("summary of t1 %+v", s)
		}
		if got := threadRoots(t, r, room, root.Seq+100); !slices.Equal(got, []string{root.EventID}) {
			t.Errorf("threads %v", got)
		}
		for u, want := range map[string]bool{alice: true, bob: true, carol: false} {
			if got, err := relations.Participated(r, room, root.EventID, u); got != want || err != nil {
				t.Errorf("%s participated %v (%v), want %v", u, got, err, want)
			}
		}
		rel, err := relations.GetRelation(r, room, t2.EventID)
		if err != nil || rel == nil || rel.Parent != root.EventID || !rel.Thread || rel.Child.RelType != relations.RelThread || rel.Seq != t2.Seq {
			t.Errorf("relation of t2 %+v %v", rel, err)
		}
		if rel, _ := relations.GetRelation(r, room, nested.EventID); rel == nil || rel.Thread {
			t.Errorf("relation of the nested thread event %+v", rel)
		}
	})
}

func TestThreadsByActivity(t *testing.T) {
	d := newDriver(t)
	room := d.room(alice)
	d.join(bob, room)
	r1 := d.say(alice, room, "one").EventID
	r2 := d.say(bob, room, "two").EventID
	r3 := d.say(alice, room, "three").EventID
	a := d.relate(bob, room, relations.RelThread, r1)
	d.relate(bob, room, relations.RelThread, r2)
	d.relate(alice, room, relations.RelThread, r3)
	mid := d.head
	d.relate(alice, room, relations.RelThread, r1) // r1 becomes the most active
	d.view(func(r pebble.Reader) {
		head := d.head
		if got := threadRoots(t, r, room, head); !slices.Equal(got, []string{r1, r3, r2}) {
			t.Errorf("threads by activity %v, want r1 r3 r2", got)
		}
		// As of an earlier position (a /threads page token), r1 was last.
		if got := threadRoots(t, r, room, mid); !slices.Equal(got, []string{r3, r2}) {
			t.Errorf("threads up to %d: %v, want r3 r2 (r1 moved past it)", mid, got)
		}
		if got := threadRoots(t, r, room, a.Seq); got != nil {
			t.Errorf("threads up to the first reply %v (r1 moved on)", got)
		}
		if ok, _ := relations.Participated(r, room, r2, alice); ok {
			t.Error("alice did not post in r2's thread")
		}
		if ok, _ := relations.Participated(r, room, r1, alice); !ok {
			t.Error("alice posted in r1's thread")
		}
	})
}

func TestEdits(t *testing.T) {
	d := newDriver(t)
	room := d.room(alice)
	d.join(bob, room)
	orig := d.say(alice, room, "original")
	t0 := baseTime + 1_000_000
	e1 := d.edit(t0, alice, room, orig.EventID)
	e2 := d.edit(t0+5000, alice, room, orig.EventID)
	// Sent later but stamped earlier (another node's clock): not latest.
	e3 := d.edit(t0+1000, alice, room, orig.EventID)
	// Same timestamp as e2: the larger event ID wins.
	e4 := d.edit(t0+5000, alice, room, orig.EventID)
	// Invalid edits: another sender, no m.new_content, another type, an
	// edit of an edit, a state event.
	byBob := d.edit(0, bob, room, orig.EventID)
	noNew := d.relate(alice, room, relations.RelReplace, orig.EventID)
	otherType := d.sendAt(0, alice, room, "org.example.other", relContent(relations.RelReplace, orig.EventID, `,"m.new_content":{}`))
	editOfEdit := d.edit(0, alice, room, e1.EventID)
	sk := ""
	stateEdit := d.do(machine.CmdSendEvent, alice, &machine.SendEvent{RoomID: room, Type: "m.room.message", StateKey: &sk,
		Content: json.RawMessage(relContent(relations.RelReplace, orig.EventID, `,"m.new_content":{}`))})
	// An encrypted edit's m.new_content is in the ciphertext.
	encOrig := d.sendAt(0, alice, room, "m.room.encrypted", `{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"x"}`)
	encEdit := d.sendAt(0, alice, room, "m.room.encrypted", `{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"y","m.relates_to":{"rel_type":"m.replace","event_id":"`+encOrig.EventID+`"}}`)

	d.view(func(r pebble.Reader) {
		latest, other := e2.EventID, e4.EventID
		if latest < other {
			latest, other = other, latest
		}
		want := []string{latest, other, e3.EventID, e1.EventID}
		if got := editIDs(t, r, room, orig.EventID); !slices.Equal(got, want) {
			t.Errorf("edits most recent first %v, want %v", got, want)
		}
		sum, _ := relations.GetSummary(r, room, orig.EventID)
		if sum == nil || sum.Edits != 4 || sum.Children != 8 {
			t.Errorf("summary %+v, want 4 valid edits of 8 children", sum)
		}
		// Every edit is still listed for /relations.
		all := scanIDs(t, r, room, orig.EventID, relations.RelReplace, "", 0, 1<<62, false)
		for _, id := range []string{byBob.EventID, noNew.EventID, otherType.EventID, stateEdit.EventID} {
			if !slices.Contains(all, id) {
				t.Errorf("invalid edit %s not listed", id)
			}
		}
		if got := editIDs(t, r, room, e1.EventID); got != nil {
			t.Errorf("an edit of an edit was aggregated: %v", got)
		}
		if s, _ := relations.GetSummary(r, room, e1.EventID); s == nil || s.Children != 1 || s.Edits != 0 {
			t.Errorf("summary of e1 %+v (edit %s)", s, editOfEdit.EventID)
		}
		if got := editIDs(t, r, room, encOrig.EventID); !slices.Equal(got, []string{encEdit.EventID}) {
			t.Errorf("encrypted edits %v", got)
		}
	})
}

func TestDescendants(t *testing.T) {
	d := newDriver(t)
	room := d.room(alice)
	root := d.say(alice, room, "root")
	// A chain of references four deep, and a thread reply with an edit.
	r1 := d.relate(alice, room, relations.RelReference, root.EventID)
	r2 := d.relate(alice, room, relations.RelReference, r1.EventID)
	th := d.relate(alice, room, relations.RelThread, root.EventID)
	r3 := d.relate(alice, room, relations.RelReference, r2.EventID)
	r4 := d.relate(alice, room, relations.RelReference, r3.EventID)
	ed := d.edit(0, alice, room, th.EventID)
	// A reference reached only through the thread event.
	viaThread := d.relate(alice, room, relations.RelReference, th.EventID)

	ids := func(cs []*relations.Child) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.EventID)
		}
		return out
	}
	d.view(func(r pebble.Reader) {
		head := d.head
		got, trunc, err := relations.Descendants(r, room, root.EventID, "", "", 3, head, 100)
		want := []string{r1.EventID, r2.EventID, th.EventID, r3.EventID, ed.EventID, viaThread.EventID}
		if err != nil || trunc || !slices.Equal(ids(got), want) {
			t.Errorf("descendants depth 3: %v (trunc %v, %v), want %v (not r4 %s)", ids(got), trunc, err, want, r4.EventID)
		}
		got, _, _ = relations.Descendants(r, room, root.EventID, relations.RelReference, "", 3, head, 100)
		if want := []string{r1.EventID, r2.EventID, r3.EventID}; !slices.Equal(ids(got), want) {
			t.Errorf("reference descendants %v, want %v (none through the thread event)", ids(got), want)
		}
		got, _, _ = relations.Descendants(r, room, root.EventID, "", "", 1, head, 100)
		if want := []string{r1.EventID, th.EventID}; !slices.Equal(ids(got), want) {
			t.Errorf("depth 1 %v, want %v", ids(got), want)
		}
		got, _, _ = relations.Descendants(r, room, root.EventID, "", "", 3, th.Seq, 100)
		if want := []string{r1.EventID, r2.EventID, th.EventID}; !slices.Equal(ids(got), want) {
			t.Errorf("descendants up to %d: %v, want %v", th.Seq, ids(got), want)
		}
		got, trunc, _ = relations.Descendants(r, room, root.EventID, "", "", 3, head, 2)
		if len(got) != 2 || !trunc {
			t.Errorf("bounded descendants %v, truncated %v", ids(got), trunc)
		}
	})
}

// copyStore copies the machine's whole state store into a fresh Pebble
// database, for tests that fold into it directly.
func copyStore(t *testing.T, m *machine.Machine) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := db.NewBatch()
	err = m.View(func(r pebble.Reader) error {
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{0}, UpperBound: []byte{0xff}})
		if err != nil {
			return err
		}
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			if err := b.Set(it.Key(), it.Value(), nil); err != nil {
				return err
			}
		}
		return it.Error()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	return db
}

// refold clears the relations projection in db and folds every record
// again except those at the skipped positions.
func refold(t *testing.T, db *pebble.DB, skip ...uint64) [32]byte {
	t.Helper()
	p := relations.Projection{}
	if err := db.DeleteRange([]byte{p.Prefix()}, []byte{p.Prefix() + 1}, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	b := db.NewIndexedBatch()
	err := rlog.Scan(db, 1, 0, func(rec *rlog.Record, _ []byte) error {
		if slices.Contains(skip, rec.Seq) {
			return nil
		}
		return p.Apply(b, rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	dg, err := projections.Digest(db, p)
	if err != nil {
		t.Fatal(err)
	}
	return dg
}

// unrelate removes a child as a redaction would, and must leave the
// projection exactly as if the child had never related to anything.
func TestUnrelateMatchesNeverRelated(t *testing.T) {
	d := newDriver(t)
	room := d.room(alice)
	d.join(bob, room)
	root := d.say(alice, room, "root")
	other := d.say(bob, room, "other root")
	t1 := d.relate(bob, room, relations.RelThread, root.EventID)
	d.relate(bob, room, relations.RelThread, other.EventID)
	t2 := d.relate(alice, room, relations.RelThread, root.EventID)
	e1 := d.edit(0, alice, room, root.EventID)
	e2 := d.edit(0, alice, room, root.EventID)
	ref := d.relate(bob, room, relations.RelReference, root.EventID)
	only := d.relate(bob, room, relations.RelThread, other.EventID)
	lone := d.say(alice, room, "lone root")
	loneReply := d.relate(bob, room, relations.RelThread, lone.EventID)
	plain := d.say(bob, room, "no relation")

	for _, victim := range []*machine.Result{t1, t2, e1, e2, ref, only, loneReply, plain} {
		db := copyStore(t, d.m)
		want := refold(t, db, victim.Seq)
		refold(t, db)
		b := db.NewIndexedBatch()
		if err := relations.Unrelate(b, room, victim.EventID); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		got, err := projections.Digest(db, relations.Projection{})
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("after unrelating %s the projection differs from one that never folded it", victim.EventID)
		}
	}
	// The thread whose only reply went is gone from the activity index;
	// the one whose latest reply went is listed by the one before.
	db := copyStore(t, d.m)
	b := db.NewIndexedBatch()
	for _, v := range []*machine.Result{loneReply, t2} {
		if err := relations.Unrelate(b, room, v.EventID); err != nil {
			t.Fatal(err)
		}
	}
	if got := threadRoots(t, b, room, 1<<62); !slices.Equal(got, []string{other.EventID, root.EventID}) {
		t.Errorf("threads after unrelating %v", got)
	}
	if s, _ := relations.GetSummary(b, room, root.EventID); s == nil || s.ThreadLatest != t1.Seq || s.Threads != 1 {
		t.Errorf("root summary after unrelating its latest reply %+v", s)
	}
	if ok, _ := relations.Participated(b, room, root.EventID, alice); ok {
		t.Error("alice still participates after her only reply went")
	}
	b.Close()
}

// Two machines fed the same commands hold identical relations, and a
// rebuild from the log gives the live contents.
func TestDeterministicAndRebuildable(t *testing.T) {
	d := newDriver(t)
	room := d.room(alice)
	d.join(bob, room)
	root := d.say(alice, room, "root")
	for i := range 10 {
		who := alice
		if i%2 == 0 {
			who = bob
		}
		tr := d.relate(who, room, relations.RelThread, root.EventID)
		d.relate(alice, room, relations.RelReference, tr.EventID)
		d.edit(0, who, room, tr.EventID)
	}
	m2 := openMachine(t)
	for i, c := range d.cmds {
		if _, err := m2.Apply(uint64(i+1), c); err != nil {
			t.Fatal(err)
		}
	}
	var live [32]byte
	digest := func(m *machine.Machine) [32]byte {
		var out [32]byte
		if err := m.View(func(r pebble.Reader) error {
			var err error
			out, err = projections.Digest(r, relations.Projection{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	live = digest(d.m)
	if digest(m2) != live {
		t.Error("two machines with the same commands hold different relations")
	}
	if refold(t, copyStore(t, d.m)) != live {
		t.Error("refolding the log gives different relations")
	}
}

// quietLogger drops Pebble's informational chatter.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)              {}
func (quietLogger) Errorf(format string, args ...any) { fmt.Printf(format+"\n", args...) }
func (quietLogger) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// A redacted child is de-aggregated; a redacted parent keeps its children.
func TestRedactions(t *testing.T) {
	d := newDriver(t)
	room := d.room(alice)
	d.join(bob, room)
	root := d.say(alice, room, "root")
	t1 := d.relate(bob, room, relations.RelThread, root.EventID)
	t2 := d.relate(bob, room, relations.RelThread, root.EventID)
	e1 := d.edit(0, alice, room, root.EventID)
	ref := d.relate(bob, room, relations.RelReference, root.EventID)
	redact := func(actor, target string) {
		t.Helper()
		d.do(machine.CmdRedact, actor, &machine.Redact{RoomID: room, EventID: target, Content: json.RawMessage(`{}`)})
	}
	redact(bob, t2.EventID)
	redact(alice, e1.EventID)
	redact(alice, e1.EventID) // a second redaction changes nothing
	d.view(func(r pebble.Reader) {
		sum, _ := relations.GetSummary(r, room, root.EventID)
		if sum == nil || *sum != (relations.Summary{Children: 2, Threads: 1, ThreadLatest: t1.Seq, References: 1}) {
			t.Errorf("summary after redacting t2 and the edit %+v", sum)
		}
		if got := scanIDs(t, r, room, root.EventID, "", "", 0, d.head, false); !slices.Equal(got, []string{t1.EventID, ref.EventID}) {
			t.Errorf("children after redactions %v", got)
		}
		if got := editIDs(t, r, room, root.EventID); got != nil {
			t.Errorf("edits after redacting the only one %v", got)
		}
		if rel, _ := relations.GetRelation(r, room, t2.EventID); rel != nil {
			t.Errorf("redacted t2 still relates: %+v", rel)
		}
	})
	redact(alice, root.EventID)
	d.view(func(r pebble.Reader) {
		if got := scanIDs(t, r, room, root.EventID, "", "", 0, d.head, false); !slices.Equal(got, []string{t1.EventID, ref.EventID}) {
			t.Errorf("children of the redacted root %v", got)
		}
		if got := threadRoots(t, r, room, d.head); !slices.Equal(got, []string{root.EventID}) {
			t.Errorf("threads after redacting the root %v", got)
		}
	})
	// Folding the log again gives the same projection.
	var live [32]byte
	d.m.View(func(r pebble.Reader) error {
		live, _ = projections.Digest(r, relations.Projection{})
		return nil
	})
	if refold(t, copyStore(t, d.m)) != live {
		t.Error("refolding a log with redactions gives different relations")
	}
}
