// Package loadgen is the Client-Server API load generator behind bench/load
// and bench/cluster: a minimal Matrix client, latency statistics and the
// benchmark scenarios. It only speaks standard /_matrix/client/v3 endpoints
// with the standard library, so the numbers are comparable across
// homeservers.
package loadgen

import (
	"fmt"
	"net/http"
	"strings"
)

// Config is every scenario tunable. Bench/load echoes it into its JSON, so
// the tags are part of that file's format.
type Config struct {
	// Bases are the homeserver URLs: one for a single server, several for
	// the nodes of one cluster. Users are pinned to them round-robin.
	Bases        []string `json:"-"`
	Users        int      `json:"users"`
	Sends        int      `json:"sends"`
	Levels       []int    `json:"levels"`
	Rooms        int      `json:"rooms"`
	MsgsPerRoom  int      `json:"msgs_per_room"`
	Pages        int      `json:"pages"`
	SyncIters    int      `json:"sync_iters"`
	InitialSyncs int      `json:"initial_syncs"`
	SetupWorkers int      `json:"setup_workers"`
	// Timed, when set, is called as each send level's timed window opens
	// (begin true) and closes, so a caller can meter what the window cost
	// (bench/cluster reads the servers' CPU time).
	Timed func(begin bool) `json:"-"`
}

// SplitBases parses a comma-separated list of base URLs, dropping empty
// entries and trailing slashes.
func SplitBases(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimRight(strings.TrimSpace(b), "/"); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// Bench carries state shared between scenarios.
type Bench struct {
	cfg  Config
	hc   *http.Client
	pool []*Client // registered users reusable as senders; pool[i] uses base(i)
}

// New returns a Bench; cfg.Bases must not be empty.
func New(cfg Config, hc *http.Client) (*Bench, error) {
	if len(cfg.Bases) == 0 {
		return nil, fmt.Errorf("loadgen: no base URL")
	}
	return &Bench{cfg: cfg, hc: hc}, nil
}

// base returns the node the i-th user is pinned to.
func (b *Bench) base(i int) string { return b.cfg.Bases[i%len(b.cfg.Bases)] }

// MultiNode reports whether users are spread over several nodes.
func (b *Bench) MultiNode() bool { return len(b.cfg.Bases) > 1 }
