package audit

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections"
	"chronicle/projections/facts"
)

// Verify's resume cache: <CacheDir>/<log id>/state-<P>/ is a Pebble
// checkpoint of a verifier's scratch store holding every projection after
// record P, where record P+1 is a log.checkpoint; state-<P>.json
// describes it. The log id is the hash of record 1, so caches of different
// logs never mix. Only the newest state is kept.

type cachedState struct {
	Position   uint64             `json:"position"`   // P: the state is after record P
	Hash       string             `json:"hash"`       // record P's hash
	Checkpoint uint64             `json:"checkpoint"` // P+1
	Projection []cachedProjection `json:"projections"`
	Created    time.Time          `json:"created"`
	dir        string
}

type cachedProjection struct {
	Name    string `json:"name"`
	Version uint32 `json:"version"`
	Fold    string `json:"fold"`
}

func (c *cachedState) hash() rlog.Hash {
	var h rlog.Hash
	b, _ := hex.DecodeString(c.Hash)
	copy(h[:], b)
	return h
}

// logID names a log by its first record's hash.
func logID(src pebble.Reader) (string, error) {
	h, err := rlog.StoredHash(src, 1)
	if err != nil {
		return "", err
	}
	return h.String()[:16], nil
}

// saveResume caches the scratch store, which holds the state after record
// rec.Seq-1, before checkpoint record rec.
func (e *Env) saveResume(src pebble.Reader, db *pebble.DB, rec *rlog.Record, folds []projections.FoldHash) error {
	id, err := logID(src)
	if err != nil {
		return err
	}
	base := filepath.Join(e.CacheDir, id)
	if err := os.MkdirAll(base, 0o700); err != nil {
		return err
	}
	// The scratch store runs without a WAL: flush the memtable so the
	// checkpoint holds everything.
	if err := db.Flush(); err != nil {
		return err
	}
	pos := rec.Seq - 1
	name := fmt.Sprintf("state-%d", pos)
	tmp := filepath.Join(base, name+".partial")
	os.RemoveAll(tmp)
	if err := db.Checkpoint(tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("checkpoint the scratch store: %w", err)
	}
	cs := cachedState{Position: pos, Hash: rec.PrevHash.String(), Checkpoint: rec.Seq, Created: time.Now().UTC().Truncate(time.Second)}
	for _, f := range folds {
		cs.Projection = append(cs.Projection, cachedProjection{Name: f.Name, Version: f.Version, Fold: hex.EncodeToString(f.Hash[:])})
	}
	b, err := json.MarshalIndent(&cs, "", "  ")
	if err != nil {
		return err
	}
	final := filepath.Join(base, name)
	os.RemoveAll(final)
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(base, name+".json"), append(b, '\n'), 0o600); err != nil {
		return err
	}
	// Keep only the newest.
	entries, _ := os.ReadDir(base)
	for _, ent := range entries {
		n := ent.Name()
		if strings.HasPrefix(n, "state-") && n != name && n != name+".json" {
			os.RemoveAll(filepath.Join(base, n))
		}
	}
	return nil
}

// findResume returns the newest usable cached state for src's log, or nil
// and why there is none.
func (e *Env) findResume(src pebble.Reader, head rlog.Position) (*cachedState, string) {
	if e.CacheDir == "" {
		return nil, "no cache directory"
	}
	id, err := logID(src)
	if err != nil {
		return nil, err.Error()
	}
	base := filepath.Join(e.CacheDir, id)
	entries, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "none in " + base
	}
	if err != nil {
		return nil, err.Error()
	}
	var states []*cachedState
	for _, ent := range entries {
		if !strings.HasPrefix(ent.Name(), "state-") || !strings.HasSuffix(ent.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(base, ent.Name()))
		if err != nil {
			continue
		}
		var cs cachedState
		if json.Unmarshal(b, &cs) != nil {
			continue
		}
		cs.dir = filepath.Join(base, strings.TrimSuffix(ent.Name(), ".json"))
		states = append(states, &cs)
	}
	sort.Slice(states, func(i, j int) bool { return states[i].Position > states[j].Position })
	why := "none in " + base
	for _, cs := range states {
		if reason := e.usable(src, head, cs); reason != "" {
			why = fmt.Sprintf("the state cached at record %d is not usable: %s", cs.Position, reason)
			continue
		}
		return cs, ""
	}
	return nil, why
}

// usable checks a cached state against the log: the record it follows
// still has the cached hash, the next record is the checkpoint it was
// taken at and attests the same fold hashes, and the engine is the same.
func (e *Env) usable(src pebble.Reader, head rlog.Position, cs *cachedState) string {
	if _, err := os.Stat(cs.dir); err != nil {
		return "its store is missing"
	}
	if cs.Checkpoint != cs.Position+1 || cs.Checkpoint > head.Seq {
		return fmt.Sprintf("the log ends at %d", head.Seq)
	}
	h, err := rlog.StoredHash(src, cs.Position)
	if err != nil {
		return err.Error()
	}
	if h.String() != cs.Hash {
		return fmt.Sprintf("record %d now has hash %s, the cache recorded %s: the history was rewritten", cs.Position, h, cs.Hash)
	}
	rec, err := rlog.Get(src, cs.Checkpoint)
	if err != nil {
		return err.Error()
	}
	if rec.Type != facts.TypeCheckpoint {
		return fmt.Sprintf("record %d is not a checkpoint", cs.Checkpoint)
	}
	var cp facts.Checkpoint
	if err := facts.Decode(rec.Body, &cp); err != nil {
		return err.Error()
	}
	ps := e.Engine.Projections()
	if len(cs.Projection) != len(ps) {
		return "the projections changed since"
	}
	recorded := map[string]facts.CheckpointProjection{}
	for _, p := range cp.Projections {
		recorded[p.Name] = p
	}
	for i, p := range ps {
		c := cs.Projection[i]
		if c.Name != p.Name() || c.Version != p.Version() {
			return "the projections changed since"
		}
		if r, ok := recorded[c.Name]; !ok || hex.EncodeToString(r.Fold[:]) != c.Fold {
			return fmt.Sprintf("checkpoint %d does not attest the cached fold hash of %s", cs.Checkpoint, c.Name)
		}
	}
	return ""
}
