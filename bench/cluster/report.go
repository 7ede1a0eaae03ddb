package main

import (
	"fmt"
	"sort"
	"strings"

	"chronicle/bench/internal/loadgen"
)

var header = []string{"SCENARIO", "N", "P50 ms", "P99 ms", "RESULT", "TARGET", "NOTES"}

const dash = "-"

var f2 = loadgen.F2

// verdict formats a target check for the TARGET column.
func verdict(want string, pass bool) string {
	if pass {
		return want + " ok"
	}
	return want + " MISS"
}

func sendRow(name string, l *loadgen.SendLevel, target string, notes []string) []string {
	if l.Nodes > 1 {
		notes = append([]string{fmt.Sprintf("via %d nodes", l.Nodes)}, notes...)
	}
	if l.Errors > 0 {
		notes = append(notes, fmt.Sprintf("%d errors: %s", l.Errors, l.FirstError))
	}
	return []string{name, fmt.Sprint(l.Latency.N), f2(l.Latency.P50Ms), f2(l.Latency.P99Ms),
		fmt.Sprintf("%.1f/s", l.PerSec), target, strings.Join(notes, "; ")}
}

// cpuNotes describes a send window's CPU cost (none when unmeasured).
func cpuNotes(c *CPUCost) []string {
	if c == nil {
		return nil
	}
	return []string{fmt.Sprintf("CPU per send: servers %.0f us, load generator %.0f us (all cores busy at %.0f/s)",
		c.ServerUsPerSend, c.LoadgenUsPerSend, c.BoundPerSec)}
}

func buildTable(r *Results) [][]string {
	rows := [][]string{header}
	id := func(url string) string {
		if n, ok := r.NodeIDs[url]; ok {
			return n
		}
		return url
	}
	if l := r.SingleSend; l != nil {
		rows = append(rows, sendRow(fmt.Sprintf("send c=%d single node", l.Concurrency), l, dash, cpuNotes(r.SingleCPU)))
	}
	if l := r.ClusterSend; l != nil {
		target := dash
		var notes []string
		if r.SendRatio > 0 {
			target = verdict(fmt.Sprintf(">= %.0f%% of single", targetThroughputRatio*100), r.SendRatio >= targetThroughputRatio)
			notes = append(notes, fmt.Sprintf("%.0f%% of single node", r.SendRatio*100))
		}
		notes = append(notes, cpuNotes(r.ClusterCPU)...)
		rows = append(rows, sendRow(fmt.Sprintf("send c=%d %d-node cluster", l.Concurrency, r.Config.Nodes), l, target, notes))
	}
	if s := r.SyncWake; s != nil {
		notes := fmt.Sprintf("send via %s (leader), sync via %s; from send start p50 %s p99 %s; repolls %d; early %d",
			id(s.SenderBase), id(s.ReceiverBase), f2(s.FromSendStart.P50Ms), f2(s.FromSendStart.P99Ms), s.Repolls, s.EarlyWakes)
		rows = append(rows, []string{"sync wake-up (cross-node)", fmt.Sprint(s.Latency.N), f2(s.Latency.P50Ms), f2(s.Latency.P99Ms),
			dash, verdict(fmt.Sprintf("p99 < %d ms", targetWakeP99Ms), s.Latency.P99Ms < targetWakeP99Ms), notes})
	}
	if f := r.Failover; f != nil && f.UnavailableMs > 0 {
		notes := []string{
			fmt.Sprintf("killed %s (term %d)", f.Killed, f.OldTerm),
			fmt.Sprintf("gap began %+.0f ms from the kill", f.GapStartMs),
			fmt.Sprintf("%d/%d acks before/after", f.AcksBefore, f.AcksAfter),
			fmt.Sprintf("%d failed attempts retried", f.Errors),
		}
		if f.NewLeader != "" {
			notes = append(notes, fmt.Sprintf("new leader %s (term %d)", f.NewLeader, f.NewTerm))
		}
		if f.RejoinMs > 0 {
			notes = append(notes, fmt.Sprintf("%s ready %.1f s after restart, rejoined %.1f s", f.Killed, f.RestartReadyMs/1000, f.RejoinMs/1000))
		}
		// The latency columns are per acknowledged send, retries included.
		rows = append(rows, []string{fmt.Sprintf("failover (%d clients)", f.Clients), fmt.Sprint(f.SendLatency.N),
			f2(f.SendLatency.P50Ms), f2(f.SendLatency.P99Ms), fmt.Sprintf("%.2f s", f.UnavailableMs/1000),
			verdict(fmt.Sprintf("< %d s", targetFailoverMs/1000), f.UnavailableMs < targetFailoverMs), strings.Join(notes, "; ")})
	}
	if s := r.Snapshot; s != nil && s.SnapshotDir != "" {
		notes := fmt.Sprintf("on %s: snapshot %s (%d B) in %d files; data dir %s; request %s ms; fill %.1f s at %.0f/s into %d rooms",
			s.Node, loadgen.MiB(s.SnapshotBytes), s.SnapshotBytes, s.SnapshotFiles, loadgen.MiB(s.DataBytes),
			f2(s.RequestMs), s.FillMs/1000, s.FillPerSec, s.Rooms)
		if s.FillErrors > 0 {
			notes += fmt.Sprintf("; %d fill errors retried", s.FillErrors)
		}
		rows = append(rows, []string{fmt.Sprintf("snapshot %d events", s.Events), fmt.Sprint(s.Events), dash, dash,
			fmt.Sprintf("took %.0f ms", s.TookMs), dash, notes})
	}
	if r.Retries429 > 0 {
		rows = append(rows, []string{"429 retries", fmt.Sprint(r.Retries429), dash, dash, dash, dash,
			"rate limiting inflated latencies"})
	}
	names := make([]string, 0, len(r.Errors))
	for n := range r.Errors {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		msg := strings.NewReplacer("\t", " ", "\n", " | ").Replace(r.Errors[n])
		if len(msg) > 400 {
			msg = msg[:400] + "..."
		}
		rows = append(rows, []string{"FAILED " + n, dash, dash, dash, dash, dash, msg})
	}
	return rows
}
