package projections

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
)

// Projection is one deterministic fold of the log into its own key prefix.
type Projection interface {
	Name() string
	// Version changes whenever the stored layout or the fold changes.
	Version() uint32
	// Prefix is the first key byte this projection owns (>= 0x10).
	Prefix() byte
	// Apply folds one record. w both reads (its own and earlier
	// projections' writes in the same batch) and writes.
	Apply(w Writer, rec *rlog.Record) error
}

// Preparer is implemented by a projection that can do part of folding a
// record from the record alone, before its turn: decoding the body,
// typically, leaving the result in rec.Memo for every projection to
// share. A replay calls Prepare on its read-ahead goroutine, a few hundred
// records ahead of the fold, so the decoding of a rebuild runs on another
// core than its fold; the state machine does not call it (Apply decodes
// lazily). Prepare must not read the store, and must leave rec as Apply
// would find it if Prepare had not run, apart from the memo.
type Preparer interface {
	Prepare(rec *rlog.Record)
}

// Writer is what Apply may use: reads through the batch, and writes.
type Writer interface {
	pebble.Reader
	Set(key, value []byte, opts *pebble.WriteOptions) error
	Delete(key []byte, opts *pebble.WriteOptions) error
	DeleteRange(start, end []byte, opts *pebble.WriteOptions) error
}

const prefixVersion byte = 0x03 // 0x03 + name -> uint32 BE version

// Engine applies records to every registered projection in order.
type Engine struct {
	list []Projection
	prep []Preparer // the projections of list that are Preparers
}

// NewEngine registers projections in the order they are applied. Prefixes
// must be distinct.
func NewEngine(ps ...Projection) (*Engine, error) {
	seen := map[byte]string{}
	for _, p := range ps {
		// 0xff is refused too: its key space has no one-byte upper bound.
		if p.Prefix() < 0x10 || p.Prefix() == 0xff {
			return nil, fmt.Errorf("projection %s: prefix %#x is reserved", p.Name(), p.Prefix())
		}
		if other, ok := seen[p.Prefix()]; ok {
			return nil, fmt.Errorf("projections %s and %s share prefix %#x", other, p.Name(), p.Prefix())
		}
		seen[p.Prefix()] = p.Name()
	}
	e := &Engine{list: ps}
	for _, p := range ps {
		if pr, ok := p.(Preparer); ok {
			e.prep = append(e.prep, pr)
		}
	}
	return e, nil
}

// prepare runs every Preparer on rec.
func (e *Engine) prepare(rec *rlog.Record) {
	for _, p := range e.prep {
		p.Prepare(rec)
	}
}

// Projections returns the registered projections in apply order.
func (e *Engine) Projections() []Projection { return e.list }

// Apply folds rec into every projection.
func (e *Engine) Apply(w Writer, rec *rlog.Record) error {
	for _, p := range e.list {
		if err := p.Apply(w, rec); err != nil {
			return fmt.Errorf("projection %s at record %d: %w", p.Name(), rec.Seq, err)
		}
	}
	return nil
}

func versionKey(name string) []byte { return append([]byte{prefixVersion}, name...) }

// Stale reports the projections whose stored version differs from the code.
func (e *Engine) Stale(r pebble.Reader) ([]string, error) {
	var stale []string
	for _, p := range e.list {
		v, closer, err := r.Get(versionKey(p.Name()))
		if errors.Is(err, pebble.ErrNotFound) {
			stale = append(stale, p.Name())
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read version of %s: %w", p.Name(), err)
		}
		ok := len(v) == 4 && binary.BigEndian.Uint32(v) == p.Version()
		closer.Close()
		if !ok {
			stale = append(stale, p.Name())
		}
	}
	return stale, nil
}

// Rebuild deletes every projection's data and folds the whole log again,
// then stores the code versions. It runs before the node serves traffic.
func (e *Engine) Rebuild(db *pebble.DB, logger *slog.Logger) error {
	start := time.Now()
	for _, p := range e.list {
		if err := db.DeleteRange([]byte{p.Prefix()}, []byte{p.Prefix() + 1}, pebble.NoSync); err != nil {
			return fmt.Errorf("clear projection %s: %w", p.Name(), err)
		}
	}
	b := db.NewIndexedBatch()
	var n uint64
	err := rlog.Scan(db, 1, 0, func(rec *rlog.Record, _ []byte) error {
		if err := e.Apply(b, rec); err != nil {
			return err
		}
		n++
		// Bound the batch's memory; later records read earlier ones through
		// the DB once committed.
		if b.Len() > 32<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("commit rebuild batch: %w", err)
			}
			b = db.NewIndexedBatch()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := e.WriteVersions(b); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("commit rebuild: %w", err)
	}
	if n > 0 {
		logger.Info("projections rebuilt", "records", n, "took", time.Since(start))
	}
	return nil
}

// WriteVersions stores every projection's code version.
func (e *Engine) WriteVersions(w Writer) error {
	for _, p := range e.list {
		var v [4]byte
		binary.BigEndian.PutUint32(v[:], p.Version())
		if err := w.Set(versionKey(p.Name()), v[:], nil); err != nil {
			return fmt.Errorf("write version of %s: %w", p.Name(), err)
		}
	}
	return nil
}

// Digest hashes every key and value under p's prefix, length-prefixed so
// that no two different contents hash alike.
func Digest(r pebble.Reader, p Projection) ([32]byte, error) {
	h := sha256.New()
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{p.Prefix()}, UpperBound: []byte{p.Prefix() + 1}})
	if err != nil {
		return [32]byte{}, fmt.Errorf("digest %s: %w", p.Name(), err)
	}
	defer it.Close()
	var lenBuf [8]byte
	for it.First(); it.Valid(); it.Next() {
		for _, part := range [][]byte{it.Key(), it.Value()} {
			binary.BigEndian.PutUint64(lenBuf[:], uint64(len(part)))
			h.Write(lenBuf[:])
			h.Write(part)
		}
	}
	if err := it.Error(); err != nil {
		return [32]byte{}, fmt.Errorf("digest %s: %w", p.Name(), err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}

// Digests returns every projection's digest by name.
func (e *Engine) Digests(r pebble.Reader) (map[string][32]byte, error) {
	out := make(map[string][32]byte, len(e.list))
	for _, p := range e.list {
		d, err := Digest(r, p)
		if err != nil {
			return nil, err
		}
		out[p.Name()] = d
	}
	return out, nil
}

// HasPrefix reports whether key lies in p's key space.
func HasPrefix(key []byte, p Projection) bool { return bytes.HasPrefix(key, []byte{p.Prefix()}) }
