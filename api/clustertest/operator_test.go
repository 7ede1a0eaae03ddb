package clustertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"chronicle/api/apitest"
	"chronicle/raft"
)

// clusterView is GET /_chronicle/v1/cluster on s.
func clusterView(t *testing.T, s *apitest.Server) *raft.Status {
	t.Helper()
	status, _, body := httpDo(t, http.MethodGet, s.URL+"/_chronicle/v1/cluster", apitest.Secret, nil, 5*time.Second)
	if status != http.StatusOK {
		t.Fatalf("GET /cluster on %s: %d %s", s.ID, status, body)
	}
	var st raft.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("GET /cluster on %s: %v in %s", s.ID, err, body)
	}
	return &st
}

// checkViews returns "" when every node's view agrees with the harness
// (each node knows itself, one leader everyone names with its URL, the
// expected members with their addresses and suffrage), else what is off.
func checkViews(t *testing.T, c *apitest.Cluster, nodes []*apitest.Server, suffrage map[string]string) string {
	t.Helper()
	var problems []string
	leaders := map[string]bool{}
	var named []string
	for _, s := range nodes {
		v := clusterView(t, s)
		if v.NodeID != s.ID {
			problems = append(problems, fmt.Sprintf("%s calls itself %q", s.ID, v.NodeID))
		}
		switch v.Role {
		case "leader":
			leaders[s.ID] = true
		case "follower":
		default:
			problems = append(problems, fmt.Sprintf("%s role %q", s.ID, v.Role))
		}
		named = append(named, v.Leader.ID)
		if l := c.Node(v.Leader.ID); l == nil || v.Leader.URL != l.URL {
			problems = append(problems, fmt.Sprintf("%s names leader %q at %q", s.ID, v.Leader.ID, v.Leader.URL))
		}
		if len(v.Nodes) != len(suffrage) {
			problems = append(problems, fmt.Sprintf("%s lists %d nodes, want %d", s.ID, len(v.Nodes), len(suffrage)))
		}
		for _, n := range v.Nodes {
			want, ok := suffrage[n.ID]
			m := c.Node(n.ID)
			switch {
			case !ok || m == nil:
				problems = append(problems, fmt.Sprintf("%s lists unexpected node %s", s.ID, n.ID))
			case n.RaftAddr != m.RaftAddr || n.URL != m.URL || n.Suffrage != want:
				problems = append(problems, fmt.Sprintf("%s lists %s as %s/%s/%s, want %s/%s/%s", s.ID, n.ID, n.RaftAddr, n.URL, n.Suffrage, m.RaftAddr, m.URL, want))
			}
		}
	}
	if len(leaders) != 1 {
		problems = append(problems, fmt.Sprintf("%d nodes say they lead", len(leaders)))
	}
	for _, id := range named {
		if !leaders[id] {
			problems = append(problems, fmt.Sprintf("views name leaders %v, self-declared %v", named, leaders))
			break
		}
	}
	return strings.Join(problems, "; ")
}

func waitViews(t *testing.T, c *apitest.Cluster, nodes []*apitest.Server, suffrage map[string]string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		p := checkViews(t, c, nodes, suffrage)
		if p == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster views disagree after %s: %s", d, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOperatorEndpoints(t *testing.T) {
	c := apitest.StartCluster(t, 3)
	three := append([]*apitest.Server(nil), c.Nodes...)
	voters := map[string]string{"n1": "voter", "n2": "voter", "n3": "voter"}
	waitViews(t, c, three, voters, 10*time.Second)

	// Authentication.
	alice := register(t, c.Nodes[0].URL, "alice")
	for _, s := range three {
		status, _, body := httpDo(t, http.MethodGet, s.URL+"/_chronicle/v1/cluster", "", nil, 5*time.Second)
		if status != http.StatusUnauthorized || errcode(body) != "M_MISSING_TOKEN" {
			t.Errorf("%s: /cluster without a token: %d %s, want 401 M_MISSING_TOKEN", s.ID, status, body)
		}
		status, _, body = httpDo(t, http.MethodGet, s.URL+"/_chronicle/v1/cluster", alice.Token, nil, 5*time.Second)
		if status != http.StatusForbidden || errcode(body) != "M_FORBIDDEN" {
			t.Errorf("%s: /cluster with a user's token: %d %s, want 403 M_FORBIDDEN", s.ID, status, body)
		}
		status, _, body = httpDo(t, http.MethodPost, s.URL+"/_chronicle/v1/cluster/leadership", alice.Token, map[string]string{"id": "n1"}, 5*time.Second)
		if status != http.StatusForbidden || errcode(body) != "M_FORBIDDEN" {
			t.Errorf("%s: POST /cluster/leadership with a user's token: %d %s, want 403 M_FORBIDDEN", s.ID, status, body)
		}
	}

	// Leadership transfer, asked through a follower that is not the target.
	leader := c.Leader()
	followers := c.Followers()
	target, via := followers[0], followers[1]
	status, _, body := httpDo(t, http.MethodPost, via.URL+"/_chronicle/v1/cluster/leadership", apitest.Secret, map[string]string{"id": target.ID}, 15*time.Second)
	if status != http.StatusOK {
		t.Fatalf("transfer leadership %s -> %s via %s: %d %s", leader.ID, target.ID, via.ID, status, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !target.Node.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatalf("%s does not lead 10 s after the transfer (leader: %v)", target.ID, c.Leader())
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitViews(t, c, three, voters, 10*time.Second)
	t.Logf("leadership moved %s -> %s", leader.ID, target.ID)

	// A fourth node: first added and removed as a voter through the
	// harness, then wiped, restarted as a joining node and added through
	// the API as a non-voter.
	n4 := c.AddNode("n4")
	withN4 := map[string]string{"n1": "voter", "n2": "voter", "n3": "voter", "n4": "voter"}
	waitViews(t, c, three, withN4, 10*time.Second)
	status, _, body = httpDo(t, http.MethodDelete, c.Nodes[0].URL+"/_chronicle/v1/cluster/nodes/n4", apitest.Secret, nil, 15*time.Second)
	if status != http.StatusOK {
		t.Fatalf("DELETE /cluster/nodes/n4: %d %s", status, body)
	}
	waitViews(t, c, three, voters, 10*time.Second)
	c.Wipe(n4)
	n4.Restart()
	status, _, body = httpDo(t, http.MethodPost, c.Nodes[1].URL+"/_chronicle/v1/cluster/nodes", apitest.Secret,
		map[string]any{"id": "n4", "raft_addr": n4.RaftAddr, "url": n4.URL, "voter": false}, 15*time.Second)
	if status != http.StatusOK {
		t.Fatalf("POST /cluster/nodes (n4, non-voter): %d %s", status, body)
	}
	nonvoter := map[string]string{"n1": "voter", "n2": "voter", "n3": "voter", "n4": "nonvoter"}
	waitViews(t, c, three, nonvoter, 10*time.Second)
	st := assertSameState(t, 15*time.Second, c.Nodes...)
	t.Logf("non-voter n4 replicates: %s", st)
	// Adding it again is idempotent.
	status, _, body = httpDo(t, http.MethodPost, c.Nodes[2].URL+"/_chronicle/v1/cluster/nodes", apitest.Secret,
		map[string]any{"id": "n4", "raft_addr": n4.RaftAddr, "url": n4.URL, "voter": false}, 15*time.Second)
	if status != http.StatusOK {
		t.Errorf("repeated POST /cluster/nodes (n4, non-voter): %d %s", status, body)
	}
	status, _, body = httpDo(t, http.MethodDelete, target.URL+"/_chronicle/v1/cluster/nodes/n4", apitest.Secret, nil, 15*time.Second)
	if status != http.StatusOK {
		t.Fatalf("DELETE /cluster/nodes/n4 (non-voter): %d %s", status, body)
	}
	waitViews(t, c, three, voters, 10*time.Second)
	n4.Stop()

	// Health, readiness, metrics.
	for _, s := range three {
		if status, _, body := httpDo(t, http.MethodGet, s.URL+"/_chronicle/v1/health", "", nil, 5*time.Second); status != http.StatusOK {
			t.Errorf("%s /health: %d %s", s.ID, status, body)
		}
		if status, _, body := httpDo(t, http.MethodGet, s.URL+"/_chronicle/v1/ready", "", nil, 5*time.Second); status != http.StatusOK {
			t.Errorf("%s /ready: %d %s", s.ID, status, body)
		}
		status, _, body := httpDo(t, http.MethodGet, s.URL+"/metrics", "", nil, 5*time.Second)
		if status != http.StatusOK {
			t.Errorf("%s /metrics: %d", s.ID, status)
			continue
		}
		for _, name := range []string{
			"chronicle_raft_leader", "chronicle_raft_term", "chronicle_raft_commit_index", "chronicle_raft_applied_index",
			"chronicle_raft_apply_seconds", "chronicle_forwarded_writes_total", "chronicle_http_request_seconds",
			"chronicle_sync_waiters", "chronicle_log_head",
		} {
			if !hasMetric(string(body), name) {
				t.Errorf("%s /metrics lacks %s", s.ID, name)
			}
		}
	}
}

// hasMetric reports whether a Prometheus text exposition has a sample of
// name (a histogram's samples are name_bucket/_sum/_count).
func hasMetric(exposition, name string) bool {
	for _, line := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, name); ok && rest != "" &&
			(rest[0] == ' ' || rest[0] == '{' || strings.HasPrefix(rest, "_bucket") || strings.HasPrefix(rest, "_sum") || strings.HasPrefix(rest, "_count")) {
			return true
		}
	}
	return false
}
