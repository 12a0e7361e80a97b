package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/mai-go/mai/bench/internal/stats"
)

// perfStat is the `perf stat` a server runs under with -detail: its
// counters start disabled, the load generator enables them for its second
// window through the control FIFOs, and perf writes the counts to a CSV
// file when the server has exited.
type perfStat struct {
	dir           string
	csv, ctl, ack string
}

func newPerfStat() (*perfStat, error) {
	dir, err := os.MkdirTemp("", "mai-bench-perf-")
	if err != nil {
		return nil, err
	}
	p := &perfStat{dir: dir, csv: filepath.Join(dir, "counts.csv"),
		ctl: filepath.Join(dir, "ctl"), ack: filepath.Join(dir, "ack")}
	for _, f := range []string{p.ctl, p.ack} {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			p.remove()
			return nil, fmt.Errorf("perf control FIFO: %w", err)
		}
	}
	return p, nil
}

// wrap returns the command line that runs argv under perf stat.
func (p *perfStat) wrap(argv []string) []string {
	return append(append(append([]string{"perf"}, stats.PerfStatArgs(p.csv, p.ctl, p.ack)...), "--"), argv...)
}

// loadArgs are the load generator's flags that drive this perf stat.
func (p *perfStat) loadArgs() []string {
	return []string{"-perf-ctl", p.ctl, "-perf-ack", p.ack}
}

// counts reads what perf wrote when it exited.
func (p *perfStat) counts() (map[string]int64, error) {
	f, err := os.Open(p.csv)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return stats.ParsePerfCSV(f)
}

func (p *perfStat) remove() { os.RemoveAll(p.dir) }

// workloadPID returns the PID of the one program perf (process perfPID)
// started, from /proc; taskset execs the program, so it keeps that PID.
func workloadPID(perfPID int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", perfPID, perfPID))
	if err != nil {
		return 0, fmt.Errorf("the server's PID under perf: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		return 0, fmt.Errorf("the server's PID under perf: perf has %d children", len(f))
	}
	return strconv.Atoi(f[0])
}
