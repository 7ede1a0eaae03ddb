package machine

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/audit"
	"chronicle/projections/facts"
)

// withCheckpoints copies a command through its Raft encoding and stamps a
// checkpoint interval into it, as raft.Node.Submit does.
func withCheckpoints(t testing.TB, c *Command, every uint64) *Command {
	t.Helper()
	enc, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeCommand(enc)
	if err != nil {
		t.Fatal(err)
	}
	out.CheckpointEvery = every
	return out
}

// replayWithCheckpoints applies steps with a checkpoint interval and
// checks every command is decided as before (positions move by the
// checkpoints, so only the rejections are compared). It returns each
// step's log head before and after.
func replayWithCheckpoints(t *testing.T, m *Machine, steps []step, every uint64) (before, after []uint64) {
	t.Helper()
	for _, s := range steps {
		before = append(before, m.Log().Pending().Seq)
		res, err := m.Apply(s.Index, withCheckpoints(t, s.Cmd, every))
		if err != nil {
			t.Fatalf("index %d (%s): %v", s.Index, s.Cmd.Type, err)
		}
		if (res.Err == nil) != (s.Res.Err == nil) {
			t.Fatalf("index %d (%s): rejection %v, first machine %v", s.Index, s.Cmd.Type, res.Err, s.Res.Err)
		}
		after = append(after, res.Seq)
	}
	return before, after
}

func TestCheckpointsAreDeterministic(t *testing.T) {
	a := openMachine(t, t.TempDir())
	defer a.Close()
	w := newWorkload(t, a)
	buildFullWorkload(w)
	const every = 7

	b := openMachine(t, t.TempDir())
	defer b.Close()
	before, after := replayWithCheckpoints(t, b, w.steps, every)

	// Another machine, closed and reopened midway: fold hashes must
	// survive the restart.
	dir := t.TempDir()
	c := openMachine(t, dir)
	half := len(w.steps) / 2
	replayWithCheckpoints(t, c, w.steps[:half], every)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openMachine(t, dir)
	defer c.Close()
	replayWithCheckpoints(t, c, w.steps[half:], every)
	compareStores(t, b, c)

	// A checkpoint follows exactly the commands whose records crossed a
	// multiple of the interval, and attests the head before it.
	checkpoints := 0
	if err := b.View(func(r pebble.Reader) error {
		for i, s := range w.steps {
			start, end := before[i], after[i]
			if s.Res.Err != nil {
				if end != start {
					t.Errorf("index %d: a rejected command moved the head %d -> %d", s.Index, start, end)
				}
				continue
			}
			if end == start {
				// Accepted but wrote nothing (a retried send, a claim with
				// nothing to give): no records, so no checkpoint either;
				// the record at end is an earlier command's.
				continue
			}
			last, err := rlog.Get(r, end)
			if err != nil {
				return err
			}
			isCP := last.Type == facts.TypeCheckpoint
			cmdEnd := end
			if isCP {
				cmdEnd = end - 1
				checkpoints++
				var cp facts.Checkpoint
				if err := facts.Decode(last.Body, &cp); err != nil {
					return err
				}
				if cp.Head != end-1 || rlog.Hash(cp.HeadHash) != last.PrevHash || cp.Every != every || last.Actor != "" {
					t.Errorf("checkpoint %d: head %d every %d actor %q", end, cp.Head, cp.Every, last.Actor)
				}
				if len(cp.Projections) != len(b.Engine().Projections()) {
					t.Errorf("checkpoint %d holds %d projections", end, len(cp.Projections))
				}
			}
			if crossed := cmdEnd/every > start/every; crossed != isCP {
				t.Errorf("index %d: records %d..%d crossed a multiple of %d: %v, checkpoint written: %v", s.Index, start+1, cmdEnd, every, crossed, isCP)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if checkpoints < 20 {
		t.Fatalf("only %d checkpoints", checkpoints)
	}

	// And a verifier replaying the log agrees with every one of them.
	snap, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	env := &audit.Env{Engine: NewEngine(), Options: StoreOptions, TempDir: t.TempDir()}
	rep, err := env.Verify(snap, audit.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Replay.CheckpointsChecked != checkpoints {
		t.Fatalf("verify: ok=%v failure=%q checked %d of %d checkpoints", rep.OK, rep.Failure, rep.Replay.CheckpointsChecked, checkpoints)
	}
}

// TestStoreWithoutFoldHashesIsRebuilt: a store written before fold hashes
// existed (no marker) gets them on open, equal to what a machine that
// always kept them holds.
func TestStoreWithoutFoldHashesIsRebuilt(t *testing.T) {
	dir := t.TempDir()
	m := openMachine(t, dir)
	w := newWorkload(t, m)
	buildFullWorkload(w)
	var want []projections.FoldHash
	if err := m.View(func(r pebble.Reader) error {
		var err error
		want, err = projections.ReadFolds(r, m.Engine())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Forget the fold hashes as an old binary would never have written
	// them.
	for _, h := range want {
		if err := m.db.Delete(append([]byte{0x0f}, h.Name...), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.db.Delete([]byte{0x0f}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = openMachine(t, dir)
	defer m.Close()
	if err := m.View(func(r pebble.Reader) error {
		ok, err := projections.HasFoldMarker(r)
		if err != nil || !ok {
			t.Errorf("no fold marker after open (%v)", err)
		}
		got, err := projections.ReadFolds(r, m.Engine())
		if err != nil {
			return err
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("fold hash of %s after rebuild %x, kept live %x", want[i].Name, got[i].Hash, want[i].Hash)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
