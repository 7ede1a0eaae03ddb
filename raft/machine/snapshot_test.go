package machine

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"reflect"
	"testing"

	rlog "chronicle/log"
)

// snapshotBytes streams m's current state as a snapshot.
func snapshotBytes(t *testing.T, m *Machine) []byte {
	t.Helper()
	snap, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	var buf bytes.Buffer
	if err := WriteSnapshot(snap, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type machineState struct {
	head    rlog.Position
	applied uint64
	digests map[string][32]byte
	dump    []kv
}

func stateOf(t *testing.T, m *Machine) machineState {
	t.Helper()
	return machineState{head: headOf(t, m), applied: m.AppliedIndex(), digests: digestsOf(t, m), dump: dumpStore(t, m)}
}

func sameState(t *testing.T, what string, got, want machineState) {
	t.Helper()
	if got.head != want.head {
		t.Errorf("%s: head %+v, want %+v", what, got.head, want.head)
	}
	if got.applied != want.applied {
		t.Errorf("%s: applied index %d, want %d", what, got.applied, want.applied)
	}
	if !reflect.DeepEqual(got.digests, want.digests) {
		t.Errorf("%s: digests differ", what)
	}
	if d := storeDiff(got.dump, want.dump); len(d) > 0 {
		t.Errorf("%s: %d keys differ, first %x", what, len(d), d[0])
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	a := openMachine(t, t.TempDir())
	defer a.Close()
	w := newWorkload(t, a)
	buildFullWorkload(w)
	at := stateOf(t, a)

	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Commands applied after the snapshot was taken are not in it.
	w.send(uid("alice"), "ADEV", w.steps[len(w.steps)-1].Res.RoomID, "after-snapshot", "not in the snapshot")
	var buf bytes.Buffer
	if err := WriteSnapshot(snap, &buf); err != nil {
		t.Fatal(err)
	}
	snap.Close()
	if !bytes.HasPrefix(buf.Bytes(), snapshotMagic) {
		t.Fatalf("snapshot does not start with the magic")
	}

	// The target has its own, different history, which the restore replaces.
	dir := t.TempDir()
	b := openMachine(t, dir)
	defer b.Close()
	wb := newWorkload(t, b)
	for range 5 {
		wb.ok(CmdRegister, "", "", &Register{UserID: uid("stranger" + string(rune('a'+wb.idx))), DeviceID: "S"})
	}
	wb.idx = at.applied + 40
	wb.ok(CmdRegister, "", "", &Register{UserID: uid("ahead"), DeviceID: "S"}) // applied index beyond the snapshot's
	logBefore := b.Log()
	_, changed := logBefore.Changed()

	if err := b.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("restore: %v", err)
	}
	sameState(t, "restored", stateOf(t, b), at)
	if b.Log() != logBefore {
		t.Errorf("restore replaced the Log value readers hold")
	}
	if h := b.Log().Head(); h != at.head {
		t.Errorf("published head after restore %+v, want %+v", h, at.head)
	}
	select {
	case <-changed:
	default:
		t.Errorf("restore did not wake log waiters")
	}
	if _, err := os.Stat(dir + ".restore"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("restore left %s.restore behind: %v", dir, err)
	}
	if _, err := os.Stat(dir + ".old"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("restore left %s.old behind: %v", dir, err)
	}
	verifyChain(t, b)

	// Indexes up to the snapshot's are skipped; the next ones apply exactly
	// as they did on the source.
	if res, err := b.Apply(at.applied, w.steps[len(w.steps)-1].Cmd); err != nil || res != nil {
		t.Fatalf("index %d re-applied after restore: %+v %v", at.applied, res, err)
	}
	replayStream(t, b, w.steps[len(w.steps)-1:])
	compareStores(t, a, b)

	// The restored store survives a reopen.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openMachine(t, dir)
	defer b.Close()
	compareStores(t, a, b)

	// A snapshot of the restored machine is byte-identical to the source's.
	if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, b)) {
		t.Errorf("snapshots of identical stores differ")
	}
}

// snapshotEntries splits a snapshot stream into the offsets where each
// (key, value) entry ends.
func snapshotEntries(t *testing.T, data []byte) []int {
	t.Helper()
	r := bytes.NewReader(data[len(snapshotMagic):])
	br := bufio.NewReader(r)
	var ends []int
	for {
		for part := range 2 {
			n, err := binary.ReadUvarint(br)
			if err != nil {
				t.Fatalf("parse snapshot: %v", err)
			}
			if part == 0 && n == 0 {
				return ends // the trailer: entry count and checksum follow
			}
			if _, err := br.Discard(int(n)); err != nil {
				t.Fatalf("parse snapshot: %v", err)
			}
		}
		ends = append(ends, len(data)-r.Len()-br.Buffered())
	}
}

func TestRestoreGarbageKeepsOldState(t *testing.T) {
	src := openMachine(t, t.TempDir())
	defer src.Close()
	ws := newWorkload(t, src)
	ws.ok(CmdRegister, "", "", &Register{UserID: uid("zed"), DeviceID: "Z"})
	ws.ok(CmdCreateRoom, uid("zed"), "Z", &CreateRoom{Name: strp("z")})
	good := snapshotBytes(t, src)
	ends := snapshotEntries(t, good)
	if len(ends) < 10 {
		t.Fatalf("snapshot has %d entries", len(ends))
	}

	dir := t.TempDir()
	m := openMachine(t, dir)
	defer m.Close()
	w := newWorkload(t, m)
	w.ok(CmdRegister, "", "", &Register{UserID: uid("alice"), DeviceID: "A"})
	room := w.ok(CmdCreateRoom, uid("alice"), "A", &CreateRoom{Name: strp("keep me")}).RoomID
	w.send(uid("alice"), "A", room, "t1", "still here")
	before := stateOf(t, m)

	bigLen := binary.AppendUvarint(append([]byte{}, snapshotMagic...), 1<<31)
	garbage := []struct {
		name string
		data []byte
	}{
		{"empty", []byte{}},
		{"text", []byte("this is not a snapshot at all")},
		{"short magic", snapshotMagic[:4]},
		{"wrong magic version", append([]byte("CHRSNAP9"), good[len(snapshotMagic):]...)},
		{"truncated varint", append(append([]byte{}, snapshotMagic...), 0x80)},
		{"truncated key", append(append([]byte{}, snapshotMagic...), 5, 'a', 'b')},
		{"key without value", append(append([]byte{}, snapshotMagic...), 1, 'k')},
		{"truncated value", append(append([]byte{}, snapshotMagic...), 1, 'k', 9, 'v')},
		{"huge length", bigLen},
		{"cut inside a key", good[:ends[len(ends)/2]+2]},
		{"cut inside the last value", good[:len(good)-1]},
	}
	for _, g := range garbage {
		data := g.data
		t.Run(g.name, func(t *testing.T) {
			if err := m.Restore(bytes.NewReader(data)); err == nil {
				t.Fatalf("restore of %d garbage bytes succeeded", len(data))
			}
			sameState(t, "after failed restore", stateOf(t, m), before)
			if _, err := os.Stat(dir + ".restore"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("failed restore left %s.restore behind: %v", dir, err)
			}
		})
	}
	// A reader that fails mid-stream is refused too.
	if err := m.Restore(io.MultiReader(bytes.NewReader(good[:ends[4]]), iotestErrReader{})); err == nil {
		t.Fatalf("restore from a failing reader succeeded")
	}
	sameState(t, "after failed restore", stateOf(t, m), before)

	// The machine still works.
	w.send(uid("alice"), "A", room, "t2", "after the failed restores")
	if got := headOf(t, m); got.Seq != before.head.Seq+1 {
		t.Fatalf("head %d after one more send", got.Seq)
	}
	verifyChain(t, m)
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// A snapshot cut exactly between two entries parses as a valid, smaller
// store: the format has no entry count, trailer or checksum.
func TestRestoreTruncatedAtEntryBoundary(t *testing.T) {
	src := openMachine(t, t.TempDir())
	defer src.Close()
	ws := newWorkload(t, src)
	ws.ok(CmdRegister, "", "", &Register{UserID: uid("zed"), DeviceID: "Z"})
	ws.ok(CmdCreateRoom, uid("zed"), "Z", &CreateRoom{Name: strp("z")})
	good := snapshotBytes(t, src)
	ends := snapshotEntries(t, good)

	m := openMachine(t, t.TempDir())
	defer m.Close()
	err := m.Restore(bytes.NewReader(good[:ends[len(ends)/2]]))
	if err == nil {
		t.Fatalf("a snapshot stream truncated at an entry boundary (%d of %d entries) restored without error", len(ends)/2+1, len(ends))
	}
}

// A stream cut right after a key's length prefix must not restore.
func TestRestoreTruncatedAfterKeyLength(t *testing.T) {
	src := openMachine(t, t.TempDir())
	defer src.Close()
	ws := newWorkload(t, src)
	ws.ok(CmdRegister, "", "", &Register{UserID: uid("zed"), DeviceID: "Z"})
	ws.ok(CmdCreateRoom, uid("zed"), "Z", &CreateRoom{Name: strp("z")})
	good := snapshotBytes(t, src)
	ends := snapshotEntries(t, good)

	m := openMachine(t, t.TempDir())
	defer m.Close()
	w := newWorkload(t, m)
	w.ok(CmdRegister, "", "", &Register{UserID: uid("alice"), DeviceID: "A"})
	before := stateOf(t, m)
	// ends[3] is the end of the 4th entry; the next byte is the 5th key's
	// one-byte length.
	if err := m.Restore(bytes.NewReader(good[:ends[3]+1])); err == nil {
		after := stateOf(t, m)
		t.Fatalf("a snapshot cut right after a key length prefix restored without error; "+
			"the machine now holds %d keys with log head %d and applied index %d (was %d keys, head %d, applied %d)",
			len(after.dump), after.head.Seq, after.applied, len(before.dump), before.head.Seq, before.applied)
	}
	sameState(t, "after failed restore", stateOf(t, m), before)
}
