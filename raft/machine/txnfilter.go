package machine

import (
	"hash/maphash"
	"log/slog"
	"math/bits"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/rooms"
)

// txnFilter is an in-memory Bloom filter of the client transaction keys
// the state store holds (rooms.TxnKey), so that a send whose transaction
// ID is new, which is nearly every send, skips the point read that would
// only find nothing. Such a miss searches the batch, every memtable and
// every level; profiled on a 3-node cluster under the load benchmark it
// was 9% of each node's CPU.
//
// It never answers "absent" for a key the store holds: open adds every
// stored key (after any projection rebuild, and again after a snapshot
// restore), and appendEvent adds each key before the fold writes it. A key
// added by a command that is then rejected only costs a read later, as any
// false positive does. Deciding is unchanged: "maybe" falls through to the
// store, which answers.
//
// Only the applying goroutine uses it (Apply, and open under the
// machine's lock when nothing applies), so it has no lock.
type txnFilter struct {
	seed maphash.Seed
	segs []bloomSegment // each twice the capacity of the one before
}

// bloomSegment holds up to capacity keys at bitsPerKey bits each, with
// hashesPerKey probes: about 1% false positives when full.
type bloomSegment struct {
	bits     []uint64
	mask     uint64 // len(bits)*64 - 1 (a power of two)
	n, limit int
}

const (
	firstSegmentKeys = 1 << 16
	bitsPerKey       = 10
	hashesPerKey     = 7
)

func newTxnFilter() *txnFilter {
	return &txnFilter{seed: maphash.MakeSeed()}
}

// loadTxnFilter builds the filter from every transaction key in the store:
// one pass over the keys at start and after a restore.
func loadTxnFilter(r pebble.Reader, logger *slog.Logger) (*txnFilter, error) {
	start := time.Now()
	f, n := newTxnFilter(), 0
	if err := rooms.TxnKeys(r, func(key []byte) { f.add(key); n++ }); err != nil {
		return nil, err
	}
	if d := time.Since(start); d > time.Second {
		logger.Info("loaded transaction filter", "keys", n, "took", d)
	}
	return f, nil
}

func newBloomSegment(capacity int) bloomSegment {
	nbits := uint64(1) << bits.Len64(uint64(capacity*bitsPerKey-1))
	return bloomSegment{bits: make([]uint64, nbits/64), mask: nbits - 1, limit: capacity}
}

// probes derives the positions from one 64-bit hash (Kirsch and
// Mitzenmacher: h1 + i*h2).
func (f *txnFilter) probes(key []byte) (h1, h2 uint64) {
	h := maphash.Bytes(f.seed, key)
	return h, h>>32 | 1
}

func (f *txnFilter) add(key []byte) {
	if len(f.segs) == 0 || f.segs[len(f.segs)-1].n >= f.segs[len(f.segs)-1].limit {
		capacity := firstSegmentKeys
		if len(f.segs) > 0 {
			capacity = 2 * f.segs[len(f.segs)-1].limit
		}
		f.segs = append(f.segs, newBloomSegment(capacity))
	}
	s := &f.segs[len(f.segs)-1]
	h1, h2 := f.probes(key)
	for i := uint64(0); i < hashesPerKey; i++ {
		b := (h1 + i*h2) & s.mask
		s.bits[b/64] |= 1 << (b % 64)
	}
	s.n++
}

// mayContain is false only for a key never added.
func (f *txnFilter) mayContain(key []byte) bool {
	h1, h2 := f.probes(key)
segments:
	for i := range f.segs {
		s := &f.segs[i]
		for j := uint64(0); j < hashesPerKey; j++ {
			b := (h1 + j*h2) & s.mask
			if s.bits[b/64]&(1<<(b%64)) == 0 {
				continue segments
			}
		}
		return true
	}
	return false
}
