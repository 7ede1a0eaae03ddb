package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"chronicle/raft"
)

const clusterUsage = `chronicle cluster <subcommand> [flags] [args]

subcommands:
  status                        the cluster as the node sees it: members, roles, indexes
                                (--json prints the node's raw JSON)
  join --id ID --raft-addr HOST:PORT [--url URL] [--nonvoter]
                                add a node (it must be running, started with --join)
  remove ID                     take a node out of the cluster
  transfer [ID]                 hand leadership to ID, or to any up-to-date voter
  snapshot                      take a Raft snapshot on the node now

every subcommand takes:
  --node URL      the node's client API base URL (default ` + defaultNode + `)
  --secret S      the cluster secret (or a server admin's access token)
  --data DIR      read the secret from DIR/cluster-secret instead
                  (without either: $` + secretEnv + `)
  --timeout D     how long to wait for the node (default 30s)`

// clusterCmd is `chronicle cluster`.
func clusterCmd(args []string) error {
	return runCluster(context.Background(), args, os.Stdout)
}

// runCluster runs a cluster subcommand, writing what it reports to out.
func runCluster(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(out, "usage: "+clusterUsage)
		if len(args) == 0 {
			return fmt.Errorf("cluster: a subcommand is required")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "status":
		return clusterStatusCmd(ctx, args, out)
	case "join":
		return clusterJoinCmd(ctx, args, out)
	case "remove":
		return clusterRemoveCmd(ctx, args, out)
	case "transfer":
		return clusterTransferCmd(ctx, args, out)
	case "snapshot":
		return clusterSnapshotCmd(ctx, args, out)
	}
	fmt.Fprintln(out, "usage: "+clusterUsage)
	return fmt.Errorf("cluster: unknown subcommand %q", sub)
}

// clusterFlags parses an operator subcommand's flags, checks the number of
// positional arguments (at most maxPos) and builds the client.
func clusterFlags(fs *flag.FlagSet, args []string, maxPos int) (*opClient, []string, error) {
	var o operatorFlags
	o.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if len(pos) > maxPos {
		fs.Usage()
		return nil, nil, fmt.Errorf("%s: unexpected argument %q", fs.Name(), pos[maxPos])
	}
	c, err := o.client()
	if err != nil {
		return nil, nil, err
	}
	return c, pos, nil
}

func clusterStatusCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("cluster status", "chronicle cluster status [--json] [--node URL] [--secret S]", out)
	asJSON := fs.Bool("json", false, "print the node's raw JSON status")
	c, _, err := clusterFlags(fs, args, 0)
	if err != nil {
		return helpOK(err)
	}
	var st raft.Status
	raw, err := c.call(ctx, http.MethodGet, "/cluster", nil, &st)
	if err != nil {
		return err
	}
	if *asJSON {
		var buf bytes.Buffer
		if json.Indent(&buf, raw, "", "  ") != nil {
			buf.Reset()
			buf.Write(raw)
		}
		buf.WriteByte('\n')
		_, err := out.Write(buf.Bytes())
		return err
	}
	return printStatus(out, c.base, &st)
}

// printStatus renders a status as a summary and a member table.
func printStatus(out io.Writer, via string, st *raft.Status) error {
	leader := "none known"
	if st.Leader.ID != "" {
		leader = st.Leader.ID
		if st.Leader.URL != "" {
			leader += " at " + st.Leader.URL
		}
	}
	fmt.Fprintf(out, "node %s (%s) via %s; leader: %s\n", st.NodeID, st.Role, via, leader)
	fmt.Fprintf(out, "term %d, commit index %d, applied index %d, log position %d\n\n",
		st.Term, st.CommitIndex, st.AppliedIndex, st.LogPosition)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tRAFT ADDR\tURL\tSUFFRAGE\tLAST CONTACT")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, memberRole(st, n), orDash(n.RaftAddr), orDash(n.URL),
			n.Suffrage, lastContact(n.LastContactMs))
	}
	return tw.Flush()
}

// memberRole is a member's role as far as the answering node knows it: its
// own exactly, the leader's, and the others follow a known leader.
func memberRole(st *raft.Status, n raft.NodeStatus) string {
	switch {
	case n.ID == st.NodeID:
		return st.Role
	case n.ID == st.Leader.ID:
		return "leader"
	case st.Leader.ID != "":
		return "follower"
	}
	return "unknown"
}

func lastContact(ms *int64) string {
	if ms == nil {
		return "-"
	}
	if *ms == 0 {
		return "now"
	}
	return (time.Duration(*ms) * time.Millisecond).String() + " ago"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clusterJoinCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("cluster join", "chronicle cluster join --id ID --raft-addr HOST:PORT [--url URL] [--nonvoter] [--node URL] [--secret S]", out)
	id := fs.String("id", "", "the new node's ID (its --node-id)")
	raftAddr := fs.String("raft-addr", "", "the Raft address the other nodes dial to reach it")
	nodeURL := fs.String("url", "", "its client API base URL (recorded in the registry)")
	nonvoter := fs.Bool("nonvoter", false, "add it as a non-voting member (a read replica)")
	c, _, err := clusterFlags(fs, args, 0)
	if err != nil {
		return helpOK(err)
	}
	if *id == "" || *raftAddr == "" {
		fs.Usage()
		return fmt.Errorf("cluster join: --id and --raft-addr are required")
	}
	req := raft.JoinRequest{NodeID: *id, RaftAddr: *raftAddr, URL: *nodeURL, Voter: !*nonvoter}
	if _, err := c.call(ctx, http.MethodPost, "/cluster/nodes", &req, nil); err != nil {
		return err
	}
	kind := "voter"
	if *nonvoter {
		kind = "non-voter"
	}
	fmt.Fprintf(out, "node %s (raft %s) is a member, as a %s\n", *id, *raftAddr, kind)
	return nil
}

func clusterRemoveCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("cluster remove", "chronicle cluster remove ID [--node URL] [--secret S]", out)
	c, pos, err := clusterFlags(fs, args, 1)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) == 0 || pos[0] == "" {
		fs.Usage()
		return fmt.Errorf("cluster remove: the node ID is required")
	}
	if _, err := c.call(ctx, http.MethodDelete, "/cluster/nodes/"+url.PathEscape(pos[0]), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(out, "node %s removed from the cluster\n", pos[0])
	return nil
}

func clusterTransferCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("cluster transfer", "chronicle cluster transfer [ID] [--node URL] [--secret S]", out)
	c, pos, err := clusterFlags(fs, args, 1)
	if err != nil {
		return helpOK(err)
	}
	var target string
	if len(pos) > 0 {
		target = pos[0]
	}
	// Who leads before, to recognise the successor after.
	var before raft.Status
	if _, err := c.call(ctx, http.MethodGet, "/cluster", nil, &before); err != nil {
		return err
	}
	body := map[string]string{}
	if target != "" {
		body["id"] = target
	}
	if _, err := c.call(ctx, http.MethodPost, "/cluster/leadership", body, nil); err != nil {
		return err
	}
	// The old leader learns its successor from the first heartbeat: wait a
	// moment for it, to say who leads now.
	leader := ""
	deadline := time.Now().Add(3 * time.Second)
	for leader == "" && time.Now().Before(deadline) {
		var st raft.Status
		if _, err := c.call(ctx, http.MethodGet, "/cluster", nil, &st); err == nil && st.Leader.ID != "" {
			if st.Leader.ID == target || (target == "" && st.Leader.ID != before.Leader.ID) {
				leader = st.Leader.ID
				if st.Leader.URL != "" {
					leader += " (" + st.Leader.URL + ")"
				}
				break
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if leader == "" {
		fmt.Fprintln(out, "leadership transferred; the new leader is not known yet (see `chronicle cluster status`)")
		return nil
	}
	fmt.Fprintf(out, "leadership transferred: the leader is now %s\n", leader)
	return nil
}

func clusterSnapshotCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlagSet("cluster snapshot", "chronicle cluster snapshot [--node URL] [--secret S]", out)
	c, _, err := clusterFlags(fs, args, 0)
	if err != nil {
		return helpOK(err)
	}
	var res struct {
		TookMs int64 `json:"took_ms"`
	}
	if _, err := c.call(ctx, http.MethodPost, "/cluster/snapshot", nil, &res); err != nil {
		return err
	}
	fmt.Fprintf(out, "snapshot taken on %s in %s\n", c.base, time.Duration(res.TookMs)*time.Millisecond)
	return nil
}
