package machine

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestRestoreBackupStartsANewLog restores a snapshot into a fresh store:
// everything but the applied index is the source's, and the new cluster's
// first commands (at Raft index 1, 2, ...) are applied, not skipped.
func TestRestoreBackupStartsANewLog(t *testing.T) {
	src := openMachine(t, t.TempDir())
	defer src.Close()
	w := newWorkload(t, src)
	buildFullWorkload(w)
	at := stateOf(t, src)
	if at.applied == 0 {
		t.Fatal("workload applied nothing")
	}
	data := snapshotBytes(t, src)

	dir := filepath.Join(t.TempDir(), "state")
	head, err := RestoreBackup(dir, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("restore backup: %v", err)
	}
	if head != at.head {
		t.Fatalf("restore returned head %+v, want %+v", head, at.head)
	}

	m := openMachine(t, dir)
	defer m.Close()
	got := stateOf(t, m)
	if got.applied != 0 {
		t.Errorf("applied index after restore %d, want 0 (reset)", got.applied)
	}
	if got.head != at.head {
		t.Errorf("head %+v, want %+v", got.head, at.head)
	}
	if !reflect.DeepEqual(got.digests, at.digests) {
		t.Errorf("projection digests changed by the restore")
	}
	// The stores differ in exactly the applied index key.
	var srcNoApplied []kv
	for _, e := range at.dump {
		if !bytes.Equal(e.K, appliedKey) {
			srcNoApplied = append(srcNoApplied, e)
		}
	}
	if d := storeDiff(got.dump, srcNoApplied); len(d) > 0 {
		t.Errorf("%d keys differ from the source beyond the applied index, first %x", len(d), d[0])
	}
	verifyChain(t, m)

	// A new cluster's log starts at 1: its commands must apply.
	nw := newWorkload(t, m)
	if nw.idx != 0 {
		t.Fatalf("new workload starts at index %d", nw.idx)
	}
	res := nw.ok(CmdRegister, "", "", &Register{UserID: uid("newcomer"), DeviceID: "N"})
	if res.Seq <= at.head.Seq {
		t.Errorf("first command of the new log left the head at %d, want past %d", res.Seq, at.head.Seq)
	}
	if m.AppliedIndex() != 1 {
		t.Errorf("applied index %d, want 1", m.AppliedIndex())
	}
	if h := verifyChain(t, m); h.Seq != res.Seq {
		t.Errorf("chain head %d after a new write, want %d", h.Seq, res.Seq)
	}
}

func TestRestoreBackupRefusesDamage(t *testing.T) {
	src := openMachine(t, t.TempDir())
	defer src.Close()
	w := newWorkload(t, src)
	for _, name := range []string{"alice", "bob", "carol"} {
		w.ok(CmdRegister, "", "", &Register{UserID: uid(name), DeviceID: "D"})
	}
	data := snapshotBytes(t, src)

	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 0x01
	cases := map[string]struct {
		data []byte
		want string
	}{
		"flipped byte": {flipped, ""},
		"truncated":    {data[:len(data)-10], "truncated"},
		"cut in half":  {data[:len(data)/2], "truncated"},
		"empty":        {nil, "not a Chronicle state snapshot"},
		"trailing":     {append(bytes.Clone(data), 0), "bytes after"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			_, err := RestoreBackup(dir, bytes.NewReader(tc.data))
			if err == nil {
				t.Fatal("damaged backup restored")
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if _, serr := os.Stat(dir); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("failed restore left %s behind (%v)", dir, serr)
			}
		})
	}
}

func TestRestoreBackupRefusesNonEmptyDir(t *testing.T) {
	src := openMachine(t, t.TempDir())
	data := snapshotBytes(t, src)
	src.Close()
	dir := t.TempDir()
	keep := filepath.Join(dir, "precious")
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RestoreBackup(dir, bytes.NewReader(data)); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a non-empty dir: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("refused restore touched the existing dir: %v", err)
	}
}
