package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"chronicle/api/apitest"
	"chronicle/raft"
)

// opCluster runs `chronicle cluster args...` in-process and returns what it
// printed.
func opCluster(t testing.TB, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := runCluster(context.Background(), args, &out)
	return out.String(), err
}

func opClusterOK(t testing.TB, args ...string) string {
	t.Helper()
	out, err := opCluster(t, args...)
	if err != nil {
		t.Fatalf("cluster %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func opStatus(t testing.TB, node string) *raft.Status {
	t.Helper()
	out := opClusterOK(t, "status", "--json", "--node", node, "--secret", apitest.Secret)
	var st raft.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	return &st
}

func TestClusterCommands(t *testing.T) {
	t.Setenv(secretEnv, "")
	c := apitest.StartCluster(t, 3)
	leader := c.Leader()
	follower := c.Followers()[0]

	// status, as a table, from a follower.
	out := opClusterOK(t, "status", "--node", follower.URL, "--secret", apitest.Secret)
	t.Logf("status:\n%s", out)
	for _, want := range []string{"node " + follower.ID + " (follower)", "leader: " + leader.ID + " at " + leader.URL,
		"term ", "commit index ", "applied index ", "log position ",
		"NODE", "ROLE", "RAFT ADDR", "URL", "SUFFRAGE", "LAST CONTACT"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	for _, s := range c.Nodes {
		role := "follower"
		if s == leader {
			role = "leader"
		}
		row := rowOf(out, s.ID)
		if row == nil || row[1] != role || row[2] != s.RaftAddr || row[3] != s.URL || row[4] != "voter" {
			t.Errorf("status row of %s: %q, want role %s, %s, %s, voter", s.ID, row, role, s.RaftAddr, s.URL)
		}
	}

	// status --json is the node's own JSON.
	st := opStatus(t, leader.URL)
	if st.NodeID != leader.ID || st.Role != "leader" || st.Leader.ID != leader.ID || len(st.Nodes) != 3 || st.Term == 0 || st.CommitIndex == 0 {
		t.Errorf("status --json: %+v", st)
	}

	// snapshot.
	out = opClusterOK(t, "snapshot", "--node", follower.URL, "--secret", apitest.Secret)
	if !strings.HasPrefix(out, "snapshot taken on "+follower.URL) {
		t.Errorf("snapshot said %q", out)
	}

	// transfer to a named node, asking a node that does not lead: the
	// request is passed to the leader.
	var target, via *apitest.Server
	for _, s := range c.Followers() {
		if target == nil {
			target = s
		} else {
			via = s
		}
	}
	out = opClusterOK(t, "transfer", target.ID, "--node", via.URL, "--secret", apitest.Secret)
	if !strings.Contains(out, "the leader is now "+target.ID) {
		t.Errorf("transfer said %q", out)
	}
	if l := c.WaitForLeader(10*time.Second, nil); l != target {
		t.Errorf("leader after transfer is %s, want %s", l.ID, target.ID)
	}
	// transfer to any other voter (flags after the positional arguments
	// and before them both parse).
	out = opClusterOK(t, "transfer", "--node", target.URL, "--secret", apitest.Secret)
	if !strings.Contains(out, "leadership transferred") {
		t.Errorf("transfer said %q", out)
	}
	if l := c.WaitForLeader(10*time.Second, target); l == target {
		t.Errorf("leadership did not move")
	}

	// Errors from the node are reported with their errcode.
	_, err := opCluster(t, "transfer", "nosuchnode", "--node", leader.URL, "--secret", apitest.Secret)
	if err == nil || !strings.Contains(err.Error(), "M_INVALID_PARAM") || !strings.Contains(err.Error(), "nosuchnode") {
		t.Errorf("transfer to an unknown node: %v", err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("transfer to an unknown node: %#v", err)
	}
	_, err = opCluster(t, "status", "--node", leader.URL, "--secret", "wrong")
	if err == nil || !strings.Contains(err.Error(), "HTTP 403 M_FORBIDDEN") {
		t.Errorf("status with a wrong secret: %v", err)
	}
	_, err = opCluster(t, "join", "--id", "n9", "--node", leader.URL, "--secret", apitest.Secret)
	if err == nil || !strings.Contains(err.Error(), "--raft-addr") {
		t.Errorf("join without --raft-addr: %v", err)
	}
	if _, err = opCluster(t, "frobnicate"); err == nil {
		t.Errorf("unknown subcommand accepted")
	}
	if _, err = opCluster(t, "status", "--node", "ftp://x", "--secret", "s"); err == nil || !strings.Contains(err.Error(), "not an http(s) URL") {
		t.Errorf("bad --node: %v", err)
	}
	if out, err := opCluster(t, "status", "-h"); err != nil || !strings.Contains(out, "usage: chronicle cluster status") {
		t.Errorf("status -h: %v %q", err, out)
	}

	// remove a follower, then, once it is wiped and started to join again,
	// add it back with join. The secret comes from --data this time.
	secretDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(secretDir, "cluster-secret"), []byte(apitest.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cur := c.Leader()
	var gone *apitest.Server
	for _, s := range c.Followers() {
		gone = s
	}
	out = opClusterOK(t, "remove", gone.ID, "--node", cur.URL, "--data", secretDir)
	if !strings.Contains(out, "node "+gone.ID+" removed") {
		t.Errorf("remove said %q", out)
	}
	if st := opStatus(t, cur.URL); len(st.Nodes) != 2 || rowOfStatus(st, gone.ID) != nil {
		t.Errorf("status after remove lists %+v", st.Nodes)
	}
	c.Wipe(gone)
	gone.Restart()
	t.Setenv(secretEnv, apitest.Secret) // and from the environment
	out = opClusterOK(t, "join", "--id", gone.ID, "--raft-addr", gone.RaftAddr, "--url", gone.URL, "--nonvoter", "--node", cur.URL)
	if !strings.Contains(out, "as a non-voter") {
		t.Errorf("join said %q", out)
	}
	c.WaitConverged(15 * time.Second)
	st = opStatus(t, cur.URL)
	if n := rowOfStatus(st, gone.ID); n == nil || n.Suffrage != "nonvoter" || n.URL != gone.URL || n.RaftAddr != gone.RaftAddr {
		t.Errorf("status after join: %+v", st.Nodes)
	}
	out = opClusterOK(t, "status", "--node", gone.URL)
	if row := rowOf(out, gone.ID); row == nil || row[1] != "follower" || row[4] != "nonvoter" {
		t.Errorf("the rejoined node's own status:\n%s", out)
	}
}

// rowOf returns the fields of the status table row for node id.
func rowOf(table, id string) []string {
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) >= 6 && f[0] == id {
			return f
		}
	}
	return nil
}

func rowOfStatus(st *raft.Status, id string) *raft.NodeStatus {
	for i := range st.Nodes {
		if st.Nodes[i].ID == id {
			return &st.Nodes[i]
		}
	}
	return nil
}

// TestCLIExitStatus runs the real main: a refused backup exits non-zero and
// says why on stderr.
func TestCLIExitStatus(t *testing.T) {
	if os.Getenv("CHRONICLE_TEST_MAIN") == "1" {
		var args []string
		if err := json.Unmarshal([]byte(os.Getenv("CHRONICLE_TEST_ARGS")), &args); err != nil {
			panic(err)
		}
		os.Args = append([]string{"chronicle"}, args...)
		main()
		os.Exit(0)
	}
	srv := apitest.Start(t, "")
	run := func(env []string, args ...string) (int, string) {
		a, _ := json.Marshal(args)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCLIExitStatus$")
		cmd.Env = append(os.Environ(), "CHRONICLE_TEST_MAIN=1", "CHRONICLE_TEST_ARGS="+string(a), secretEnv+"=")
		cmd.Env = append(cmd.Env, env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), stderr.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, stderr.String()
	}
	out := filepath.Join(t.TempDir(), "b")
	code, stderr := run(nil, "backup", "--node", srv.URL, "--out", out)
	if code == 0 || !strings.Contains(stderr, "no cluster secret") {
		t.Errorf("backup without a secret: exit %d, stderr %q", code, stderr)
	}
	code, stderr = run(nil, "backup", "--node", srv.URL, "--out", out, "--secret", "wrong")
	if code == 0 || !strings.Contains(stderr, "M_FORBIDDEN") {
		t.Errorf("backup with a wrong secret: exit %d, stderr %q", code, stderr)
	}
	code, stderr = run([]string{secretEnv + "=" + apitest.Secret}, "backup", "--node", srv.URL, "--out", out)
	if code != 0 {
		t.Errorf("backup with the secret: exit %d, stderr %q", code, stderr)
	}
	code, stderr = run(nil, "cluster", "status", "--node", srv.URL, "--secret", "wrong")
	if code == 0 || !strings.Contains(stderr, "chronicle: the node refused (HTTP 403 M_FORBIDDEN)") {
		t.Errorf("cluster status with a wrong secret: exit %d, stderr %q", code, stderr)
	}
}
