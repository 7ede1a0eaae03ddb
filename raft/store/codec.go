package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// codecVersion is the first byte of every encoded entry so the format can
// evolve without guessing what is on disk.
const codecVersion byte = 1

// errCorrupt marks values that cannot be decoded as a log entry.
var errCorrupt = errors.New("corrupt log entry")

// encodeLog appends the encoding of l to dst. The format is explicit rather
// than reflective so every raft.Log field is accounted for and stable:
//
//	version byte
//	uvarint Index, uvarint Term, byte Type
//	uvarint len + Data, uvarint len + Extensions
//	varint AppendedAt Unix seconds, uvarint nanoseconds
//
// AppendedAt is stored as an instant (seconds + nanos), which keeps full
// nanosecond precision and maps the zero time back to time.Time{}; the
// location and monotonic reading are not kept, so compare with time.Equal.
func encodeLog(dst []byte, l *raft.Log) []byte {
	dst = append(dst, codecVersion)
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	dst = appendBytes(dst, l.Data)
	dst = appendBytes(dst, l.Extensions)
	dst = binary.AppendVarint(dst, l.AppendedAt.Unix())
	return binary.AppendUvarint(dst, uint64(l.AppendedAt.Nanosecond()))
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// decodeLog decodes src into l. Data and Extensions are copied, so src may be
// released (Pebble closer) as soon as this returns.
func decodeLog(src []byte, l *raft.Log) error {
	d := decoder{buf: src}
	if v := d.byte(); v != codecVersion && d.err == nil {
		return fmt.Errorf("%w: unknown codec version %d", errCorrupt, v)
	}
	out := raft.Log{
		Index: d.uvarint(),
		Term:  d.uvarint(),
		Type:  raft.LogType(d.byte()),
	}
	out.Data = d.bytes()
	out.Extensions = d.bytes()
	sec := d.varint()
	nsec := d.uvarint()
	if d.err == nil && nsec >= uint64(time.Second) {
		d.err = fmt.Errorf("%w: nanoseconds out of range", errCorrupt)
	}
	if d.err == nil && len(d.buf) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.buf))
	}
	if d.err != nil {
		return d.err
	}
	// UTC so the zero instant decodes to exactly time.Time{}.
	out.AppendedAt = time.Unix(sec, int64(nsec)).UTC()
	*l = out
	return nil
}

// decoder reads fields sequentially; the first failure sticks in err and
// later reads return zero values, so callers check once at the end.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", errCorrupt, what)
	}
	d.buf = nil
}

func (d *decoder) byte() byte {
	if len(d.buf) < 1 {
		d.fail("byte")
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// bytes returns a copy of a length-prefixed field, nil when empty.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.fail("bytes")
		return nil
	}
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	copy(b, d.buf[:n])
	d.buf = d.buf[n:]
	return b
}
