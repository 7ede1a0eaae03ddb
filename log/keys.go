package log

import "encoding/binary"

// Key prefixes owned by the log. Projections use prefixes >= 0x10.
const (
	prefixRecord byte = 0x01 // 0x01 + seq (8 bytes BE) -> msgpack Record
	prefixHead   byte = 0x02 // 0x02 -> msgpack Position
)

func recordKey(seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixRecord
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

var headKey = []byte{prefixHead}
