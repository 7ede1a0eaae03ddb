package loadgen

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFootprint(t *testing.T) {
	// Our own process stands in for the server: it surely has a VmRSS.
	rss, hwm, err := ProcMem(os.Getpid())
	if err != nil || rss <= 0 || hwm < rss {
		t.Fatalf("ProcMem = %d, %d, %v", rss, hwm, err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{"a": 10, "sub/b": 32} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if b, files, err := DirSize(dir); err != nil || b != 42 || files != 2 {
		t.Fatalf("DirSize = %d, %d, %v", b, files, err)
	}
}
