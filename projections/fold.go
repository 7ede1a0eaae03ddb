package projections

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
)

// Fold hashes.
//
// A checkpoint record must say what every projection looked like at its
// position, and an auditor replaying the log wants to compare at every
// checkpoint, not only at the head. Digest (a scan of the whole prefix) is
// the exact answer but costs O(size of the store): taken every 10,000
// records on a store of 100 million it would stall the apply goroutine for
// seconds each time, and the total cost grows with the square of the
// history. An order-independent multiset hash of the contents (LtHash
// style) could be kept up to date per write, but each Set and Delete would
// first have to read the value it replaces: one more Pebble read per
// write, on the hot path and during rebuilds.
//
// So each projection instead carries a fold hash: a hash chain over the
// writes it made, record by record:
//
//	fold(0) = 32 zero bytes
//	fold(s) = SHA-256(fold(s-1) || seq || canonical writes of record s)
//	          when the projection wrote anything while folding record s,
//	fold(s) = fold(s-1) otherwise.
//
// "Canonical writes" is the net effect of the record on the projection's
// keys, independent of the order of independent writes: the DeleteRanges
// sorted, then for each key written the last Set or Delete that no later
// DeleteRange covered, sorted by key. A projection that writes two keys in
// map order thus folds the same hash on every node. Maintaining it costs
// one SHA-256 over the bytes a record writes and no read at all.
//
// Two stores that folded the same log from empty have equal fold hashes
// exactly when their projections made the same writes, and then they hold
// equal contents. A fold hash says nothing about writes made outside the
// fold (a corrupted or tampered store): that is what the full Digest
// compared against a rebuild catches. Both are checked by verify.
//
// Fold hashes live outside every projection's prefix (so Digest does not
// cover them) under prefixFold, updated in the same batch as the writes
// they hash. prefixFold alone holds the scheme marker: a store without it
// was written before fold hashes existed and is rebuilt on open.

const prefixFold byte = 0x0f // 0x0f + name -> 32-byte fold hash; 0x0f -> scheme

const foldScheme byte = 1

var foldMarkerKey = []byte{prefixFold}

func foldKey(name string) []byte { return append([]byte{prefixFold}, name...) }

// FoldHash is one projection's fold hash.
type FoldHash struct {
	Name    string
	Version uint32
	Hash    [32]byte
}

// Folds applies records to every projection of an engine, like
// Engine.Apply, while keeping each projection's fold hash. It has a
// pending state (every record applied) and a committed one (what the
// store holds), like the log's head: Discard drops what a rejected command
// folded. One goroutine only.
type Folds struct {
	e     *Engine
	cur   [][32]byte
	saved [][32]byte
	dirty []bool
	recs  []foldRecorder
	buf   []byte
	order []int

	// The deletes folded since the last Commit or Discard, which a replay
	// must carry over when it commits its batch in key order (replay.go):
	// deleted keys, and DeleteRange bounds in the order they were made.
	dels   [][]byte
	ranges [][2][]byte
}

// NewFolds starts every fold hash at zero (an empty store).
func NewFolds(e *Engine) *Folds {
	n := len(e.list)
	f := &Folds{e: e, cur: make([][32]byte, n), saved: make([][32]byte, n), dirty: make([]bool, n), recs: make([]foldRecorder, n)}
	return f
}

// Engine returns the engine whose projections f folds.
func (f *Folds) Engine() *Engine { return f.e }

// Load reads the stored fold hashes (zero where none is stored).
func (f *Folds) Load(r pebble.Reader) error {
	hs, err := ReadFolds(r, f.e)
	if err != nil {
		return err
	}
	for i, h := range hs {
		f.cur[i], f.saved[i], f.dirty[i] = h.Hash, h.Hash, false
	}
	return nil
}

// ReadFolds returns the fold hashes stored in r for e's projections, in
// apply order (zero where none is stored).
func ReadFolds(r pebble.Reader, e *Engine) ([]FoldHash, error) {
	out := make([]FoldHash, len(e.list))
	for i, p := range e.list {
		out[i] = FoldHash{Name: p.Name(), Version: p.Version()}
		v, closer, err := r.Get(foldKey(p.Name()))
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read fold hash of %s: %w", p.Name(), err)
		}
		ok := len(v) == 32
		copy(out[i].Hash[:], v)
		closer.Close()
		if !ok {
			return nil, fmt.Errorf("fold hash of %s has %d bytes", p.Name(), len(v))
		}
	}
	return out, nil
}

// HasFoldMarker reports whether the store's fold hashes have been kept
// since record 1 (see above).
func HasFoldMarker(r pebble.Reader) (bool, error) {
	v, closer, err := r.Get(foldMarkerKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read fold marker: %w", err)
	}
	defer closer.Close()
	return len(v) == 1 && v[0] == foldScheme, nil
}

// WriteFoldMarker records that fold hashes are kept from record 1.
func WriteFoldMarker(w Writer) error {
	return w.Set(foldMarkerKey, []byte{foldScheme}, nil)
}

// Hashes returns the pending fold hashes, in apply order.
func (f *Folds) Hashes() []FoldHash {
	out := make([]FoldHash, len(f.e.list))
	for i, p := range f.e.list {
		out[i] = FoldHash{Name: p.Name(), Version: p.Version(), Hash: f.cur[i]}
	}
	return out
}

// Apply folds rec into every projection and advances their fold hashes.
func (f *Folds) Apply(w Writer, rec *rlog.Record) error {
	for i, p := range f.e.list {
		r := &f.recs[i]
		r.Writer = w
		r.reset()
		err := p.Apply(r, rec)
		r.Writer = nil
		if err != nil {
			return fmt.Errorf("projection %s at record %d: %w", p.Name(), rec.Seq, err)
		}
		if len(r.ops) > 0 {
			f.cur[i] = f.fold(r, f.cur[i], rec.Seq)
			f.dirty[i] = true
		}
		if r.hasDelete {
			f.keepDeletes(r)
		}
	}
	return nil
}

// Save writes the fold hashes changed since the last Save into w.
func (f *Folds) Save(w Writer) error {
	for i, p := range f.e.list {
		if !f.dirty[i] {
			continue
		}
		if err := w.Set(foldKey(p.Name()), f.cur[i][:], nil); err != nil {
			return fmt.Errorf("write fold hash of %s: %w", p.Name(), err)
		}
		f.dirty[i] = false
	}
	return nil
}

// keepDeletes copies r's deletes into f.dels and f.ranges.
func (f *Folds) keepDeletes(r *foldRecorder) {
	for i := range r.ops {
		switch op := &r.ops[i]; op.kind {
		case opDelete:
			f.dels = append(f.dels, bytes.Clone(r.key(op)))
		case opRange:
			f.ranges = append(f.ranges, [2][]byte{bytes.Clone(r.key(op)), bytes.Clone(r.val(op))})
		}
	}
}

// Commit records that the batch holding the pending fold hashes (and the
// writes they hash) committed.
func (f *Folds) Commit() {
	copy(f.saved, f.cur)
	f.dels, f.ranges = f.dels[:0], f.ranges[:0]
}

// Discard drops everything folded since the last Commit.
func (f *Folds) Discard() {
	copy(f.cur, f.saved)
	clear(f.dirty)
	f.dels, f.ranges = f.dels[:0], f.ranges[:0]
}

// reset zeroes every fold hash (before rebuilding into an empty store).
func (f *Folds) reset() {
	clear(f.cur)
	clear(f.saved)
	for i := range f.dirty {
		f.dirty[i] = true
	}
	f.dels, f.ranges = f.dels[:0], f.ranges[:0]
}

// fold computes the next fold hash from one record's writes.
func (f *Folds) fold(r *foldRecorder, prev [32]byte, seq uint64) [32]byte {
	ops := r.ops
	// Keep ranges, and key writes no later range covers.
	f.order = f.order[:0]
	for i := range ops {
		if ops[i].kind != opRange && r.hasRange && r.coveredLater(i) {
			continue
		}
		f.order = append(f.order, i)
	}
	slices.SortStableFunc(f.order, func(a, b int) int {
		oa, ob := &ops[a], &ops[b]
		// Ranges first, then keys.
		if (oa.kind == opRange) != (ob.kind == opRange) {
			if oa.kind == opRange {
				return -1
			}
			return 1
		}
		if c := bytes.Compare(r.key(oa), r.key(ob)); c != 0 || oa.kind != opRange {
			return c
		}
		return bytes.Compare(r.val(oa), r.val(ob))
	})
	buf := append(f.buf[:0], prev[:]...)
	buf = binary.BigEndian.AppendUint64(buf, seq)
	for n, i := range f.order {
		op := &ops[i]
		// Of several writes to one key the last (stable order) wins; equal
		// ranges count once.
		if n+1 < len(f.order) {
			next := &ops[f.order[n+1]]
			if (next.kind == opRange) == (op.kind == opRange) && bytes.Equal(r.key(next), r.key(op)) &&
				(op.kind != opRange || bytes.Equal(r.val(next), r.val(op))) {
				continue
			}
		}
		buf = append(buf, op.kind)
		buf = binary.AppendUvarint(buf, uint64(len(r.key(op))))
		buf = append(buf, r.key(op)...)
		if op.kind != opDelete {
			buf = binary.AppendUvarint(buf, uint64(len(r.val(op))))
			buf = append(buf, r.val(op)...)
		}
	}
	f.buf = buf
	return sha256.Sum256(buf)
}

const (
	opSet    byte = 'S'
	opDelete byte = 'D'
	opRange  byte = 'R'
)

// foldOp is one write, its bytes in the recorder's arena.
type foldOp struct {
	kind   byte
	ks, ke int // key (range start)
	vs, ve int // value (range end)
}

// foldRecorder is the Writer a projection folds through: reads and
// writes go to the batch, and writes are also remembered for the fold
// hash.
type foldRecorder struct {
	Writer
	ops       []foldOp
	arena     []byte
	hasRange  bool
	hasDelete bool // a Delete or a DeleteRange
}

func (r *foldRecorder) reset() {
	r.ops, r.arena, r.hasRange, r.hasDelete = r.ops[:0], r.arena[:0], false, false
}

func (r *foldRecorder) add(kind byte, key, val []byte) {
	op := foldOp{kind: kind, ks: len(r.arena)}
	r.arena = append(r.arena, key...)
	op.ke, op.vs = len(r.arena), len(r.arena)
	r.arena = append(r.arena, val...)
	op.ve = len(r.arena)
	r.ops = append(r.ops, op)
}

func (r *foldRecorder) key(op *foldOp) []byte { return r.arena[op.ks:op.ke] }
func (r *foldRecorder) val(op *foldOp) []byte { return r.arena[op.vs:op.ve] }

// coveredLater reports whether a DeleteRange after op i covers its key.
func (r *foldRecorder) coveredLater(i int) bool {
	k := r.key(&r.ops[i])
	for j := i + 1; j < len(r.ops); j++ {
		op := &r.ops[j]
		if op.kind == opRange && bytes.Compare(k, r.key(op)) >= 0 && bytes.Compare(k, r.val(op)) < 0 {
			return true
		}
	}
	return false
}

func (r *foldRecorder) Set(key, value []byte, o *pebble.WriteOptions) error {
	if err := r.Writer.Set(key, value, o); err != nil {
		return err
	}
	r.add(opSet, key, value)
	return nil
}

func (r *foldRecorder) Delete(key []byte, o *pebble.WriteOptions) error {
	if err := r.Writer.Delete(key, o); err != nil {
		return err
	}
	r.add(opDelete, key, nil)
	r.hasDelete = true
	return nil
}

func (r *foldRecorder) DeleteRange(start, end []byte, o *pebble.WriteOptions) error {
	if err := r.Writer.DeleteRange(start, end, o); err != nil {
		return err
	}
	r.add(opRange, start, end)
	r.hasRange, r.hasDelete = true, true
	return nil
}
