package reports

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Prefix is the key space of this projection.
const Prefix byte = 0x70

const tagReport byte = 'r' // r seq -> Report

func reportKey(seq uint64) []byte { return projections.NewKey(Prefix, tagReport).U64(seq) }

// Report is one filed report.
type Report struct {
	// ID is the position of the report's record.
	ID       uint64 `msgpack:"i"`
	Time     int64  `msgpack:"t"` // unix milliseconds
	Reporter string `msgpack:"by"`
	Kind     string `msgpack:"k"`
	RoomID   string `msgpack:"r,omitempty"`
	EventID  string `msgpack:"e,omitempty"`
	UserID   string `msgpack:"u,omitempty"`
	Reason   string `msgpack:"why,omitempty"`
	Score    *int   `msgpack:"sc,omitempty"`
}

// Projection folds report records.
type Projection struct{}

func (Projection) Name() string    { return "reports" }
func (Projection) Version() uint32 { return 1 }
func (Projection) Prefix() byte    { return Prefix }

// Apply folds one record.
func (Projection) Apply(w projections.Writer, rec *rlog.Record) error {
	if rec.Type != facts.TypeReportFiled {
		return nil
	}
	var f facts.ReportFiled
	if err := facts.Decode(rec.Body, &f); err != nil {
		return err
	}
	return projections.SetMsgpack(w, reportKey(rec.Seq), &Report{
		ID: rec.Seq, Time: rec.Time, Reporter: rec.Actor, Kind: f.Kind,
		RoomID: f.RoomID, EventID: f.EventID, UserID: f.UserID, Reason: f.Reason, Score: f.Score,
	})
}

// List returns up to limit reports with ID > after, oldest first, and
// whether more follow.
func List(r pebble.Reader, after uint64, limit int) ([]Report, bool, error) {
	if after == ^uint64(0) {
		return []Report{}, false, nil
	}
	p := projections.NewKey(Prefix, tagReport)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p.U64(after + 1), UpperBound: p.End()})
	if err != nil {
		return nil, false, fmt.Errorf("list reports: %w", err)
	}
	defer it.Close()
	out := []Report{}
	for it.First(); it.Valid(); it.Next() {
		if len(out) == limit {
			return out, true, nil
		}
		var rep Report
		if err := msgpack.Unmarshal(it.Value(), &rep); err != nil {
			return nil, false, fmt.Errorf("decode report %d: %w", projections.U64At(it.Key()), err)
		}
		out = append(out, rep)
	}
	return out, false, it.Error()
}
