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
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/cockroachdb/pebble/v2"

	"chronicle/projections/audit"
)

const atUsage = `chronicle at POSITION|TIME room ROOM_ID state|members|timeline [--limit N] [--replay]
chronicle at POSITION|TIME user USER_ID rooms|devices|keys|profile
  (--data DIR | --node URL) [--json]

Answers as the server would have answered at that moment: POSITION is a
log position (or a sync token s<POSITION>), TIME an RFC 3339 time (the
last record written at or before it). Rooms and profiles are read from
their history; devices and keys by replaying the log up to the position.`

func atCmd(args []string) error { return runAt(context.Background(), args, os.Stdout, os.Stderr) }

func runAt(ctx context.Context, args []string, out, errw io.Writer) error {
	fs := newFlagSet("at", atUsage, errw)
	var a auditFlags
	a.register(fs)
	limit := fs.Int("limit", 10, "timeline: how many events up to the position")
	replay := fs.Bool("replay", false, "room questions: replay the log into a scratch store instead of reading the state history (a cross-check)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) != 4 || (pos[1] != "room" && pos[1] != "user") {
		fs.Usage()
		return errors.New("at: want POSITION|TIME room ROOM_ID QUESTION, or POSITION|TIME user USER_ID QUESTION")
	}
	spec, kind, id, what := pos[0], pos[1], pos[2], pos[3]
	if _, _, err := audit.ParseSpec(spec); err != nil {
		return fmt.Errorf("at: %w", err)
	}
	questions := audit.RoomQuestions
	if kind == "user" {
		questions = audit.UserQuestions
	}
	if !slices.Contains(questions, what) {
		return fmt.Errorf("at: a %s can be asked %s, not %q", kind, strings.Join(questions, ", "), what)
	}
	if err := a.check("at"); err != nil {
		return err
	}
	prog, err := newProgress(errw, a.progress, "at")
	if err != nil {
		return err
	}
	var ans *audit.Answer
	if a.online() {
		c, err := a.client()
		if err != nil {
			return err
		}
		q := url.Values{}
		if kind == "room" {
			q.Set("limit", strconv.Itoa(*limit))
			if *replay {
				q.Set("replay", "true")
			}
		}
		ans = &audit.Answer{}
		err = auditGet(ctx, c, "/audit/at/"+pathEscape(spec)+"/"+kind+"/"+pathEscape(id)+"/"+what, q, ans)
		if err != nil {
			return fmt.Errorf("at: %w", err)
		}
	} else {
		err = a.withOffline(func(db *pebble.DB) error {
			seq, err := audit.Resolve(db, spec, false)
			if err != nil {
				return err
			}
			env := a.env(prog)
			if kind == "room" {
				ans, err = env.RoomAt(db, seq, id, what, audit.AtOptions{Limit: *limit, Replay: *replay})
			} else {
				ans, err = env.UserAt(db, seq, id, what)
			}
			return err
		})
		prog.finish()
		if err != nil {
			return fmt.Errorf("at: %w", err)
		}
	}
	if a.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(ans)
	}
	return printAnswer(out, ans)
}

func printAnswer(w io.Writer, ans *audit.Answer) error {
	subject := ans.RoomID + ans.UserID
	fmt.Fprintf(w, "%s of %s at position %d (%s), from the %s\n", ans.What, subject, ans.Position, ans.Time, map[string]string{"history": "state history", "replay": "log replayed to that position"}[ans.Method])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	switch {
	case ans.Rooms != nil:
		fmt.Fprintln(tw, "ROOM\tMEMBERSHIP")
		for _, r := range ans.Rooms {
			fmt.Fprintf(tw, "%s\t%s\n", r.RoomID, r.Membership)
		}
	case ans.Devices != nil:
		fmt.Fprintln(tw, "DEVICE\tDISPLAY NAME\tLAST SEEN")
		for _, d := range ans.Devices {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", d.DeviceID, dash(d.DisplayName), audit.FormatTime(d.LastSeenTS))
		}
	case ans.Keys != nil:
		printKeys(tw, ans)
	case ans.What == "profile":
		printProfile(tw, ans) // at_profile.go
	case ans.What == "members":
		fmt.Fprintln(tw, "USER\tMEMBERSHIP\tPOSITION\tEVENT")
		for _, ev := range ans.Events {
			var c struct {
				Membership string `json:"membership"`
			}
			_ = json.Unmarshal(ev.Content, &c)
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", deref(ev.StateKey), c.Membership, ev.Position, ev.EventID)
		}
	default:
		fmt.Fprintln(tw, "POSITION\tTYPE\tSTATE KEY\tSENDER\tCONTENT")
		for _, ev := range ans.Events {
			sk := "-"
			if ev.StateKey != nil {
				sk = strconv.Quote(*ev.StateKey)
			}
			content := string(ev.Content)
			if len(content) > 80 {
				content = content[:77] + "..."
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", ev.Position, ev.Type, sk, ev.Sender, content)
		}
	}
	return tw.Flush()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ---- trail ----

const trailUsage = `chronicle trail user USER_ID | room ROOM_ID (--data DIR | --node URL) [--from P|T] [--to P|T] [--type T] [--json]

user: every record with the user as actor (and those the server wrote
about their account with no actor: registration, typing expiry).
room: every record that touched the room: its events, receipts, typing,
account data for it, aliases, directory visibility, reports, forgets.`

func trailCmd(args []string) error { return runTrail(context.Background(), args, os.Stdout, os.Stderr) }

func runTrail(ctx context.Context, args []string, out, errw io.Writer) error {
	fs := newFlagSet("trail", trailUsage, errw)
	var a auditFlags
	a.register(fs)
	var rf recordFlags
	fs.StringVar(&rf.from, "from", "", "first position or time")
	fs.StringVar(&rf.to, "to", "", "last position or time")
	fs.StringVar(&rf.types, "type", "", "record types, comma-separated (prefix with a trailing *)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) != 2 || (pos[0] != "user" && pos[0] != "room") {
		fs.Usage()
		return errors.New("trail: want user USER_ID or room ROOM_ID")
	}
	kind, id := pos[0], pos[1]
	if err := a.check("trail"); err != nil {
		return err
	}
	if err := rf.check(); err != nil {
		return fmt.Errorf("trail: %w", err)
	}
	prog, err := newProgress(errw, a.progress, "trail")
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(out, 1<<16)
	defer bw.Flush()
	p := newPrinter(bw, a.json)
	if a.online() {
		c, err := a.client()
		if err != nil {
			return err
		}
		_, err = auditStream(ctx, c, "/audit/trail/"+kind+"/"+pathEscape(id), rf.query(), func(line json.RawMessage) error {
			var e audit.Entry
			if err := json.Unmarshal(line, &e); err != nil {
				return err
			}
			return p.print(&e)
		})
		if err != nil {
			return fmt.Errorf("trail: %w", err)
		}
		return p.flush()
	}
	err = a.withOffline(func(db *pebble.DB) error {
		f, err := rf.filter(db)
		if err != nil {
			return err
		}
		if kind == "user" {
			f.User = id
		} else {
			f.Room = id
		}
		return a.env(prog).Records(db, f, p.print)
	})
	prog.finish()
	if err != nil {
		return fmt.Errorf("trail: %w", err)
	}
	return p.flush()
}
