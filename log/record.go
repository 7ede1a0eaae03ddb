package log

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Hash is the SHA-256 chain hash of a record.
type Hash [32]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Record is one fact in the log. Field tags are part of the on-disk format:
// never rename or reuse one; add new fields with new tags.
type Record struct {
	Seq       uint64 `msgpack:"s"`
	RaftIndex uint64 `msgpack:"i"`
	// Time is the command's timestamp (unix milliseconds) chosen by the API
	// node that built the command, never the applying node's clock.
	Time     int64  `msgpack:"t"`
	Type     string `msgpack:"y"`
	Actor    string `msgpack:"a"`
	Body     []byte `msgpack:"b"`
	PrevHash Hash   `msgpack:"p"`

	// Memo lets the projections folding this record share one decoding of
	// its body. It is never encoded, so it is not part of the hash.
	Memo any `msgpack:"-"`
}

// Position identifies the head of the log: the last record's seq and hash.
type Position struct {
	Seq  uint64 `msgpack:"s"`
	Hash Hash   `msgpack:"h"`
}

// Encode returns the record's canonical msgpack encoding. Structs encode
// fields in declaration order, so the bytes are deterministic.
func (r *Record) Encode() ([]byte, error) {
	b, err := msgpack.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode record %d: %w", r.Seq, err)
	}
	return b, nil
}

// DecodeRecord parses a record written by Encode.
func DecodeRecord(b []byte) (*Record, error) {
	var r Record
	if err := msgpack.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	return &r, nil
}

// Hash is the chain hash: SHA-256 over the canonical encoding, which
// includes PrevHash, so changing any earlier record changes every later hash.
func (r *Record) Hash() (Hash, error) {
	b, err := r.Encode()
	if err != nil {
		return Hash{}, err
	}
	return sha256.Sum256(b), nil
}
