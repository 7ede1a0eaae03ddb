package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The pieces every bench command shares: where results go, which
// scenarios run, recording failures, the server's versions and the final
// report.

// ResultsPath is out, or bench/results/<name>-<unix time>.json.
func ResultsPath(out, name string) string {
	if out != "" {
		return out
	}
	return filepath.Join("bench", "results", fmt.Sprintf("%s-%d.json", name, time.Now().Unix()))
}

// CheckOnly exits (status 2) if -only names a scenario not in known.
func CheckOnly(only string, known []string) {
	for _, s := range strings.Split(only, ",") {
		if s != "" && !slices.Contains(known, s) {
			fmt.Fprintf(os.Stderr, "unknown scenario %q in -only\n", s)
			os.Exit(2)
		}
	}
}

// Wants reports whether -only selects a scenario (an empty -only selects
// all).
func Wants(only, name string) bool {
	return only == "" || slices.Contains(strings.Split(only, ","), name)
}

// Failures records failed scenarios by name; a failure is also printed,
// and the remaining scenarios still run.
type Failures map[string]string

// Fail records and prints one failure.
func (f Failures) Fail(name string, err error) {
	f[name] = err.Error()
	fmt.Fprintf(os.Stderr, "%s: FAILED: %v\n", name, err)
}

// ServerVersions asks base for /versions, which also proves a homeserver
// is listening there.
func ServerVersions(ctx context.Context, base string, hc *http.Client) ([]string, error) {
	var versions struct {
		Versions []string `json:"versions"`
	}
	if _, err := NewClient(base, hc).Do(ctx, "GET", "/_matrix/client/versions", nil, &versions); err != nil {
		return nil, fmt.Errorf("is a homeserver listening on %s? %w", base, err)
	}
	return versions.Versions, nil
}

// Report prints the table, writes res as JSON to out, and exits non-zero
// when anything failed.
func Report(stdout io.Writer, table [][]string, res any, out string, failed bool) {
	PrintTable(stdout, table)
	if err := WriteJSON(out, res); err != nil {
		fmt.Fprintln(os.Stderr, "writing results:", err)
		os.Exit(1)
	}
	fmt.Fprintln(stdout, "\nresults written to", out)
	if failed {
		os.Exit(1)
	}
}

// Run is what every bench command's results begin with: when it started,
// how long it took, with which Go, the 429 retries that shaped its numbers
// and the scenarios that failed. Commands embed it in their Results.
type Run struct {
	StartedAt  time.Time `json:"started_at"`
	DurationS  float64   `json:"duration_s"`
	GoVersion  string    `json:"go_version"`
	Retries429 int64     `json:"retries_429"`
	Errors     Failures  `json:"errors,omitempty"`
}

// StartRun starts a run now.
func StartRun() Run {
	return Run{StartedAt: time.Now(), GoVersion: runtime.Version(), Errors: Failures{}}
}

// Finish records the run's end: its duration, the 429 retries, and an
// interruption if ctx was cancelled.
func (r *Run) Finish(ctx context.Context) {
	if ctx.Err() != nil {
		r.Errors["interrupted"] = ctx.Err().Error()
	}
	r.Retries429 = Retries429()
	r.DurationS = time.Since(r.StartedAt).Seconds()
}
