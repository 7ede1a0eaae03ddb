package store

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// logsEqual compares field by field: the codec keeps AppendedAt's instant
// but not its location or monotonic reading, and nil vs empty is irrelevant
// to raft.
func logsEqual(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

func TestCodecRoundTrip(t *testing.T) {
	nyc := time.FixedZone("EST", -5*3600)
	cases := map[string]*raft.Log{
		"zero":      {},
		"now":       {Index: 7, Term: 2, Type: raft.LogCommand, Data: []byte("x"), AppendedAt: time.Now()},
		"nanos":     {Index: 1, Term: 1, AppendedAt: time.Date(2024, 2, 29, 23, 59, 59, 999_999_999, nyc)},
		"ext":       {Index: 3, Type: raft.LogConfiguration, Extensions: []byte{0, 1, 2}},
		"pre-epoch": {Index: 4, AppendedAt: time.Date(1601, 1, 1, 0, 0, 0, 1, time.UTC)},
		"max": {
			Index: math.MaxUint64, Term: math.MaxUint64, Type: raft.LogType(255),
			Data: bytes.Repeat([]byte{0xff}, 1<<16), AppendedAt: time.Date(9999, 12, 31, 0, 0, 0, 5, time.UTC),
		},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			var out raft.Log
			if err := decodeLog(encodeLog(nil, in), &out); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !logsEqual(in, &out) {
				t.Fatalf("round trip mismatch:\n in  %+v\n out %+v", in, out)
			}
		})
	}

	// The zero time must come back as the zero value, not merely an equal instant.
	var out raft.Log
	if err := decodeLog(encodeLog(nil, &raft.Log{}), &out); err != nil || !out.AppendedAt.IsZero() {
		t.Fatalf("zero AppendedAt: got %v, %v", out.AppendedAt, err)
	}
}

func TestCodecRejectsCorruption(t *testing.T) {
	enc := encodeLog(nil, &raft.Log{Index: 300, Term: 9, Data: []byte("hello"), Extensions: []byte("e"), AppendedAt: time.Now()})
	for n := range len(enc) {
		var out raft.Log
		if err := decodeLog(enc[:n], &out); !errors.Is(err, errCorrupt) {
			t.Fatalf("prefix %d/%d: err = %v, want errCorrupt", n, len(enc), err)
		}
	}
	if err := decodeLog(append(enc, 0), &raft.Log{}); !errors.Is(err, errCorrupt) {
		t.Fatalf("trailing byte: err = %v, want errCorrupt", err)
	}
	bad := append([]byte{codecVersion + 1}, enc[1:]...)
	if err := decodeLog(bad, &raft.Log{}); !errors.Is(err, errCorrupt) {
		t.Fatalf("unknown version: err = %v, want errCorrupt", err)
	}
}

// FuzzCodec checks that any raft.Log round-trips and that decoding arbitrary
// bytes never panics.
func FuzzCodec(f *testing.F) {
	f.Add(uint64(1), uint64(1), uint8(0), []byte("d"), []byte(nil), int64(0), int64(0))
	f.Add(uint64(math.MaxUint64), uint64(0), uint8(255), []byte(nil), []byte("e"), int64(-1<<40), int64(999_999_999))
	f.Fuzz(func(t *testing.T, idx, term uint64, typ uint8, data, ext []byte, sec, nsec int64) {
		in := &raft.Log{Index: idx, Term: term, Type: raft.LogType(typ), Data: data, Extensions: ext, AppendedAt: time.Unix(sec, nsec)}
		var out raft.Log
		if err := decodeLog(encodeLog(nil, in), &out); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !logsEqual(in, &out) {
			t.Fatalf("mismatch:\n in  %+v\n out %+v", in, out)
		}
		_ = decodeLog(data, &out) // must not panic
	})
}
