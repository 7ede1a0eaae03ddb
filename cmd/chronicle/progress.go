package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress shows how far a long operation (verify, rebuild, export) got:
// on a terminal a bar redrawn in place with the rate and the time left,
// elsewhere (a log file, CI, a pipe) a plain line every few seconds. It
// writes to stderr, so stdout stays the command's answer.
type progress struct {
	mu         sync.Mutex
	w          io.Writer
	mode       string // "bar", "lines" or "off"
	label      string
	phase      string
	phaseStart time.Time
	lastDraw   time.Time
	drawn      bool
	now        func() time.Time
}

// isTerminal reports whether f is a terminal (a character device): no
// dependency on x/term for one bit of information.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// newProgress picks the form: mode "auto" draws a bar when stderr is a
// terminal and lines otherwise.
func newProgress(w io.Writer, mode, label string) (*progress, error) {
	switch mode {
	case "", "auto":
		mode = "lines"
		if f, ok := w.(*os.File); ok && isTerminal(f) {
			mode = "bar"
		}
	case "bar", "lines", "off":
	default:
		return nil, fmt.Errorf("--progress must be auto, bar, lines or off, not %q", mode)
	}
	return &progress{w: w, mode: mode, label: label, now: time.Now}, nil
}

// update is an audit.Progress.
func (p *progress) update(phase string, done, total uint64) {
	if p == nil || p.mode == "off" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if phase != p.phase {
		if p.mode == "bar" && p.drawn {
			fmt.Fprintln(p.w) // keep the finished phase's last bar
		}
		p.phase, p.phaseStart, p.lastDraw, p.drawn = phase, now, time.Time{}, false
	}
	finished := total > 0 && done >= total
	if p.mode == "lines" {
		// A line every few seconds, and the last one only when earlier
		// ones were printed: a short phase prints nothing.
		if finished && p.lastDraw.IsZero() {
			return
		}
		if !finished && (now.Sub(p.phaseStart) < 2*time.Second || now.Sub(p.lastDraw) < 2*time.Second) {
			return
		}
	} else if !finished && now.Sub(p.lastDraw) < 100*time.Millisecond {
		return
	}
	p.lastDraw = now
	elapsed := now.Sub(p.phaseStart)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	eta := ""
	if total > done && rate > 0 {
		eta = "ETA " + roundDuration(time.Duration(float64(total-done)/rate*float64(time.Second)))
	} else if finished {
		eta = "in " + roundDuration(elapsed)
	}
	switch p.mode {
	case "bar":
		const width = 30
		bar := strings.Repeat(" ", width)
		pct := ""
		if total > 0 {
			n := int(float64(width) * float64(min(done, total)) / float64(total))
			bar = strings.Repeat("=", n) + strings.Repeat(" ", width-n)
			if n < width && n > 0 {
				bar = bar[:n-1] + ">" + bar[n:]
			}
			pct = fmt.Sprintf("%3d%% ", done*100/total)
		}
		fmt.Fprintf(p.w, "\r%s %-7s [%s] %s%s  %s/s  %s\x1b[K", p.label, phase, bar, pct, count(done, total), humanRate(rate), eta)
		p.drawn = true
	case "lines":
		pct := ""
		if total > 0 {
			pct = fmt.Sprintf(" (%d%%)", done*100/total)
		}
		fmt.Fprintf(p.w, "%s %s: %s %s%s, %s %s/s, %s\n", p.label, phase, count(done, total), unit(phase), pct, humanRate(rate), unit(phase), eta)
	}
}

// finish ends the bar's line.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == "bar" && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
	p.phase = ""
}

// unit names what a phase counts.
func unit(phase string) string {
	if phase == "compare" {
		return "projections"
	}
	return "records"
}

func count(done, total uint64) string {
	if total == 0 {
		return fmt.Sprint(done)
	}
	return fmt.Sprintf("%d/%d", done, total)
}

func humanRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e4:
		return fmt.Sprintf("%.0fk", r/1e3)
	default:
		return fmt.Sprintf("%.0f", r)
	}
}

func roundDuration(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}
