package audit

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections"
)

// RebuildReport is the outcome of RebuildInPlace.
type RebuildReport struct {
	// Asked are the projections asked for; Rebuilt every projection
	// rebuilt (the asked ones and those before them, which they may
	// read while folding).
	Asked         []string            `json:"asked"`
	Rebuilt       []string            `json:"rebuilt"`
	Records       uint64              `json:"records"`
	TookMS        int64               `json:"took_ms"`
	RecordsPerSec float64             `json:"records_per_sec"`
	Projections   []RebuiltProjection `json:"projections"`
}

// RebuiltProjection compares one projection before and after.
type RebuiltProjection struct {
	Name    string `json:"name"`
	Before  string `json:"digest_before"`
	After   string `json:"digest_after"`
	Changed bool   `json:"changed"`
	// Stale: the stored contents were of an older version of the
	// projection (its code changed what it stores), so a change of digest
	// says nothing about corruption.
	Stale bool `json:"stale,omitempty"`
}

// RebuildInPlace rebuilds projections of a stopped server's store from
// its log (all when names is empty). A projection may read the ones before
// it in apply order while folding, and must see them as they were at each
// record, so those are rebuilt too; the ones after are left alone.
func (e *Env) RebuildInPlace(db *pebble.DB, names []string) (*RebuildReport, error) {
	all := e.Engine.Projections()
	k := len(all)
	if len(names) > 0 {
		k = 0
		for _, n := range names {
			i := slices.IndexFunc(all, func(p projections.Projection) bool { return p.Name() == n })
			if i < 0 {
				var known []string
				for _, p := range all {
					known = append(known, p.Name())
				}
				return nil, fmt.Errorf("no projection %q (projections: %s)", n, strings.Join(known, ", "))
			}
			k = max(k, i+1)
		}
	}
	sub := e.Engine.Sub(k)
	stale, err := sub.Stale(db)
	if err != nil {
		return nil, err
	}
	rep := &RebuildReport{Asked: names}
	before := map[string][32]byte{}
	for _, p := range sub.Projections() {
		rep.Rebuilt = append(rep.Rebuilt, p.Name())
		d, err := projections.Digest(db, p)
		if err != nil {
			return nil, err
		}
		before[p.Name()] = d
	}
	if len(names) == 0 {
		rep.Asked = rep.Rebuilt
	}
	start := time.Now()
	total := uint64(0)
	if h, err := headOf(db); err == nil {
		total = h
	}
	n, err := projections.NewFolds(sub).Rebuild(db, projections.ReplayOptions{
		Sync:     true,
		Progress: func(done uint64) { e.progress("rebuild", done, total) },
	}, k == len(all))
	if err != nil {
		return nil, err
	}
	rep.Records = n
	rep.TookMS, rep.RecordsPerSec = took(start, n)
	for _, p := range sub.Projections() {
		d, err := projections.Digest(db, p)
		if err != nil {
			return nil, err
		}
		b := before[p.Name()]
		rep.Projections = append(rep.Projections, RebuiltProjection{
			Name: p.Name(), Before: hex.EncodeToString(b[:]), After: hex.EncodeToString(d[:]), Changed: b != d,
			Stale: slices.Contains(stale, p.Name()),
		})
	}
	return rep, nil
}
