package rooms

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"

	"chronicle/projections"
)

func decode(b []byte, v any) error {
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	return nil
}

// Hand-written encoders for the values the fold writes for every event.
//
// They produce exactly the bytes msgpack.Marshal produces for these structs
// (fields in declaration order under their tags, omitempty fields left
// out, int64 and uint64 in their 9-byte forms), which codec_test.go checks:
// what is stored does not depend on which encoder wrote it, and readers
// decode it with msgpack as before. What they save is msgpack's
// reflection: on a rebuild, encoding the event, its ID index entry and the
// room summary for every record cost about a tenth of the fold.

// setValue writes a value built by one of the append functions below.
func setValue(w projections.Writer, key, val []byte) error {
	if err := w.Set(key, val, nil); err != nil {
		return fmt.Errorf("set %x: %w", key, err)
	}
	return nil
}

func appendMapLen(b []byte, n int) []byte {
	if n < 16 {
		return append(b, 0x80|byte(n))
	}
	return append(b, 0xde, byte(n>>8), byte(n)) // a struct has fewer than 65536 fields
}

func appendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n < 256:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

// appendBin encodes a byte slice as msgpack does: nil as nil, anything
// else (also empty) as bin.
func appendBin(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, 0xc0)
	}
	switch n := len(v); {
	case n < 256:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xc5, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	return append(b, v...)
}

func appendStrPtr(b []byte, s *string) []byte {
	if s == nil {
		return append(b, 0xc0)
	}
	return appendStr(b, *s)
}

func appendI64(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

func appendU64(b []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

// appendEvent encodes ev like msgpack.Marshal(ev).
func appendEvent(b []byte, ev *Event) []byte {
	n := 8 // i t k s o c d q, then the omitempty fields present
	for _, present := range [...]bool{ev.Redacts != "", len(ev.PrevContent) > 0, ev.PrevSender != "", ev.ReplacesState != "",
		ev.TxnID != "", ev.DeviceID != "", ev.RedactedBecause != nil} {
		if present {
			n++
		}
	}
	b = appendMapLen(b, n)
	b = appendStr(appendStr(b, "i"), ev.EventID)
	b = appendStr(appendStr(b, "t"), ev.Type)
	b = appendStrPtr(appendStr(b, "k"), ev.StateKey)
	b = appendStr(appendStr(b, "s"), ev.Sender)
	b = appendI64(appendStr(b, "o"), ev.OriginServerTS)
	b = appendBin(appendStr(b, "c"), ev.Content)
	if ev.Redacts != "" {
		b = appendStr(appendStr(b, "r"), ev.Redacts)
	}
	if len(ev.PrevContent) > 0 {
		b = appendBin(appendStr(b, "pc"), ev.PrevContent)
	}
	if ev.PrevSender != "" {
		b = appendStr(appendStr(b, "ps"), ev.PrevSender)
	}
	if ev.ReplacesState != "" {
		b = appendStr(appendStr(b, "rs"), ev.ReplacesState)
	}
	if ev.TxnID != "" {
		b = appendStr(appendStr(b, "x"), ev.TxnID)
	}
	if ev.DeviceID != "" {
		b = appendStr(appendStr(b, "dv"), ev.DeviceID)
	}
	b = appendI64(appendStr(b, "d"), ev.Depth)
	b = appendU64(appendStr(b, "q"), ev.Seq)
	if ev.RedactedBecause != nil {
		b = appendEvent(appendStr(b, "rb"), ev.RedactedBecause)
	}
	return b
}

// appendRoom encodes r like msgpack.Marshal(r).
func appendRoom(b []byte, r *Room) []byte {
	b = appendMapLen(b, 4)
	b = appendStr(appendStr(b, "v"), r.Version)
	b = appendStr(appendStr(b, "l"), r.LastEventID)
	b = appendI64(appendStr(b, "d"), r.Depth)
	return appendU64(appendStr(b, "s"), r.LastSeq)
}

// appendEventRef encodes ref like msgpack.Marshal(ref).
func appendEventRef(b []byte, ref *EventRef) []byte {
	b = appendMapLen(b, 2)
	b = appendStr(appendStr(b, "r"), ref.RoomID)
	return appendU64(appendStr(b, "s"), ref.Seq)
}

// decodeRoom reads a stored Room. Sync reads the summary of every room it
// looks at, so the values appendRoom writes are read without reflection;
// anything else is left to msgpack.
func decodeRoom(b []byte, r *Room) error {
	if fastDecodeRoom(b, r) {
		return nil
	}
	*r = Room{}
	return decode(b, r)
}

func fastDecodeRoom(b []byte, r *Room) bool {
	if len(b) == 0 || b[0]&0xf0 != 0x80 {
		return false
	}
	n := int(b[0] & 0x0f)
	b = b[1:]
	for range n {
		var key string
		var ok bool
		if key, b, ok = readStr(b); !ok {
			return false
		}
		switch key {
		case "v", "l":
			var s string
			if s, b, ok = readStr(b); !ok {
				return false
			}
			if key == "v" {
				r.Version = s
			} else {
				r.LastEventID = s
			}
		case "d":
			if len(b) < 9 || b[0] != 0xd3 {
				return false
			}
			r.Depth, b = int64(binary.BigEndian.Uint64(b[1:9])), b[9:]
		case "s":
			if len(b) < 9 || b[0] != 0xcf {
				return false
			}
			r.LastSeq, b = binary.BigEndian.Uint64(b[1:9]), b[9:]
		default:
			return false
		}
	}
	return len(b) == 0
}

// readStr reads a fixstr or str8 (what appendStr writes for the short
// strings of a room summary).
func readStr(b []byte) (string, []byte, bool) {
	var n int
	switch {
	case len(b) >= 1 && b[0]&0xe0 == 0xa0:
		n, b = int(b[0]&0x1f), b[1:]
	case len(b) >= 2 && b[0] == 0xd9:
		n, b = int(b[1]), b[2:]
	default:
		return "", nil, false
	}
	if len(b) < n {
		return "", nil, false
	}
	return string(b[:n]), b[n:], true
}
