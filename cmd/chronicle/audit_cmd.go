package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/pebble/v2"

	rlog "chronicle/log"
	"chronicle/projections/audit"
	"chronicle/raft/machine"
)

// The auditors' commands (verify, rebuild, log, at, trail) share one way
// of reaching the history: offline, a data directory given with --data
// (the server stopped, or a restored backup), whose state store is opened
// read-only; or online, a running node given with --node, through the
// admin endpoints under /_chronicle/v1/audit with the cluster secret or a
// server admin's token. The logic is projections/audit's in both cases:
// offline it runs here, online on the node.

// auditFlags are the flags every audit command shares.
type auditFlags struct {
	node, secret, data string
	timeout            time.Duration
	tmp, cache         string
	noCache            bool
	progress           string
	json               bool
}

func (a *auditFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.data, "data", "", "offline: a stopped node's data directory (or its state store); online: where to read <DIR>/cluster-secret")
	fs.StringVar(&a.node, "node", "", "online: base URL of a running node's client API (e.g. "+defaultNode+")")
	fs.StringVar(&a.secret, "secret", "", "online: cluster secret or a server admin's access token (default <--data>/cluster-secret, else $"+secretEnv+")")
	fs.DurationVar(&a.timeout, "timeout", 30*time.Second, "online: how long to wait for a short answer")
	fs.StringVar(&a.tmp, "tmp", "", "offline: directory for scratch stores (default the system's temporary directory)")
	fs.StringVar(&a.progress, "progress", "auto", "progress display on stderr: auto (a bar on a terminal, lines otherwise), bar, lines or off")
	fs.BoolVar(&a.json, "json", false, "print JSON instead of a readable table")
}

// registerCache adds verify's resume cache flags.
func (a *auditFlags) registerCache(fs *flag.FlagSet) {
	fs.StringVar(&a.cache, "cache", "", "offline: where verify caches its replayed state at the last checkpoint, for --from-checkpoint (default <user cache dir>/chronicle/audit)")
	fs.BoolVar(&a.noCache, "no-cache", false, "offline: do not cache the replayed state")
}

func (a *auditFlags) online() bool { return a.node != "" }

// check requires exactly one way to the history.
func (a *auditFlags) check(cmd string) error {
	if a.node == "" && a.data == "" {
		return fmt.Errorf("%s: give --data DIR (a stopped node's data, offline) or --node URL (a running node, online)", cmd)
	}
	return nil
}

func (a *auditFlags) client() (*opClient, error) {
	o := operatorFlags{node: a.node, secret: a.secret, data: a.data, timeout: a.timeout}
	return o.client()
}

// stateDirOf finds the state store in a data directory, or accepts the
// state store itself.
func stateDirOf(data string) (string, error) {
	for _, dir := range []string{filepath.Join(data, "state"), data} {
		if _, err := os.Stat(filepath.Join(dir, "CURRENT")); err == nil {
			return dir, nil
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*")); len(m) > 0 {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%s holds no state store (neither %s nor the directory itself)", data, filepath.Join(data, "state"))
}

// openOffline opens the data directory's state store read-only.
func (a *auditFlags) openOffline() (*pebble.DB, error) {
	dir, err := stateDirOf(a.data)
	if err != nil {
		return nil, err
	}
	db, err := machine.OpenStateReadOnly(dir)
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return nil, fmt.Errorf("%w\nthe state store is in use: is the server running? Stop it, or ask it with --node URL", err)
		}
		return nil, err
	}
	return db, nil
}

// env builds the offline audit environment.
func (a *auditFlags) env(p *progress) *audit.Env {
	env := &audit.Env{Engine: machine.NewEngine(), Options: machine.StoreOptions, TempDir: a.tmp}
	if !a.noCache {
		env.CacheDir = a.cache
		if env.CacheDir == "" {
			if d, err := os.UserCacheDir(); err == nil {
				env.CacheDir = filepath.Join(d, "chronicle", "audit")
			}
		}
	}
	if p != nil {
		env.Progress = p.update
	}
	return env
}

// withOffline opens the store, runs fn and closes it.
func (a *auditFlags) withOffline(fn func(db *pebble.DB) error) error {
	db, err := a.openOffline()
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(db)
}

// auditGet calls an audit endpoint and decodes its JSON answer.
func auditGet(ctx context.Context, c *opClient, path string, q url.Values, out any) error {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	_, err := c.call(ctx, http.MethodGet, path, nil, out)
	return err
}

// auditStream calls an audit endpoint answering JSON lines and hands each
// line to fn. It is not bounded by --timeout (a verify takes as long as
// the log is long), only by ctx.
func auditStream(ctx context.Context, c *opClient, path string, q url.Values, fn func(json.RawMessage) error) (*http.Response, error) {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := c.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var line json.RawMessage
		if err := dec.Decode(&line); err == io.EOF {
			return resp, nil
		} else if err != nil {
			return resp, fmt.Errorf("read the answer of %s: %w", path, err)
		}
		if string(line) == "null" {
			continue
		}
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(line, &e) == nil && e.Error != "" {
			return resp, fmt.Errorf("the node failed: %s", e.Error)
		}
		if err := fn(line); err != nil {
			return resp, err
		}
	}
}

// pathEscape escapes one path segment (room IDs start with "!", user IDs
// with "@", times hold ":").
func pathEscape(s string) string { return url.PathEscape(s) }

// ---- verify ----

const verifyUsage = "chronicle verify [--from-checkpoint] [--against POSITION:HASH] (--data DIR | --node URL) [--json]"

func verifyCmd(args []string) error {
	return runVerify(context.Background(), args, os.Stdout, os.Stderr)
}

func runVerify(ctx context.Context, args []string, out, errw io.Writer) error {
	fs := newFlagSet("verify", verifyUsage+`

Checks the hash chain of the record log from record 1 to the head, then
rebuilds every projection from the log into a scratch store and compares
each with the live one. Names the first broken record or the first
projection that differs, and exits non-zero. With --against, also proves
that the history up to a head published earlier (chronicle log head) was
not rewritten. With --from-checkpoint, resumes from the state an earlier
verify cached at a checkpoint and checks only what is new.`, errw)
	var a auditFlags
	a.register(fs)
	a.registerCache(fs)
	fromCP := fs.Bool("from-checkpoint", false, "resume from the replayed state an earlier verify cached at a checkpoint")
	against := fs.String("against", "", "a head published earlier, POSITION:HASH, that the log must still hold")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		fs.Usage()
		return fmt.Errorf("verify: unexpected argument %q", pos[0])
	}
	if err := a.check("verify"); err != nil {
		return err
	}
	o := audit.VerifyOptions{FromCheckpoint: *fromCP}
	if *against != "" {
		p, err := audit.ParseHead(*against)
		if err != nil {
			return fmt.Errorf("verify: --against %w", err)
		}
		o.Against = &p
	}
	prog, err := newProgress(errw, a.progress, "verify")
	if err != nil {
		return err
	}
	var rep *audit.VerifyReport
	if a.online() {
		rep, err = verifyOnline(ctx, &a, o, prog)
	} else {
		err = a.withOffline(func(db *pebble.DB) error {
			var err error
			rep, err = a.env(prog).Verify(db, o)
			return err
		})
	}
	prog.finish()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if a.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printVerify(out, rep)
	}
	if !rep.OK {
		return fmt.Errorf("verify FAILED: %s", rep.Failure)
	}
	return nil
}

func verifyOnline(ctx context.Context, a *auditFlags, o audit.VerifyOptions, prog *progress) (*audit.VerifyReport, error) {
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if o.FromCheckpoint {
		q.Set("from_checkpoint", "true")
	}
	if o.Against != nil {
		q.Set("against", audit.FormatHead(*o.Against))
	}
	var rep *audit.VerifyReport
	_, err = auditStream(ctx, c, "/audit/verify", q, func(line json.RawMessage) error {
		var m struct {
			Progress *struct {
				Phase       string `json:"phase"`
				Done, Total uint64
			} `json:"progress"`
			Report *audit.VerifyReport `json:"report"`
		}
		if err := json.Unmarshal(line, &m); err != nil {
			return err
		}
		if m.Progress != nil {
			prog.update(m.Progress.Phase, m.Progress.Done, m.Progress.Total)
		}
		if m.Report != nil {
			rep = m.Report
		}
		return nil
	})
	if err == nil && rep == nil {
		err = errors.New("the node's answer ended without a report")
	}
	return rep, err
}

func short(hex string) string {
	if len(hex) > 16 {
		return hex[:16]
	}
	return hex
}

func printVerify(w io.Writer, r *audit.VerifyReport) {
	fmt.Fprintf(w, "log head        %s\n", r.Head)
	c := r.Chain
	if c.OK {
		fmt.Fprintf(w, "hash chain      OK: records %d to %d (%d records, %d checkpoints) in %s, %s records/s\n",
			c.From, c.To, c.Records, c.Checkpoints, ms(c.TookMS), humanRate(c.RecordsPerSec))
	} else {
		fmt.Fprintf(w, "hash chain      BROKEN at record %d: %s\n", r.BrokenRecord, c.Reason)
	}
	if ag := r.Against; ag != nil {
		if ag.OK {
			fmt.Fprintf(w, "published head  OK: %s is still in the log; the history up to it is unchanged\n", ag.Head)
		} else {
			fmt.Fprintf(w, "published head  FAILED: %s: %s\n", ag.Head, ag.Reason)
		}
	}
	if c.OK {
		rp := r.Replay
		fmt.Fprintf(w, "replay          %d records from record %d in %s, %s records/s; %d checkpoints checked",
			rp.Records, rp.From, ms(rp.TookMS), humanRate(rp.RecordsPerSec), rp.CheckpointsChecked)
		if rp.CachedAt > 0 {
			fmt.Fprintf(w, "; state cached at checkpoint %d", rp.CachedAt)
		}
		fmt.Fprintln(w)
	}
	for _, cp := range r.Checkpoints {
		fmt.Fprintf(w, "checkpoint %d  DIFFERS: %s\n", cp.Position, cp.Reason)
	}
	if len(r.Projections) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PROJECTION\tVERSION\tRESULT\tLIVE DIGEST\tREBUILT DIGEST\tFOLD")
		for _, p := range r.Projections {
			res := "OK"
			if !p.DigestEqual {
				res = "DIFFERS"
			}
			fold := "-"
			if p.FoldEqual != nil {
				fold = "same"
				if !*p.FoldEqual {
					fold = "DIFFERS"
					res = "DIFFERS"
				}
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", p.Name, p.Version, res, short(p.Live), short(p.Rebuilt), fold)
		}
		tw.Flush()
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if r.OK {
		fmt.Fprintf(w, "verify OK in %s\n", ms(r.TookMS))
	} else {
		fmt.Fprintf(w, "verify FAILED: %s\n", r.Failure)
	}
}

func ms(n int64) string { return roundDuration(time.Duration(n) * time.Millisecond) }

// ---- rebuild ----

const rebuildUsage = "chronicle rebuild --data DIR [--projection NAME]..."

// multiFlag collects a repeated (or comma-separated) flag.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*m = append(*m, s)
		}
	}
	return nil
}

func rebuildCmd(args []string) error { return runRebuild(args, os.Stdout, os.Stderr) }

func runRebuild(args []string, out, errw io.Writer) error {
	fs := newFlagSet("rebuild", rebuildUsage+`

Rebuilds projections of a STOPPED node's state store in place from its
record log (every projection without --projection), and reports the time,
the records per second and whether each projection's contents changed. A
projection reads the ones before it while folding, so those are rebuilt
with it.`, errw)
	var names multiFlag
	fs.Var(&names, "projection", "a projection to rebuild (repeat, or separate with commas); default all")
	data := fs.String("data", "", "the stopped node's data directory (or its state store)")
	progMode := fs.String("progress", "auto", "progress display on stderr: auto, bar, lines or off")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	node := fs.String("node", "", "refused: a rebuild runs offline")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		fs.Usage()
		return fmt.Errorf("rebuild: unexpected argument %q", pos[0])
	}
	if *node != "" {
		return errors.New("rebuild: runs on a stopped node's data directory (--data), never online: stop the node first")
	}
	if *data == "" {
		fs.Usage()
		return errors.New("rebuild: --data DIR is required")
	}
	dir, err := stateDirOf(*data)
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	db, err := machine.OpenStateWritable(dir)
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return fmt.Errorf("rebuild: %w\nthe state store is in use: stop the server first", err)
		}
		return fmt.Errorf("rebuild: %w", err)
	}
	defer db.Close()
	prog, err := newProgress(errw, *progMode, "rebuild")
	if err != nil {
		return err
	}
	env := &audit.Env{Engine: machine.NewEngine(), Options: machine.StoreOptions, Progress: prog.update}
	rep, err := env.RebuildInPlace(db, names)
	prog.finish()
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(out, "rebuilt %s from %d records in %s: %s records/s\n", strings.Join(rep.Rebuilt, ", "), rep.Records, ms(rep.TookMS), humanRate(rep.RecordsPerSec))
	if len(rep.Rebuilt) > len(rep.Asked) {
		fmt.Fprintf(out, "  (asked for %s; the projections before them are rebuilt too, since they read them while folding)\n", strings.Join(rep.Asked, ", "))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tDIGEST BEFORE\tDIGEST AFTER\tCONTENTS")
	for _, p := range rep.Projections {
		what := "unchanged"
		switch {
		case p.Changed && p.Stale:
			what = "rebuilt (stored by an older version of the projection)"
		case p.Changed:
			what = "CHANGED (the old contents did not match the log)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, short(p.Before), short(p.After), what)
	}
	return tw.Flush()
}

// checkSpec checks a --from/--to value early (online, the node resolves
// times itself).
func checkSpec(name, v string) error {
	if v == "" {
		return nil
	}
	if _, _, err := audit.ParseSpec(v); err != nil {
		return fmt.Errorf("--%s: %w", name, err)
	}
	return nil
}

// headOnline asks a node for its log head.
func headOnline(ctx context.Context, c *opClient) (rlog.Position, error) {
	var h struct {
		Position uint64 `json:"position"`
		Hash     string `json:"hash"`
	}
	if err := auditGet(ctx, c, "/audit/head", nil, &h); err != nil {
		return rlog.Position{}, err
	}
	p := rlog.Position{Seq: h.Position}
	b, err := hex.DecodeString(h.Hash)
	if err != nil || len(b) != len(p.Hash) {
		return p, fmt.Errorf("the node sent a malformed head hash %q", h.Hash)
	}
	copy(p.Hash[:], b)
	return p, nil
}
