package log

import (
	"crypto/sha256"
	"encoding/binary"
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
	if decodeRecordFast(b, &r) {
		return &r, nil
	}
	r = Record{}
	if err := msgpack.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	return &r, nil
}

// decodeRecordFast reads exactly what Encode writes (a map of the fields'
// tags: uint64 and int64 in their 9-byte forms, strings, the body as bin
// or nil, the 32-byte hash as bin) without msgpack's reflection, which
// was a third of reading the log on a rebuild or a chain check. Anything
// else (a field added later) is left to msgpack: false. The record owns
// its copies of b's bytes.
func decodeRecordFast(b []byte, r *Record) bool {
	if len(b) == 0 || b[0]&0xf0 != 0x80 {
		return false
	}
	n := int(b[0] & 0x0f)
	b = b[1:]
	for range n {
		if len(b) < 2 || b[0] != 0xa1 { // every tag is one character
			return false
		}
		tag := b[1]
		b = b[2:]
		switch tag {
		case 's', 'i', 't':
			if len(b) < 9 || (tag == 't') != (b[0] == 0xd3) || (tag != 't') != (b[0] == 0xcf) {
				return false
			}
			v := binary.BigEndian.Uint64(b[1:9])
			switch tag {
			case 's':
				r.Seq = v
			case 'i':
				r.RaftIndex = v
			default:
				r.Time = int64(v)
			}
			b = b[9:]
		case 'y', 'a', 'b':
			v, rest, ok := rawBytes(b, tag == 'b')
			if !ok {
				return false
			}
			switch tag {
			case 'y':
				r.Type = string(v)
			case 'a':
				r.Actor = string(v)
			default:
				if v != nil {
					r.Body = append(make([]byte, 0, len(v)), v...)
				}
			}
			b = rest
		case 'p':
			if len(b) < 2+len(r.PrevHash) || b[0] != 0xc4 || int(b[1]) != len(r.PrevHash) {
				return false
			}
			copy(r.PrevHash[:], b[2:])
			b = b[2+len(r.PrevHash):]
		default:
			return false
		}
	}
	return len(b) == 0
}

// rawBytes reads a msgpack str (bin when bin) or nil.
func rawBytes(b []byte, bin bool) (v, rest []byte, ok bool) {
	if len(b) == 0 {
		return nil, nil, false
	}
	size8 := byte(0xd9) // str8, str16, str32; bin8, bin16, bin32 likewise follow each other
	if bin {
		size8 = 0xc4
	}
	var n, hdr int
	switch c := b[0]; {
	case c == 0xc0:
		return nil, b[1:], true
	case !bin && c&0xe0 == 0xa0:
		n, hdr = int(c&0x1f), 1
	case c == size8 && len(b) >= 2:
		n, hdr = int(b[1]), 2
	case c == size8+1 && len(b) >= 3:
		n, hdr = int(binary.BigEndian.Uint16(b[1:])), 3
	case c == size8+2 && len(b) >= 5:
		n, hdr = int(binary.BigEndian.Uint32(b[1:])), 5
	default:
		return nil, nil, false
	}
	if len(b)-hdr < n {
		return nil, nil, false
	}
	return b[hdr : hdr+n], b[hdr+n:], true
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
