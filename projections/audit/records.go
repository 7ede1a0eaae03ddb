package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections/facts"
)

// Entry is one record as auditors read it: JSON, with the body decoded
// through its facts type (Body) or, for a type this binary does not know,
// its raw bytes (BodyBase64).
type Entry struct {
	Seq        uint64          `json:"seq"`
	RaftIndex  uint64          `json:"raft_index"`
	Time       string          `json:"time"`
	TimeMS     int64           `json:"time_ms"`
	Type       string          `json:"type"`
	Actor      string          `json:"actor,omitempty"`
	RoomID     string          `json:"room_id,omitempty"`
	Hash       string          `json:"hash"`
	PrevHash   string          `json:"prev_hash"`
	Body       json.RawMessage `json:"body,omitempty"`
	BodyBase64 []byte          `json:"body_base64,omitempty"`
	// Summary is a one-line description, for tables.
	Summary string `json:"summary,omitempty"`
	user    string // the body's user_id, for trails
}

// FormatTime renders a record time (unix ms) as RFC 3339 in UTC.
func FormatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// NewEntry decodes a record for auditors. raw is the record's encoding
// (its hash is the SHA-256 of it).
func NewEntry(rec *rlog.Record, raw []byte) *Entry {
	e := &Entry{
		Seq: rec.Seq, RaftIndex: rec.RaftIndex, Time: FormatTime(rec.Time), TimeMS: rec.Time,
		Type: rec.Type, Actor: rec.Actor, PrevHash: rec.PrevHash.String(),
	}
	if raw != nil {
		h := sha256.Sum256(raw)
		e.Hash = hex.EncodeToString(h[:])
	}
	body := facts.NewBody(rec.Type)
	if body == nil || facts.Decode(rec.Body, body) != nil {
		e.BodyBase64 = rec.Body
		return e
	}
	v := reflect.ValueOf(body).Elem()
	e.RoomID = stringField(v, "RoomID")
	e.user = stringField(v, "UserID")
	if b, err := bodyJSON(v); err == nil {
		e.Body = b
	} else {
		e.BodyBase64 = rec.Body
	}
	e.Summary = summarize(rec.Type, v)
	return e
}

func stringField(v reflect.Value, name string) string {
	if v.Kind() != reflect.Struct {
		return ""
	}
	f := v.FieldByName(name)
	if f.IsValid() && f.Kind() == reflect.String {
		return f.String()
	}
	return ""
}

// secretFields are body fields never shown, although what the log holds
// there is already a hash: a password hash still lets an attacker guess
// passwords offline.
var secretFields = map[string]bool{"PasswordHash": true}

// bodyJSON renders a facts body as a JSON object with snake_case keys in
// field order: JSON carried as bytes inline, 32-byte hashes in hex,
// password hashes withheld.
func bodyJSON(v reflect.Value) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, v, ""); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var rawMessageType = reflect.TypeOf(json.RawMessage(nil))

func writeJSON(buf *bytes.Buffer, v reflect.Value, field string) error {
	if secretFields[field] {
		if v.Kind() == reflect.String && v.String() == "" {
			buf.WriteString(`""`)
		} else {
			buf.WriteString(`"[withheld]"`)
		}
		return nil
	}
	switch {
	case v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface:
		if v.IsNil() {
			buf.WriteString("null")
			return nil
		}
		return writeJSON(buf, v.Elem(), field)
	case v.Type() == rawMessageType || (v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8):
		b := v.Bytes()
		switch {
		case len(b) == 0:
			buf.WriteString("null")
		case json.Valid(b):
			var c bytes.Buffer
			if json.Compact(&c, b) == nil {
				buf.Write(c.Bytes())
			} else {
				buf.Write(b)
			}
		default:
			enc, _ := json.Marshal(b) // base64
			buf.Write(enc)
		}
		return nil
	case v.Kind() == reflect.Array && v.Type().Elem().Kind() == reflect.Uint8:
		b := make([]byte, v.Len())
		reflect.Copy(reflect.ValueOf(b), v)
		buf.WriteString(strconv.Quote(hex.EncodeToString(b)))
		return nil
	case v.Kind() == reflect.Struct:
		buf.WriteByte('{')
		t := v.Type()
		n := 0
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			if n > 0 {
				buf.WriteByte(',')
			}
			n++
			buf.WriteString(strconv.Quote(snake(sf.Name)))
			buf.WriteByte(':')
			if err := writeJSON(buf, v.Field(i), sf.Name); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
		return nil
	case v.Kind() == reflect.Slice || v.Kind() == reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			buf.WriteString("null")
			return nil
		}
		buf.WriteByte('[')
		for i := range v.Len() {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSON(buf, v.Index(i), ""); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	}
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return err
	}
	buf.Write(b)
	return nil
}

// snake turns a Go field name into snake_case: UserID -> user_id,
// PDU -> pdu, FirstOfRequest -> first_of_request.
func snake(s string) string {
	r := []rune(s)
	var out []rune
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 {
			prevLower := unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1])
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
			if prevLower || (nextLower && unicode.IsUpper(r[i-1])) {
				out = append(out, '_')
			}
		}
		out = append(out, unicode.ToLower(c))
	}
	return string(out)
}

// summarize describes a record in a few words for tables.
func summarize(typ string, v reflect.Value) string {
	switch b := v.Addr().Interface().(type) {
	case *facts.RoomEvent:
		var p struct {
			Type     string          `json:"type"`
			StateKey *string         `json:"state_key"`
			Sender   string          `json:"sender"`
			Redacts  string          `json:"redacts"`
			Content  json.RawMessage `json:"content"`
		}
		_ = json.Unmarshal(b.PDU, &p)
		s := p.Type + " " + b.EventID
		if p.StateKey != nil && *p.StateKey != "" {
			s += " state_key=" + *p.StateKey
		}
		var c struct {
			Membership string `json:"membership"`
			Redacts    string `json:"redacts"`
		}
		_ = json.Unmarshal(p.Content, &c)
		if c.Membership != "" {
			s += " " + c.Membership
		}
		if r := p.Redacts + c.Redacts; r != "" {
			s += " redacts " + r
		}
		return s
	case *facts.SessionStarted:
		return "device " + b.DeviceID
	case *facts.SessionEnded:
		return "device " + b.DeviceID
	case *facts.AccountRegistered:
		if b.Guest {
			return b.UserID + " (guest)"
		}
		return b.UserID
	case *facts.TypingSet:
		return fmt.Sprintf("typing=%v", b.Typing)
	case *facts.ReceiptSet:
		return b.Type + " " + b.EventID
	case *facts.AccountDataSet:
		return b.Type
	case *facts.PresenceSet:
		return b.Presence
	case *facts.ToDeviceSent:
		return b.Type + " to " + b.UserID + "/" + b.DeviceID
	case *facts.Checkpoint:
		return fmt.Sprintf("head %d, %d projections", b.Head, len(b.Projections))
	case *facts.AliasCreated:
		return b.Alias
	case *facts.AliasDeleted:
		return b.Alias
	case *facts.RoomVisibilitySet:
		return b.Visibility
	case *facts.ReportFiled:
		return b.Kind + " " + b.EventID + b.UserID
	case *facts.DeviceKeysSet:
		return "device " + b.DeviceID
	case *facts.DeviceKeysDeleted:
		return "device " + b.DeviceID
	case *facts.OneTimeKeysAdded:
		return fmt.Sprintf("%d for device %s", len(b.Keys), b.DeviceID)
	case *facts.OneTimeKeyClaimed:
		return b.Algorithm + ":" + b.KeyID + " of " + b.UserID + "/" + b.DeviceID
	case *facts.FallbackKeysSet:
		return fmt.Sprintf("%d for device %s", len(b.Keys), b.DeviceID)
	case *facts.FallbackKeyUsed:
		return b.Algorithm + ":" + b.KeyID + " of " + b.UserID + "/" + b.DeviceID
	case *facts.CrossSigningKeySet:
		return b.Usage
	case *facts.SignatureAdded:
		return "on " + b.UserID + " " + b.KeyID + " by " + b.Signer
	case *facts.ProfileFieldSet:
		return b.Key + "=" + truncate(string(b.Value), 60)
	case *facts.ProfileFieldDeleted:
		return b.Key
	}
	return ""
}

// Filter selects records. Zero fields match everything.
type Filter struct {
	// From and To are positions, inclusive (To 0: the head).
	From, To uint64
	// Types are record types; an entry ending in "*" or "." matches every
	// type with that prefix.
	Types []string
	Actor string
	// Room keeps records whose body names the room.
	Room string
	// User keeps records with the user as actor, and records the system
	// wrote with no actor about the user (registration, typing expiry).
	User string
}

func (f *Filter) matchType(t string) bool {
	if len(f.Types) == 0 {
		return true
	}
	for _, want := range f.Types {
		if p, ok := strings.CutSuffix(want, "*"); ok && strings.HasPrefix(t, p) {
			return true
		}
		if strings.HasSuffix(want, ".") && strings.HasPrefix(t, want) {
			return true
		}
		if t == want {
			return true
		}
	}
	return false
}

// quick applies the tests that need no body decoding.
func (f *Filter) quick(rec *rlog.Record) bool {
	if !f.matchType(rec.Type) {
		return false
	}
	if f.Actor != "" && rec.Actor != f.Actor {
		return false
	}
	if f.User != "" && rec.Actor != f.User && rec.Actor != "" {
		return false
	}
	return true
}

// full applies the tests on the decoded entry.
func (f *Filter) full(rec *rlog.Record, e *Entry) bool {
	if f.Room != "" && e.RoomID != f.Room {
		return false
	}
	if f.User != "" && rec.Actor != f.User && e.user != f.User {
		return false
	}
	return true
}

// Records calls fn with every record the filter selects, oldest first.
func (e *Env) Records(r pebble.Reader, f Filter, fn func(*Entry) error) error {
	head, err := rlog.ReadHead(r)
	if err != nil {
		return err
	}
	to := f.To
	if to == 0 || to > head.Seq {
		to = head.Seq
	}
	from := max(f.From, 1)
	if to < from {
		return nil
	}
	total, n := to-from+1, uint64(0)
	err = rlog.Scan(r, from, to, func(rec *rlog.Record, raw []byte) error {
		n++
		if n%65536 == 0 {
			e.progress("scan", n, total)
		}
		if !f.quick(rec) {
			return nil
		}
		ent := NewEntry(rec, raw)
		if !f.full(rec, ent) {
			return nil
		}
		return fn(ent)
	})
	if err == nil && total >= 65536 {
		e.progress("scan", total, total)
	}
	return err
}

// Last returns the newest n records the filter selects, oldest first,
// reading the log backwards from f.To (or the head).
func (e *Env) Last(r pebble.Reader, f Filter, n int) ([]*Entry, error) {
	var out []*Entry
	if n <= 0 {
		return nil, nil
	}
	err := rlog.ScanReverse(r, f.To, func(rec *rlog.Record, raw []byte) (bool, error) {
		if rec.Seq < f.From {
			return true, nil
		}
		if !f.quick(rec) {
			return false, nil
		}
		ent := NewEntry(rec, raw)
		if !f.full(rec, ent) {
			return false, nil
		}
		out = append(out, ent)
		return len(out) >= n, nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

// ErrBadPosition is returned for a position or time that does not parse.
var ErrBadPosition = errors.New("not a log position (a number, or s<number>) or an RFC 3339 time")

// QuestionError is a question that cannot be answered as asked (an
// unknown room, a position outside the log): the asker's mistake, not a
// failure of the store.
type QuestionError struct{ Msg string }

func (e *QuestionError) Error() string { return e.Msg }

func questionf(format string, args ...any) error {
	return &QuestionError{Msg: fmt.Sprintf(format, args...)}
}

// RangeFrom resolves the start of a range: a position as given, a time to
// the first record at or after it.
func RangeFrom(r pebble.Reader, spec string) (uint64, error) {
	seq, t, err := ParseSpec(spec)
	if err != nil || t == nil {
		return seq, err
	}
	return Resolve(r, spec, true)
}

// RangeTo resolves the end of a range: a position as given, a time to the
// last record at or before it.
func RangeTo(r pebble.Reader, spec string) (uint64, error) {
	seq, t, err := ParseSpec(spec)
	if err != nil || t == nil {
		return seq, err
	}
	return Resolve(r, spec, false)
}

// ParseSpec reads a position ("123", "s123" as in sync tokens) or a time
// (RFC 3339). Exactly one of seq and t is set.
func ParseSpec(s string) (seq uint64, t *time.Time, err error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseUint(strings.TrimPrefix(s, "s"), 10, 64); err == nil {
		return n, nil, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if tm, err := time.Parse(layout, s); err == nil {
			return 0, &tm, nil
		}
	}
	return 0, nil, &QuestionError{Msg: fmt.Sprintf("%q: %v", s, ErrBadPosition)}
}

// Resolve turns a position or time into a position. A time resolves to
// the last record written at or before it (the state a reader saw at that
// moment) or, with first, to the first record at or after it (the start of
// a range). Record times are the API nodes' clocks, so they can step back
// slightly across a leader change: the search assumes they do not, and
// then lands within that skew.
func Resolve(r pebble.Reader, spec string, first bool) (uint64, error) {
	seq, t, err := ParseSpec(spec)
	if err != nil {
		return 0, err
	}
	head, err := rlog.ReadHead(r)
	if err != nil {
		return 0, err
	}
	if t == nil {
		if seq > head.Seq {
			return 0, questionf("position %d is beyond the head %d", seq, head.Seq)
		}
		return seq, nil
	}
	ms := t.UnixMilli()
	// Smallest seq in [1, head] whose time is after ms (first: at or
	// after).
	lo, hi := uint64(1), head.Seq+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		rec, err := rlog.Get(r, mid)
		if err != nil {
			return 0, err
		}
		after := rec.Time > ms
		if first {
			after = rec.Time >= ms
		}
		if after {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if first {
		if lo > head.Seq {
			return head.Seq + 1, nil // nothing at or after: an empty range
		}
		return lo, nil
	}
	return lo - 1, nil // 0: before the first record
}

// truncate shortens s to at most n bytes for a summary, marking the cut
// (never inside a UTF-8 sequence).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
