package facts

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// scanPDU reads the PDUFields of a PDU as the state machine writes them
// (a JSON object; the fields read are unescaped strings, integers, null
// or an object for content) without a general JSON parser: it finds each
// top-level member, reads the seven wanted ones and skips the others by
// counting brackets. It does not validate what it skips, which a PDU the
// machine built and hashed needs no more. Anything it does not expect (an
// escape in a wanted string, a fraction, a member twice, trailing bytes)
// returns false, and the caller parses with encoding/json/v2, whose
// results scanPDU's match on everything it accepts (pduscan_test.go).
// Parsing was two thirds of decoding a room event, which a rebuild does for
// every one.
func scanPDU(b []byte, p *PDUFields) bool {
	s := pduScanner{b: b}
	if !s.skipSpace() || s.b[s.i] != '{' {
		return false
	}
	s.i++
	var seen uint8
	for first := true; ; first = false {
		if !s.skipSpace() {
			return false
		}
		if s.b[s.i] == '}' && first {
			s.i++
			break
		}
		name, ok := s.plainString()
		if !ok || !s.skipSpace() || s.b[s.i] != ':' {
			return false
		}
		s.i++
		if !s.skipSpace() {
			return false
		}
		bit, str := pduField(name)
		if bit != 0 {
			if seen&bit != 0 {
				return false
			}
			seen |= bit
		}
		switch {
		case str != nil:
			v, ok := s.plainString()
			if !ok {
				return false
			}
			*str(p) = string(v)
		case bit == bitStateKey:
			if bytes.HasPrefix(s.b[s.i:], []byte("null")) {
				s.i += 4
				p.StateKey = nil
				break
			}
			v, ok := s.plainString()
			if !ok {
				return false
			}
			sk := string(v)
			p.StateKey = &sk
		case bit == bitContent:
			start := s.i
			if s.b[s.i] != '{' || !s.skipValue() {
				return false
			}
			p.Content = bytes.Clone(s.b[start:s.i])
		case bit == bitTS || bit == bitDepth:
			n, ok := s.integer()
			if !ok {
				return false
			}
			if bit == bitTS {
				p.OriginServerTS = n
			} else {
				p.Depth = n
			}
		default:
			if !s.skipValue() {
				return false
			}
		}
		if !s.skipSpace() {
			return false
		}
		if c := s.b[s.i]; c == '}' {
			s.i++
			break
		} else if c != ',' {
			return false
		}
		s.i++
	}
	return !s.skipSpace() // nothing may follow the object
}

const (
	bitType uint8 = 1 << iota
	bitStateKey
	bitSender
	bitContent
	bitTS
	bitRedacts
	bitDepth
)

// pduField names the PDUFields member a PDU member fills: its bit, and
// for a plain string field, the field.
func pduField(name []byte) (uint8, func(*PDUFields) *string) {
	switch string(name) {
	case "type":
		return bitType, func(p *PDUFields) *string { return &p.Type }
	case "sender":
		return bitSender, func(p *PDUFields) *string { return &p.Sender }
	case "redacts":
		return bitRedacts, func(p *PDUFields) *string { return &p.Redacts }
	case "state_key":
		return bitStateKey, nil
	case "content":
		return bitContent, nil
	case "origin_server_ts":
		return bitTS, nil
	case "depth":
		return bitDepth, nil
	}
	return 0, nil
}

type pduScanner struct {
	b []byte
	i int
}

// skipSpace skips JSON whitespace and reports whether bytes remain.
func (s *pduScanner) skipSpace() bool {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return true
		}
	}
	return false
}

// plainString reads a string with no escapes and valid UTF-8: its bytes
// are its value.
func (s *pduScanner) plainString() ([]byte, bool) {
	if s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			v := s.b[start:j]
			return v, utf8.Valid(v)
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// integer reads a JSON number that is an integer without exponent.
func (s *pduScanner) integer() (int64, bool) {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	digits := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	if s.i == digits || (s.b[digits] == '0' && s.i-digits > 1) {
		return 0, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(s.b[start:s.i]), 10, 64)
	return n, err == nil
}

// skipValue moves past one JSON value: a string, an object or array
// (counting brackets outside strings), or a number or literal.
func (s *pduScanner) skipValue() bool {
	depth := 0
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case '"':
			j := s.i + 1
			for ; j < len(s.b) && s.b[j] != '"'; j++ {
				if s.b[j] == '\\' {
					j++
				}
			}
			if j >= len(s.b) {
				return false
			}
			s.i = j + 1
		case '{', '[':
			depth++
			s.i++
		case '}', ']':
			if depth == 0 {
				return true // the end of the enclosing object
			}
			depth--
			s.i++
		case ',':
			if depth == 0 {
				return true
			}
			s.i++
		default:
			s.i++
		}
		if depth == 0 && s.i <= len(s.b) {
			if c := s.b[s.i-1]; c == '"' || c == '}' || c == ']' {
				return true
			}
		}
	}
	return depth == 0
}
