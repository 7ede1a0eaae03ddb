package log

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
)

func hashBytes(b []byte) Hash { return sha256.Sum256(b) }

// ErrNotFound is returned by Get for a seq beyond the head.
var ErrNotFound = errors.New("log: record not found")

// Get reads one record.
func Get(r pebble.Reader, seq uint64) (*Record, error) {
	v, closer, err := r.Get(recordKey(seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get record %d: %w", seq, err)
	}
	defer closer.Close()
	enc, _, err := splitValue(v)
	if err != nil {
		return nil, fmt.Errorf("record %d: %w", seq, err)
	}
	return DecodeRecord(enc)
}

// splitValue separates a stored value into the record encoding and the hash
// stored after it.
func splitValue(v []byte) (enc []byte, stored Hash, err error) {
	if len(v) < len(stored) {
		return nil, stored, errors.New("stored value shorter than its hash")
	}
	n := len(v) - len(stored)
	copy(stored[:], v[n:])
	return v[:n], stored, nil
}

// Scan calls fn for every record with from <= seq <= to, in order. to == 0
// means up to the head. fn must not keep raw, which is only valid during the
// call; the decoded record is the caller's. Scan does not check hashes;
// VerifyChain does.
func Scan(r pebble.Reader, from, to uint64, fn func(rec *Record, raw []byte) error) error {
	return scanValues(r, from, to, func(seq uint64, v []byte) error {
		enc, _, err := splitValue(v)
		if err != nil {
			return fmt.Errorf("record %d: %w", seq, err)
		}
		rec, err := DecodeRecord(enc)
		if err != nil {
			return fmt.Errorf("record %d: %w", seq, err)
		}
		return fn(rec, enc)
	})
}

func scanValues(r pebble.Reader, from, to uint64, fn func(seq uint64, v []byte) error) error {
	upper := []byte{prefixRecord + 1}
	if to != 0 && to != math.MaxUint64 { // to+1 would wrap to 0 and scan nothing
		upper = recordKey(to + 1)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: recordKey(from), UpperBound: upper})
	if err != nil {
		return fmt.Errorf("scan log: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(binary.BigEndian.Uint64(it.Key()[1:]), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

// ChainError names the first record where the hash chain breaks.
type ChainError struct {
	Seq    uint64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("log: hash chain broken at record %d: %s", e.Seq, e.Reason)
}

// VerifyChain checks every record from 1 to the stored head: seqs are dense,
// each PrevHash matches the previous record's hash, and the head matches the
// last record. It returns the head it verified.
func VerifyChain(r pebble.Reader) (Position, error) {
	return VerifyRange(r, 1, Hash{}, nil)
}
