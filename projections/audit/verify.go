package audit

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// FormatHead renders a log head in the form an operator publishes and
// verify --against reads back: "POSITION:HASH".
func FormatHead(p rlog.Position) string { return strconv.FormatUint(p.Seq, 10) + ":" + p.Hash.String() }

// ParseHead parses "POSITION:HASH".
func ParseHead(s string) (rlog.Position, error) {
	pos, hash, ok := strings.Cut(strings.TrimSpace(s), ":")
	seq, err := strconv.ParseUint(pos, 10, 64)
	if !ok || err != nil || seq == 0 {
		return rlog.Position{}, fmt.Errorf("%q is not POSITION:HASH (as chronicle log head prints it)", s)
	}
	b, err := hex.DecodeString(hash)
	if err != nil || len(b) != 32 {
		return rlog.Position{}, fmt.Errorf("%q: the hash is not 64 hex digits", s)
	}
	p := rlog.Position{Seq: seq}
	copy(p.Hash[:], b)
	return p, nil
}

// VerifyOptions shape a Verify.
type VerifyOptions struct {
	// FromCheckpoint resumes from the newest state cached by an earlier
	// verify at a checkpoint (see the package doc).
	FromCheckpoint bool
	// Against is a head published earlier that the log must still hold.
	Against *rlog.Position
}

// VerifyReport is the outcome of Verify. OK is false when anything
// failed; Failure says what first, BrokenRecord or DifferingProjection
// name it.
type VerifyReport struct {
	OK                  bool               `json:"ok"`
	Head                string             `json:"head"`
	Failure             string             `json:"failure,omitempty"`
	BrokenRecord        uint64             `json:"broken_record,omitempty"`
	DifferingProjection string             `json:"differing_projection,omitempty"`
	Chain               ChainReport        `json:"chain"`
	Against             *AgainstReport     `json:"against,omitempty"`
	Replay              ReplayReport       `json:"replay"`
	Checkpoints         []CheckpointReport `json:"checkpoints,omitempty"`
	Projections         []ProjectionReport `json:"projections,omitempty"`
	Notes               []string           `json:"notes,omitempty"`
	TookMS              int64              `json:"took_ms"`
	resume              *cachedState       // nil: replayed from record 1
}

// ChainReport is the hash-chain check.
type ChainReport struct {
	OK            bool    `json:"ok"`
	From          uint64  `json:"from"`
	To            uint64  `json:"to"`
	Records       uint64  `json:"records"`
	Checkpoints   int     `json:"checkpoints"`
	TookMS        int64   `json:"took_ms"`
	RecordsPerSec float64 `json:"records_per_sec"`
	Reason        string  `json:"reason,omitempty"`
}

// AgainstReport is the check of a published head.
type AgainstReport struct {
	Head   string `json:"head"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
}

// ReplayReport is the rebuild into the scratch store.
type ReplayReport struct {
	// From is the first record replayed: 1, or the checkpoint record the
	// replay resumed at.
	From               uint64  `json:"from"`
	Records            uint64  `json:"records"`
	TookMS             int64   `json:"took_ms"`
	RecordsPerSec      float64 `json:"records_per_sec"`
	CheckpointsChecked int     `json:"checkpoints_checked"`
	CachedAt           uint64  `json:"cached_at,omitempty"`
}

// CheckpointReport is one checkpoint that did not match the replay (only
// failures are listed; ReplayReport counts the checked ones).
type CheckpointReport struct {
	Position uint64   `json:"position"`
	Reason   string   `json:"reason"`
	Differs  []string `json:"differs,omitempty"`
}

// ProjectionReport compares one projection, live against rebuilt.
type ProjectionReport struct {
	Name        string `json:"name"`
	Version     uint32 `json:"version"`
	Live        string `json:"live_digest"`
	Rebuilt     string `json:"rebuilt_digest"`
	DigestEqual bool   `json:"digest_equal"`
	FoldLive    string `json:"live_fold,omitempty"`
	FoldRebuilt string `json:"rebuilt_fold"`
	// FoldEqual is nil when the live store has no fold hashes.
	FoldEqual *bool `json:"fold_equal,omitempty"`
}

func (r *VerifyReport) fail(msg string) {
	if r.OK {
		r.Failure = msg
	}
	r.OK = false
}

// Verify checks src (a state store or a snapshot of one): the hash chain,
// an optional published head, and every projection against a replay of
// the log into a scratch store. A failed check is reported in the report
// (OK false), not as an error; an error means the check could not run.
func (e *Env) Verify(src pebble.Reader, o VerifyOptions) (*VerifyReport, error) {
	start := time.Now()
	rep := &VerifyReport{OK: true}
	head, err := rlog.ReadHead(src)
	if err != nil {
		return nil, err
	}
	rep.Head = FormatHead(head)
	if head.Seq == 0 {
		rep.Notes = append(rep.Notes, "the log is empty")
	}

	// Where to start: the newest cached checkpoint state, or record 1.
	if o.FromCheckpoint && head.Seq > 0 {
		cs, why := e.findResume(src, head)
		if cs == nil {
			rep.Notes = append(rep.Notes, "no usable state cached by an earlier verify ("+why+"): verifying from record 1")
		} else {
			rep.resume = cs
			rep.Notes = append(rep.Notes, fmt.Sprintf("resuming from the checkpoint at record %d, cached by the verify of %s", cs.Checkpoint, cs.Created.Format(time.RFC3339)))
		}
	}
	chainFrom, prev := uint64(1), rlog.Hash{}
	if rep.resume != nil {
		chainFrom, prev = rep.resume.Checkpoint, rep.resume.hash()
		if o.Against != nil && o.Against.Seq < chainFrom {
			// The published head lies before the resume point: check the
			// chain from record 1 so the proof covers it.
			chainFrom, prev = 1, rlog.Hash{}
		}
	}

	// 1. The hash chain.
	rep.Chain.From = chainFrom
	var checkpoints []uint64
	var againstFound bool
	var againstHash rlog.Hash
	chainStart := time.Now()
	total := head.Seq - min(head.Seq, chainFrom-1)
	_, err = rlog.VerifyRange(src, chainFrom, prev, func(rec *rlog.Record, h rlog.Hash) error {
		rep.Chain.Records++
		rep.Chain.To = rec.Seq
		if rec.Type == facts.TypeCheckpoint {
			checkpoints = append(checkpoints, rec.Seq)
		}
		if o.Against != nil && rec.Seq == o.Against.Seq {
			againstFound, againstHash = true, h
		}
		if rep.Chain.Records%8192 == 0 {
			e.progress("chain", rep.Chain.Records, total)
		}
		return nil
	})
	e.progress("chain", rep.Chain.Records, total)
	rep.Chain.TookMS, rep.Chain.RecordsPerSec = took(chainStart, rep.Chain.Records)
	rep.Chain.Checkpoints = len(checkpoints)
	if err != nil {
		var ce *rlog.ChainError
		if !errors.As(err, &ce) {
			return nil, err
		}
		rep.Chain.Reason = ce.Error()
		rep.BrokenRecord = ce.Seq
		rep.fail(fmt.Sprintf("the hash chain is broken at record %d: %s", ce.Seq, ce.Reason))
		rep.Notes = append(rep.Notes, "projections were not compared: the log itself is damaged")
		rep.TookMS = time.Since(start).Milliseconds()
		return rep, nil
	}
	rep.Chain.OK = true

	// 2. The published head.
	if o.Against != nil {
		ar := &AgainstReport{Head: FormatHead(*o.Against), OK: true}
		rep.Against = ar
		switch {
		case o.Against.Seq > head.Seq:
			ar.OK, ar.Reason = false, fmt.Sprintf("the log ends at %d, before the published position %d: history was truncated, or this is another log", head.Seq, o.Against.Seq)
		case !againstFound:
			ar.OK, ar.Reason = false, fmt.Sprintf("record %d was not checked", o.Against.Seq)
		case againstHash != o.Against.Hash:
			ar.OK, ar.Reason = false, fmt.Sprintf("record %d now has hash %s, not the published %s: the history up to it was rewritten", o.Against.Seq, againstHash, o.Against.Hash)
		}
		if !ar.OK {
			rep.fail("published head " + ar.Head + ": " + ar.Reason)
		}
	}

	// 3. Replay into a scratch store.
	if err := e.replayAndCompare(src, head, checkpoints, rep); err != nil {
		return nil, err
	}
	rep.TookMS = time.Since(start).Milliseconds()
	return rep, nil
}

func took(start time.Time, n uint64) (int64, float64) {
	d := time.Since(start)
	rate := 0.0
	if d > 0 {
		rate = float64(n) / d.Seconds()
	}
	return d.Milliseconds(), rate
}

// replayAndCompare rebuilds every projection from the log (or from the
// resume state) and compares checkpoints on the way and digests at the
// end.
func (e *Env) replayAndCompare(src pebble.Reader, head rlog.Position, checkpoints []uint64, rep *VerifyReport) error {
	seed, from := "", uint64(1)
	if rep.resume != nil {
		seed, from = rep.resume.dir, rep.resume.Checkpoint
	}
	sc, err := e.newScratch(seed)
	if err != nil {
		return err
	}
	defer sc.close()
	f := projections.NewFolds(e.Engine)
	if rep.resume != nil {
		if err := f.Load(sc.db); err != nil {
			return err
		}
	}
	lastCP := uint64(0)
	if n := len(checkpoints); n > 0 && e.CacheDir != "" {
		lastCP = checkpoints[n-1]
	}
	rep.Replay.From = from
	replayStart := time.Now()
	total := head.Seq - min(head.Seq, from-1)
	if head.Seq > 0 {
		_, err = f.Replay(sc.db, src, projections.ReplayOptions{
			From: from, To: head.Seq,
			Before: func(rec *rlog.Record, flush func() error) error {
				if rec.Type != facts.TypeCheckpoint {
					return nil
				}
				rep.Replay.CheckpointsChecked++
				if cr := checkCheckpoint(rec, f.Hashes()); cr != nil {
					rep.Checkpoints = append(rep.Checkpoints, *cr)
					rep.fail(fmt.Sprintf("checkpoint at record %d: %s", cr.Position, cr.Reason))
					if rep.DifferingProjection == "" && len(cr.Differs) > 0 {
						rep.DifferingProjection = cr.Differs[0]
					}
				} else if rec.Seq == lastCP && rep.OK && (rep.resume == nil || rec.Seq > rep.resume.Checkpoint) {
					if err := flush(); err != nil {
						return err
					}
					if err := e.saveResume(src, sc.db, rec, f.Hashes()); err != nil {
						rep.Notes = append(rep.Notes, "could not cache the state at this checkpoint: "+err.Error())
					} else {
						rep.Replay.CachedAt = rec.Seq
					}
				}
				return nil
			},
			Progress: func(done uint64) { e.progress("replay", done, total) },
		})
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	rep.Replay.Records = total
	rep.Replay.TookMS, rep.Replay.RecordsPerSec = took(replayStart, total)

	// 4. Compare every projection, live against rebuilt.
	e.progress("compare", 0, uint64(len(e.Engine.Projections())))
	hasFolds, err := projections.HasFoldMarker(src)
	if err != nil {
		return err
	}
	var liveFolds []projections.FoldHash
	if hasFolds {
		if liveFolds, err = projections.ReadFolds(src, e.Engine); err != nil {
			return err
		}
	} else {
		rep.Notes = append(rep.Notes, "the live store keeps no fold hashes (it predates them): only digests compared")
	}
	rebuiltFolds := f.Hashes()
	for i, p := range e.Engine.Projections() {
		live, err := projections.Digest(src, p)
		if err != nil {
			return err
		}
		rebuilt, err := projections.Digest(sc.db, p)
		if err != nil {
			return err
		}
		pr := ProjectionReport{
			Name: p.Name(), Version: p.Version(),
			Live: hex.EncodeToString(live[:]), Rebuilt: hex.EncodeToString(rebuilt[:]), DigestEqual: live == rebuilt,
			FoldRebuilt: hex.EncodeToString(rebuiltFolds[i].Hash[:]),
		}
		if hasFolds {
			eq := liveFolds[i].Hash == rebuiltFolds[i].Hash
			pr.FoldLive, pr.FoldEqual = hex.EncodeToString(liveFolds[i].Hash[:]), &eq
		}
		rep.Projections = append(rep.Projections, pr)
		switch {
		case !pr.DigestEqual:
			if rep.DifferingProjection == "" {
				rep.DifferingProjection = p.Name()
			}
			rep.fail(fmt.Sprintf("projection %s differs from its rebuild from the log: live digest %s, rebuilt %s", p.Name(), pr.Live, pr.Rebuilt))
		case pr.FoldEqual != nil && !*pr.FoldEqual:
			if rep.DifferingProjection == "" {
				rep.DifferingProjection = p.Name()
			}
			rep.fail(fmt.Sprintf("projection %s holds the rebuilt contents but its fold hash differs: the live node folded different writes", p.Name()))
		}
		e.progress("compare", uint64(i+1), uint64(len(e.Engine.Projections())))
	}
	return nil
}

// checkCheckpoint compares a checkpoint record with the replay's state
// just before it; nil means it matches.
func checkCheckpoint(rec *rlog.Record, folds []projections.FoldHash) *CheckpointReport {
	var cp facts.Checkpoint
	if err := facts.Decode(rec.Body, &cp); err != nil {
		return &CheckpointReport{Position: rec.Seq, Reason: "undecodable body: " + err.Error()}
	}
	if cp.Head != rec.Seq-1 || rlog.Hash(cp.HeadHash) != rec.PrevHash {
		return &CheckpointReport{Position: rec.Seq, Reason: fmt.Sprintf("it records head %d/%x but follows record %d/%s", cp.Head, cp.HeadHash, rec.Seq-1, rec.PrevHash)}
	}
	recorded := make(map[string]facts.CheckpointProjection, len(cp.Projections))
	for _, p := range cp.Projections {
		recorded[p.Name] = p
	}
	var differs []string
	for _, h := range folds {
		c, ok := recorded[h.Name]
		if !ok || c.Version != h.Version {
			// This projection and every later one (which may read it)
			// were folded by other code: not comparable.
			break
		}
		if c.Fold != h.Hash {
			differs = append(differs, h.Name)
		}
	}
	if len(differs) == 0 {
		return nil
	}
	return &CheckpointReport{Position: rec.Seq, Differs: differs,
		Reason: fmt.Sprintf("projection %s of the live node had folded other writes than the replay by record %d (%s)", differs[0], cp.Head, strings.Join(differs, ", "))}
}
