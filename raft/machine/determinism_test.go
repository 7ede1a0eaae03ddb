package machine

import (
	"reflect"
	"testing"
)

// replayStream applies recorded steps to m at their indexes, each command
// passed through its Raft encoding, and checks every result against the
// recorded one.
func replayStream(t *testing.T, m *Machine, steps []step) {
	t.Helper()
	for _, s := range steps {
		enc, err := s.Cmd.Encode()
		if err != nil {
			t.Fatal(err)
		}
		cmd, err := DecodeCommand(enc)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Apply(s.Index, cmd)
		if err != nil {
			t.Fatalf("index %d (%s): %v", s.Index, s.Cmd.Type, err)
		}
		if !reflect.DeepEqual(res, s.Res) {
			t.Fatalf("index %d (%s): result %+v (err %v), first machine decided %+v (err %v)", s.Index, s.Cmd.Type, res, res.Err, s.Res, s.Res.Err)
		}
	}
}

func TestSameCommandsGiveIdenticalState(t *testing.T) {
	a := openMachine(t, t.TempDir())
	defer a.Close()
	w := newWorkload(t, a)
	buildFullWorkload(w)
	steps := w.steps

	// The stream must really exercise what it claims to.
	rejected, kinds := 0, map[Kind]bool{}
	for _, s := range steps {
		if s.Res.Err != nil {
			rejected++
			kinds[s.Res.Err.Kind] = true
		}
	}
	if len(steps) < 280 || rejected < 25 || len(kinds) < 5 {
		t.Fatalf("workload too thin: %d commands, %d rejected, %d rejection kinds", len(steps), rejected, len(kinds))
	}
	head := verifyChain(t, a)
	if head.Seq < 250 {
		t.Fatalf("workload produced only %d records", head.Seq)
	}

	t.Run("fresh machine", func(t *testing.T) {
		b := openMachine(t, t.TempDir())
		defer b.Close()
		replayStream(t, b, steps)
		compareStores(t, a, b)
		verifyChain(t, b)
	})

	t.Run("close and reopen midway", func(t *testing.T) {
		dir := t.TempDir()
		c := openMachine(t, dir)
		half := len(steps) / 2
		replayStream(t, c, steps[:half])
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		c = openMachine(t, dir)
		defer c.Close()
		if got := c.AppliedIndex(); got != steps[half-1].Index {
			t.Fatalf("applied index after reopen %d, want %d", got, steps[half-1].Index)
		}
		replayStream(t, c, steps[half:])
		compareStores(t, a, c)
		if d1, d2 := digestsOf(t, a), digestsOf(t, c); !reflect.DeepEqual(d1, d2) {
			t.Fatalf("digests differ across a restart: %x vs %x", d1, d2)
		}
	})
}

// recordingTB notes failures instead of failing the test.
type recordingTB struct {
	testing.TB
	errors int
}

func (r *recordingTB) Helper()               {}
func (r *recordingTB) Errorf(string, ...any) { r.errors++ }
func (r *recordingTB) Error(...any)          { r.errors++ }

// compareStores must notice a single extra command, or the test above
// proves nothing.
func TestCompareStoresDetectsDivergence(t *testing.T) {
	a := openMachine(t, t.TempDir())
	defer a.Close()
	b := openMachine(t, t.TempDir())
	defer b.Close()
	for _, m := range []*Machine{a, b} {
		w := newWorkload(t, m)
		w.ok(CmdRegister, "", "", &Register{UserID: uid("alice"), DeviceID: "A", TokenHash: tokenHash("alice", "A")})
	}
	rec := &recordingTB{TB: t}
	compareStores(rec, a, b)
	if rec.errors != 0 {
		t.Fatalf("identical stores reported as different (%d errors)", rec.errors)
	}
	// Same command, different time: a different record.
	c, err := NewCommand(CmdLogin, wlBaseTime+1, uid("alice"), "", &Login{DeviceID: "B"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(2, c); err != nil {
		t.Fatal(err)
	}
	c.Time++
	if _, err := b.Apply(2, c); err != nil {
		t.Fatal(err)
	}
	compareStores(rec, a, b)
	if rec.errors < 3 { // head, accounts digest (LastSeenTS), log, store
		t.Fatalf("diverged stores reported %d differences", rec.errors)
	}
}
