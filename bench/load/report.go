package main

// Turns Results into the printed table. One fixed set of columns for every
// scenario keeps runs against different servers easy to diff side by side.

import (
	"fmt"
	"sort"
	"strings"

	"chronicle/bench/internal/loadgen"
)

var header = []string{"SCENARIO", "N", "MIN ms", "P50 ms", "P99 ms", "MEAN ms", "TOTAL ms", "RATE", "NOTES"}

const dash = "-"

var (
	f2  = loadgen.F2
	mib = loadgen.MiB
)

// viaNodes is the NOTES entry for sends spread over n nodes.
func viaNodes(n int) string {
	if n == 1 {
		return "via 1 node"
	}
	return fmt.Sprintf("via %d nodes", n)
}

// latRow fills the N/MIN/P50/P99/MEAN columns from a Summary.
func latRow(name string, s loadgen.Summary, total, rate, notes string) []string {
	return []string{name, fmt.Sprint(s.N), f2(s.MinMs), f2(s.P50Ms), f2(s.P99Ms), f2(s.MeanMs), total, rate, notes}
}

func buildTable(r *Results) [][]string {
	rows := [][]string{header}
	if g := r.Register; g != nil {
		rate := fmt.Sprintf("%.1f/s", float64(g.Latency.N)/(g.TotalMs/1000))
		rows = append(rows, latRow("register", g.Latency, f2(g.TotalMs), rate, "sequential, m.login.dummy"))
	}
	for _, l := range r.Send {
		var notes []string
		if l.Nodes > 0 { // only set with several bases
			notes = append(notes, viaNodes(l.Nodes))
		}
		if l.Errors > 0 {
			notes = append(notes, fmt.Sprintf("%d errors: %s", l.Errors, l.FirstError))
		}
		rows = append(rows, latRow(fmt.Sprintf("send c=%d", l.Concurrency), l.Latency,
			f2(l.ElapsedMs), fmt.Sprintf("%.1f/s", l.PerSec), strings.Join(notes, "; ")))
	}
	if s := r.SyncWake; s != nil {
		notes := fmt.Sprintf("from send start p50 %s p99 %s; repolls %d; early %d",
			f2(s.FromSendStart.P50Ms), f2(s.FromSendStart.P99Ms), s.Repolls, s.EarlyWakes)
		name := "sync wake-up"
		if s.CrossNode {
			name = "sync wake-up (cross-node)"
			notes = fmt.Sprintf("send via %s, sync via %s; %s", s.SenderBase, s.ReceiverBase, notes)
		}
		rows = append(rows, latRow(name, s.Latency, dash, dash, notes))
	}
	if s := r.InitialSync; s != nil {
		name := fmt.Sprintf("initial sync %dx%d", s.Rooms, s.MsgsPerRoom)
		notes := fmt.Sprintf("body %s (%d B), %d rooms; setup %s ms",
			mib(int64(s.Bytes)), s.Bytes, s.JoinedRooms, f2(s.SetupMs))
		// P50 column carries the median; P99/MEAN are meaningless for 5 runs.
		rows = append(rows, []string{name, fmt.Sprint(len(s.RunsMs)), f2(s.MinMs), f2(s.MedianMs), dash, dash, dash, dash, notes})
	}
	if p := r.Paginate; p != nil {
		name := fmt.Sprintf("paginate %d", p.Target)
		rate := fmt.Sprintf("%.0f ev/s", float64(p.Events)/(p.TotalMs/1000))
		notes := fmt.Sprintf("%d events (%d messages) in %d pages; per-page latency; setup %s ms",
			p.Events, p.Messages, p.Pages, f2(p.SetupMs))
		row := latRow(name, p.Page, f2(p.TotalMs), rate, notes)
		row[1] = fmt.Sprint(p.Events) // N is events here; latency columns are per page
		rows = append(rows, row)
	}
	if s := r.Server; s != nil {
		if s.PID != 0 {
			notes := fmt.Sprintf("pid %d start %s end %s peak %s", s.PID, mib(s.RSSStartBytes), mib(s.RSSEndBytes), mib(s.PeakRSSBytes))
			rows = append(rows, []string{"server rss", dash, dash, dash, dash, dash, dash, dash, notes})
		}
		if s.DataDir != "" {
			notes := fmt.Sprintf("%s (%d B) in %d files", mib(s.DataBytes), s.DataBytes, s.DataFiles)
			rows = append(rows, []string{"data size", dash, dash, dash, dash, dash, dash, dash, notes})
		}
	}
	if r.Retries429 > 0 {
		rows = append(rows, []string{"429 retries", fmt.Sprint(r.Retries429), dash, dash, dash, dash, dash, dash,
			"rate limiting inflated latencies; disable it on the server for raw numbers"})
	}
	names := make([]string, 0, len(r.Errors))
	for n := range r.Errors {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		// Tabs or newlines in an error would break the alignment.
		msg := strings.NewReplacer("\t", " ", "\n", " ").Replace(r.Errors[n])
		rows = append(rows, []string{"FAILED " + n, dash, dash, dash, dash, dash, dash, dash, msg})
	}
	return rows
}
