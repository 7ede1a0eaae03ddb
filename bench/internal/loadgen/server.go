package loadgen

// Scenario 6: server footprint. Read from outside the server (procfs and the
// filesystem) so it works for any implementation without instrumentation.

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ServerResult is the footprint report; zero fields were not requested.
type ServerResult struct {
	PID           int    `json:"pid,omitempty"`
	RSSStartBytes int64  `json:"rss_start_bytes,omitempty"`
	RSSEndBytes   int64  `json:"rss_end_bytes,omitempty"`
	PeakRSSBytes  int64  `json:"peak_rss_bytes,omitempty"`
	DataDir       string `json:"data_dir,omitempty"`
	DataBytes     int64  `json:"data_bytes,omitempty"`
	DataFiles     int    `json:"data_files,omitempty"`
}

// ProcMem returns VmRSS and VmHWM (peak RSS) in bytes from /proc/PID/status.
func ProcMem(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		// Format is "  123456 kB".
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parsing %s: %w", k, err)
		}
		if k == "VmRSS" {
			rss = n * 1024
		} else {
			hwm = n * 1024
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return rss, hwm, nil
}

// DirSize sums regular file sizes under dir (apparent size, not blocks, so
// it's comparable across filesystems).
func DirSize(dir string) (bytes int64, files int, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			// Storage engines delete files (compaction, WAL rotation) while
			// we walk; a vanished file just doesn't count.
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		bytes += info.Size()
		files++
		return nil
	})
	return bytes, files, err
}
