package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/api"
	rlog "chronicle/log"
	"chronicle/projections/audit"
)

const logUsage = `chronicle log head|show|tail|export (--data DIR | --node URL) [flags]

  head     the log head as POSITION:HASH, to publish (verify --against checks it later)
  show     records as a table (--from/--to/--type/--actor/--room, --limit)
  tail     the last records (-n) as a table; --follow keeps printing new ones
  export   records as JSON lines (bodies decoded; unknown types as base64)`

func logCmd(args []string) error { return runLog(context.Background(), args, os.Stdout, os.Stderr) }

func runLog(ctx context.Context, args []string, out, errw io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(errw, "usage: "+logUsage)
		if len(args) == 0 {
			return errors.New("log: which? head, show, tail or export")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "head":
		return runLogHead(ctx, args, out, errw)
	case "show", "tail", "export":
		return runLogRecords(ctx, sub, args, out, errw)
	}
	fmt.Fprintln(errw, "usage: "+logUsage)
	return fmt.Errorf("log: unknown subcommand %q", sub)
}

func runLogHead(ctx context.Context, args []string, out, errw io.Writer) error {
	fs := newFlagSet("log head", "chronicle log head (--data DIR | --node URL) [--json]\n\nPrints the log head as POSITION:HASH: publish it somewhere the operators of\nthis server cannot rewrite, and check it later with chronicle verify --against.", errw)
	var a auditFlags
	a.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return fmt.Errorf("log head: unexpected argument %q", pos[0])
	}
	if err := a.check("log head"); err != nil {
		return err
	}
	var head rlog.Position
	if a.online() {
		c, err := a.client()
		if err != nil {
			return err
		}
		if head, err = headOnline(ctx, c); err != nil {
			return fmt.Errorf("log head: %w", err)
		}
	} else if err := a.withOffline(func(db *pebble.DB) error {
		var err error
		head, err = rlog.ReadHead(db)
		return err
	}); err != nil {
		return fmt.Errorf("log head: %w", err)
	}
	if a.json {
		return json.NewEncoder(out).Encode(map[string]any{"position": head.Seq, "hash": head.Hash.String(), "head": audit.FormatHead(head)})
	}
	fmt.Fprintln(out, audit.FormatHead(head))
	return nil
}

// recordFlags select records.
type recordFlags struct {
	from, to, types, actor, room string
}

func (r *recordFlags) register(fs interface {
	StringVar(*string, string, string, string)
}) {
	fs.StringVar(&r.from, "from", "", "first position (a number, or s<number> as in sync tokens) or time (RFC 3339)")
	fs.StringVar(&r.to, "to", "", "last position or time")
	fs.StringVar(&r.types, "type", "", "record types, comma-separated; a trailing * or . matches a prefix (room.*)")
	fs.StringVar(&r.actor, "actor", "", "only records with this actor (a user ID)")
	fs.StringVar(&r.room, "room", "", "only records about this room (room events, receipts, typing, account data...)")
}

func (r *recordFlags) check() error {
	if err := checkSpec("from", r.from); err != nil {
		return err
	}
	return checkSpec("to", r.to)
}

// filter resolves the flags against a store (offline).
func (r *recordFlags) filter(db pebble.Reader) (audit.Filter, error) {
	f := audit.Filter{Actor: r.actor, Room: r.room}
	if r.types != "" {
		f.Types = strings.Split(r.types, ",")
	}
	var err error
	if r.from != "" {
		if f.From, err = audit.RangeFrom(db, r.from); err != nil {
			return f, err
		}
	}
	if r.to != "" {
		if f.To, err = audit.RangeTo(db, r.to); err != nil {
			return f, err
		}
		if f.To == 0 { // a time before the first record
			f.From, f.To = 2, 1
		}
	}
	return f, nil
}

// query renders the flags as the records endpoint's parameters.
func (r *recordFlags) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"from": r.from, "to": r.to, "type": r.types, "actor": r.actor, "room": r.room} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

func runLogRecords(ctx context.Context, sub string, args []string, out, errw io.Writer) error {
	usage := map[string]string{
		"show":   "chronicle log show (--data DIR | --node URL) [--from P|T] [--to P|T] [--type T] [--actor U] [--room R] [--limit N] [--json]",
		"tail":   "chronicle log tail (--data DIR | --node URL) [-n N] [--follow] [--type T] [--actor U] [--room R] [--json]",
		"export": "chronicle log export (--data DIR | --node URL) [--from P|T] [--to P|T] [--type T] [--actor U] [--room R] [--out FILE]",
	}[sub]
	fs := newFlagSet("log "+sub, usage, errw)
	var a auditFlags
	a.register(fs)
	var rf recordFlags
	rf.register(fs)
	limit := fs.Int("limit", 0, "show: at most this many records (0: all)")
	n := fs.Int("n", 20, "tail: how many of the last records")
	follow := fs.Bool("follow", false, "tail: keep printing new records as they are written")
	interval := fs.Duration("interval", time.Second, "tail --follow offline: how often to look at the store")
	outFile := fs.String("out", "", "export: write to this file instead of stdout")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return fmt.Errorf("log %s: unexpected argument %q", sub, pos[0])
	}
	if err := a.check("log " + sub); err != nil {
		return err
	}
	if err := rf.check(); err != nil {
		return fmt.Errorf("log %s: %w", sub, err)
	}
	asJSON := a.json || sub == "export"
	if *outFile != "" {
		f, err := os.OpenFile(*outFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	bw := bufio.NewWriterSize(out, 1<<16)
	defer bw.Flush()
	p := newPrinter(bw, asJSON)
	prog, err := newProgress(errw, a.progress, "log "+sub)
	if err != nil {
		return err
	}
	if sub != "export" {
		prog = nil // tables are short; the first row is progress enough
	}
	defer prog.finish()

	emit := func(e *audit.Entry) error { return p.print(e) }
	if sub == "show" && *limit > 0 {
		left := *limit
		emit = func(e *audit.Entry) error {
			if left == 0 {
				return errEnough
			}
			left--
			return p.print(e)
		}
	}
	var last uint64
	if a.online() {
		c, err := a.client()
		if err != nil {
			return err
		}
		q := rf.query()
		if sub == "tail" {
			q.Set("last", strconv.Itoa(*n))
		}
		resp, err := auditStream(ctx, c, "/audit/records", q, func(line json.RawMessage) error {
			var e audit.Entry
			if err := json.Unmarshal(line, &e); err != nil {
				return err
			}
			return emit(&e)
		})
		if err != nil && !errors.Is(err, errEnough) {
			return fmt.Errorf("log %s: %w", sub, err)
		}
		if sub != "tail" || !*follow {
			return p.flush()
		}
		last, _ = strconv.ParseUint(resp.Header.Get(api.HeaderLogPosition), 10, 64)
		return followOnline(ctx, c, rf, last, p)
	}
	err = a.withOffline(func(db *pebble.DB) error {
		f, err := rf.filter(db)
		if err != nil {
			return err
		}
		env := a.env(prog)
		head, err := rlog.ReadHead(db)
		if err != nil {
			return err
		}
		last = head.Seq
		if sub == "tail" {
			entries, err := env.Last(db, f, *n)
			if err != nil {
				return err
			}
			for _, e := range entries {
				if err := emit(e); err != nil {
					return err
				}
			}
			return nil
		}
		return env.Records(db, f, emit)
	})
	if err != nil && !errors.Is(err, errEnough) {
		return fmt.Errorf("log %s: %w", sub, err)
	}
	if sub != "tail" || !*follow {
		return p.flush()
	}
	return followOffline(ctx, &a, rf, last, *interval, p)
}

var errEnough = errors.New("enough records")

// followOnline long-polls the node for records after last.
func followOnline(ctx context.Context, c *opClient, rf recordFlags, last uint64, p *printer) error {
	for {
		if err := p.flush(); err != nil {
			return err
		}
		q := rf.query()
		q.Set("from", strconv.FormatUint(last+1, 10))
		q.Del("to")
		q.Set("wait", "25s")
		resp, err := auditStream(ctx, c, "/audit/records", q, func(line json.RawMessage) error {
			var e audit.Entry
			if err := json.Unmarshal(line, &e); err != nil {
				return err
			}
			return p.print(&e)
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("log tail --follow: %w", err)
		}
		if h, err := strconv.ParseUint(resp.Header.Get(api.HeaderLogPosition), 10, 64); err == nil && h > last {
			last = h
		}
	}
}

// followOffline polls the store (reopened each time, since another
// process may write it) for records after last.
func followOffline(ctx context.Context, a *auditFlags, rf recordFlags, last uint64, interval time.Duration, p *printer) error {
	for {
		if err := p.flush(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
		err := a.withOffline(func(db *pebble.DB) error {
			f, err := rf.filter(db)
			if err != nil {
				return err
			}
			head, err := rlog.ReadHead(db)
			if err != nil || head.Seq <= last {
				return err
			}
			f.From, f.To = last+1, head.Seq
			last = head.Seq
			return a.env(nil).Records(db, f, p.print)
		})
		if err != nil {
			return fmt.Errorf("log tail --follow: %w", err)
		}
	}
}

// printer prints entries as JSON lines or as a table whose header comes
// once.
type printer struct {
	w      *bufio.Writer
	json   bool
	tw     *tabwriter.Writer
	header bool
	enc    *json.Encoder
}

func newPrinter(w *bufio.Writer, asJSON bool) *printer {
	p := &printer{w: w, json: asJSON, enc: json.NewEncoder(w)}
	p.enc.SetEscapeHTML(false)
	return p
}

func (p *printer) print(e *audit.Entry) error {
	if p.json {
		return p.enc.Encode(e)
	}
	if p.tw == nil {
		p.tw = tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	}
	if !p.header {
		fmt.Fprintln(p.tw, "POSITION\tTIME\tTYPE\tACTOR\tROOM\tWHAT")
		p.header = true
	}
	_, err := fmt.Fprintf(p.tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time, e.Type, dash(e.Actor), dash(e.RoomID), dash(e.Summary))
	return err
}

// flush writes out what the table holds so far (tail --follow prints as
// records come).
func (p *printer) flush() error {
	if p.tw != nil {
		if err := p.tw.Flush(); err != nil {
			return err
		}
	}
	return p.w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
