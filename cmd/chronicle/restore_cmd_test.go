package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"chronicle/api/apitest"
)

// opCopyDir copies a flat directory (a backup) to a new temp dir.
func opCopyDir(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestRestoreRefusesDamagedBackups: every kind of damage is caught, with an
// error saying what, and leaves no data directory behind.
func TestRestoreRefusesDamagedBackups(t *testing.T) {
	srv := apitest.Start(t, "")
	tok := opRegister(t, srv.URL, "alice")
	room := opCreateRoom(t, srv.URL, tok, false)
	for i := range 20 {
		opSend(t, srv.URL, tok, room, "t"+string(rune('a'+i)), strings.Repeat("x", 100))
	}
	good := filepath.Join(t.TempDir(), "good")
	opBackup(t, srv.URL, good)

	snapPath := func(dir string) string { return filepath.Join(dir, stateFileName) }
	rewrite := func(t *testing.T, dir string, edit func([]byte) []byte) {
		b, err := os.ReadFile(snapPath(dir))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(snapPath(dir), edit(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// resign makes the manifest match the (damaged) file, so that only the
	// snapshot's own checksum or the log checks can catch it.
	resign := func(t *testing.T, dir string) {
		m := opReadManifest(t, dir)
		b, err := os.ReadFile(snapPath(dir))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		m.Files[0].Size, m.Files[0].SHA256 = int64(len(b)), hex.EncodeToString(sum[:])
		opWriteManifest(t, dir, m)
	}
	flip := func(b []byte) []byte { b[len(b)/2] ^= 0x20; return b }

	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string
	}{
		{"flipped byte", func(t *testing.T, dir string) { rewrite(t, dir, flip) },
			[]string{"SHA-256", "corrupt"}},
		{"truncated", func(t *testing.T, dir string) { rewrite(t, dir, func(b []byte) []byte { return b[:len(b)-100] }) },
			[]string{"truncated"}},
		{"emptied", func(t *testing.T, dir string) { rewrite(t, dir, func([]byte) []byte { return nil }) },
			[]string{"is 0 bytes", "truncated"}},
		{"state file missing", func(t *testing.T, dir string) { os.Remove(snapPath(dir)) },
			[]string{stateFileName, "missing"}},
		{"manifest names a missing file", func(t *testing.T, dir string) {
			m := opReadManifest(t, dir)
			m.Files = append(m.Files, manifestFile{Name: "extra.bin", Size: 3, SHA256: strings.Repeat("ab", 32)})
			opWriteManifest(t, dir, m)
		}, []string{"extra.bin", "missing"}},
		{"manifest missing", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, manifestName)) },
			[]string{"no manifest.json"}},
		{"manifest names a path outside", func(t *testing.T, dir string) {
			m := opReadManifest(t, dir)
			m.Files[0].Name = "../state.snap"
			opWriteManifest(t, dir, m)
		}, []string{"bad file name"}},
		{"unknown format", func(t *testing.T, dir string) {
			m := opReadManifest(t, dir)
			m.Format = "something-else"
			opWriteManifest(t, dir, m)
		}, []string{"format"}},
		{"flipped byte, manifest re-signed", func(t *testing.T, dir string) { rewrite(t, dir, flip); resign(t, dir) },
			[]string{"snapshot"}},
		{"truncated, manifest re-signed", func(t *testing.T, dir string) {
			rewrite(t, dir, func(b []byte) []byte { return b[:len(b)*2/3] })
			resign(t, dir)
		}, []string{"truncated"}},
		{"manifest names another log position", func(t *testing.T, dir string) {
			m := opReadManifest(t, dir)
			m.LogPosition++
			opWriteManifest(t, dir, m)
		}, []string{"the manifest says"}},
		{"manifest names another log hash", func(t *testing.T, dir string) {
			m := opReadManifest(t, dir)
			m.LogHash = strings.Repeat("00", 32)
			opWriteManifest(t, dir, m)
		}, []string{"the manifest says"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := opCopyDir(t, good)
			tc.damage(t, dir)
			data := filepath.Join(t.TempDir(), "data")
			var out bytes.Buffer
			err := runRestore([]string{"--from", dir, "--data", data}, &out)
			if err == nil {
				t.Fatalf("damaged backup restored:\n%s", out.String())
			}
			t.Logf("error: %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, serr := os.Stat(data); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("a refused restore left %s behind (%v)", data, serr)
			}
		})
	}

	// The undamaged backup restores.
	var out bytes.Buffer
	if err := runRestore([]string{"--from", good, "--data", filepath.Join(t.TempDir(), "data")}, &out); err != nil {
		t.Fatalf("good backup: %v", err)
	}
}

// TestRestoreRefusesNonEmptyData: restore never writes over a data
// directory that holds anything.
func TestRestoreRefusesNonEmptyData(t *testing.T) {
	srv := apitest.Start(t, "")
	backup := filepath.Join(t.TempDir(), "b")
	opBackup(t, srv.URL, backup)

	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "cluster-secret"), []byte("s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := runRestore([]string{"--from", backup, "--data", data}, &out)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a non-empty data dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused restore wrote a state store: %v", err)
	}
	// Restoring onto a live node's data directory is refused the same way.
	if err := runRestore([]string{"--from", backup, "--data", srv.Dir}, &out); err == nil {
		t.Fatal("restore over a running node's data dir")
	}
	// Required flags.
	if err := runRestore([]string{"--from", backup}, &out); err == nil || !strings.Contains(err.Error(), "--data") {
		t.Errorf("restore without --data: %v", err)
	}
}
