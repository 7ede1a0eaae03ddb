package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPUCost is the CPU time a timed send window cost, per acknowledged send:
// in the servers (every node's process) and in this process (the load
// generator). On a machine whose cores the nodes and the load generator
// share, throughput is at most cores / (server + load generator) per send,
// which is what bounds the cluster-to-single ratio when the cluster is
// CPU-bound: each node decides and folds every command.
type CPUCost struct {
	ServerUsPerSend  float64 `json:"server_us_per_send"`
	LoadgenUsPerSend float64 `json:"loadgen_us_per_send"`
	// BoundPerSec is cores / (server + load generator) per send: the send
	// rate at which the window's work would fill every core.
	BoundPerSec float64 `json:"cpu_bound_per_sec"`
}

// cpuMeter measures the CPU time of a set of processes and of this one
// over a window.
type cpuMeter struct {
	pids          []int
	server, self  time.Duration
	serverErr     error
	serverStarted bool
}

func (m *cpuMeter) timed(begin bool) {
	server, err := processesCPU(m.pids)
	self := selfCPU()
	if begin {
		m.server, m.self, m.serverErr, m.serverStarted = server, self, err, true
		return
	}
	m.server, m.self = server-m.server, self-m.self
	if m.serverErr == nil {
		m.serverErr = err
	}
}

// cost is the window's CPU per send; nil when it could not be read (not
// Linux, or a node exited during the window).
func (m *cpuMeter) cost(sends int, cores int) *CPUCost {
	if !m.serverStarted || m.serverErr != nil || sends <= 0 {
		return nil
	}
	c := &CPUCost{
		ServerUsPerSend:  float64(m.server.Microseconds()) / float64(sends),
		LoadgenUsPerSend: float64(m.self.Microseconds()) / float64(sends),
	}
	if per := c.ServerUsPerSend + c.LoadgenUsPerSend; per > 0 {
		c.BoundPerSec = float64(cores) * 1e6 / per
	}
	return c
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// processesCPU sums user and system time of the processes from
// /proc/PID/stat (fields 14 and 15).
func processesCPU(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
		}
		// The command name (field 2) may hold spaces; fields after it
		// start past its closing parenthesis.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 13 {
			return 0, fmt.Errorf("cpu time of pid %d: short stat line", pid)
		}
		for _, f := range fields[11:13] { // utime, stime
			ticks, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
			}
			total += time.Duration(ticks) * time.Second / clockTicks
		}
	}
	return total, nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pids are the running nodes' process IDs.
func pids(nodes []*node) []int {
	var out []int
	for _, n := range nodes {
		n.mu.Lock()
		if n.cmd != nil && n.cmd.Process != nil {
			out = append(out, n.cmd.Process.Pid)
		}
		n.mu.Unlock()
	}
	return out
}
