package log

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// VerifyRange checks the hash chain from record from to the stored head,
// like VerifyChain, given the hash prev of record from-1 (the zero hash
// when from is 1): seqs are dense, every stored value matches its hash,
// each PrevHash matches the previous record and the head matches the last
// record. fn, when not nil, sees every verified record and its hash, in
// order (an auditor's progress, or what it collects on the way). It
// returns the head it verified; a break is a *ChainError naming the first
// bad record.
func VerifyRange(r pebble.Reader, from uint64, prev Hash, fn func(rec *Record, h Hash) error) (Position, error) {
	if from == 0 {
		from = 1
	}
	head, err := ReadHead(r)
	if err != nil {
		return Position{}, err
	}
	last := Position{Seq: from - 1, Hash: prev}
	err = scanValues(r, from, 0, func(seq uint64, v []byte) error {
		if seq != last.Seq+1 {
			return &ChainError{Seq: last.Seq + 1, Reason: fmt.Sprintf("missing; next stored is %d", seq)}
		}
		enc, stored, err := splitValue(v)
		if err != nil {
			return &ChainError{Seq: seq, Reason: err.Error()}
		}
		if hashBytes(enc) != stored {
			return &ChainError{Seq: seq, Reason: "content does not match its hash"}
		}
		rec, err := DecodeRecord(enc)
		if err != nil {
			return &ChainError{Seq: seq, Reason: err.Error()}
		}
		if rec.Seq != seq {
			return &ChainError{Seq: seq, Reason: fmt.Sprintf("stored under seq %d but says %d", seq, rec.Seq)}
		}
		if rec.PrevHash != last.Hash {
			return &ChainError{Seq: seq, Reason: fmt.Sprintf("prev hash does not match record %d", last.Seq)}
		}
		last = Position{Seq: seq, Hash: stored}
		if fn != nil {
			return fn(rec, stored)
		}
		return nil
	})
	if err != nil {
		return last, err
	}
	switch {
	case last.Seq < head.Seq:
		return last, &ChainError{Seq: last.Seq + 1, Reason: fmt.Sprintf("missing; stored head is %d", head.Seq)}
	case last.Seq > head.Seq:
		return last, &ChainError{Seq: head.Seq + 1, Reason: fmt.Sprintf("stored beyond the stored head %d", head.Seq)}
	case last != head:
		return last, &ChainError{Seq: last.Seq, Reason: fmt.Sprintf("stored head %d does not match last record", head.Seq)}
	}
	return head, nil
}

// StoredHash returns the hash stored with record seq, checked against its
// content (not against its neighbours: VerifyRange does that).
func StoredHash(r pebble.Reader, seq uint64) (Hash, error) {
	v, closer, err := r.Get(recordKey(seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return Hash{}, ErrNotFound
	}
	if err != nil {
		return Hash{}, fmt.Errorf("get record %d: %w", seq, err)
	}
	defer closer.Close()
	enc, stored, err := splitValue(v)
	if err != nil {
		return Hash{}, &ChainError{Seq: seq, Reason: err.Error()}
	}
	if hashBytes(enc) != stored {
		return Hash{}, &ChainError{Seq: seq, Reason: "content does not match its hash"}
	}
	return stored, nil
}

// ScanReverse calls fn for records from down to 1 (from 0: the head),
// newest first, until fn returns stop or an error. Like Scan it does not
// check hashes, and raw is valid only during the call.
func ScanReverse(r pebble.Reader, from uint64, fn func(rec *Record, raw []byte) (stop bool, err error)) error {
	upper := []byte{prefixRecord + 1}
	if from != 0 {
		upper = recordKey(from + 1)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: recordKey(1), UpperBound: upper})
	if err != nil {
		return fmt.Errorf("scan log: %w", err)
	}
	defer it.Close()
	for ok := it.Last(); ok; ok = it.Prev() {
		enc, _, err := splitValue(it.Value())
		if err != nil {
			return fmt.Errorf("record %x: %w", it.Key(), err)
		}
		rec, err := DecodeRecord(enc)
		if err != nil {
			return err
		}
		stop, err := fn(rec, enc)
		if err != nil || stop {
			return err
		}
	}
	return it.Error()
}
