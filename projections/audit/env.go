package audit

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
)

// Progress is told how far a long operation got: phase names the step
// ("chain", "replay", "scan", ...), total is 0 when unknown.
type Progress func(phase string, done, total uint64)

// Env is what the audit functions need besides the audited store.
type Env struct {
	// Engine is the machine's projection engine (machine.NewEngine()).
	Engine *projections.Engine
	// Options returns the state store's Pebble options
	// (machine.StoreOptions), used for scratch stores.
	Options func() *pebble.Options
	// TempDir is where scratch stores are created ("" = os.TempDir()).
	TempDir string
	// CacheDir holds verify's resume states ("" = no cache).
	CacheDir string
	// Progress, when set, receives progress of long operations.
	Progress Progress
}

func (e *Env) progress(phase string, done, total uint64) {
	if e.Progress != nil {
		e.Progress(phase, done, total)
	}
}

// scratch is a temporary store a replay writes into.
type scratch struct {
	db  *pebble.DB
	dir string
}

// newScratch creates an empty scratch store, or one seeded from a cached
// state directory when seed is not "".
func (e *Env) newScratch(seed string) (*scratch, error) {
	dir, err := os.MkdirTemp(e.TempDir, "chronicle-audit-*")
	if err != nil {
		return nil, fmt.Errorf("create scratch dir: %w", err)
	}
	store := filepath.Join(dir, "store")
	if seed != "" {
		if err := linkDir(seed, store); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("seed scratch store from %s: %w", seed, err)
		}
	}
	opts := e.options()
	// Scratch data is rebuilt, never recovered: no WAL.
	opts.DisableWAL = true
	db, err := pebble.Open(store, opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("open scratch store: %w", err)
	}
	return &scratch{db: db, dir: dir}, nil
}

func (e *Env) options() *pebble.Options {
	if e.Options != nil {
		return e.Options()
	}
	return &pebble.Options{}
}

func (s *scratch) close() {
	if s == nil {
		return
	}
	if s.db != nil {
		s.db.Close()
	}
	os.RemoveAll(s.dir)
}

// linkDir copies a Pebble directory: sstables (immutable) as hard links
// where possible, every other file (manifest, options, markers, which a
// writer appends to or replaces) as a copy.
func linkDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	for _, ent := range entries {
		if ent.IsDir() {
			continue
		}
		from, to := filepath.Join(src, ent.Name()), filepath.Join(dst, ent.Name())
		if filepath.Ext(ent.Name()) == ".sst" {
			if err := os.Link(from, to); err == nil {
				continue
			}
		}
		if err := copyFile(from, to); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func headOf(r pebble.Reader) (uint64, error) {
	h, err := rlog.ReadHead(r)
	return h.Seq, err
}
