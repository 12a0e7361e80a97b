package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/mai-go/mai/bench/internal/stats"
)

// perfWindow is the outcome of countSyscalls.
type perfWindow struct {
	counts  map[string]int64
	seconds float64
	err     error
}

// countSyscalls counts the system calls and context switches of process
// pid for about d with `perf stat -p`, and sets the phase to phasePerf
// while perf counts. perf runs a shell that prints "start", sleeps d and
// prints "stop": perf enables its counters before it starts the shell and
// reads them after the shell exits, so the frames verified between the two
// lines are the frames of the counting window, give or take the pipe's
// latency. It needs perf on PATH and the right to trace pid (root, or
// kernel.perf_event_paranoid at -1).
func countSyscalls(pid int, d time.Duration) *perfWindow {
	pw := &perfWindow{}
	if pid <= 0 {
		pw.err = fmt.Errorf("-perf needs -server-pid")
		return pw
	}
	out, err := os.CreateTemp("", "loadgen-perf-*.csv")
	if err != nil {
		pw.err = err
		return pw
	}
	out.Close()
	defer os.Remove(out.Name())

	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	script := fmt.Sprintf("echo start; sleep %.3f; echo stop", d.Seconds())
	cmd := exec.CommandContext(ctx, "perf", "stat", "-x,", "-o", out.Name(),
		"-e", strings.Join(stats.PerfEvents(), ","), "-p", strconv.Itoa(pid), "--", "sh", "-c", script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		pw.err = err
		return pw
	}
	if err := cmd.Start(); err != nil {
		pw.err = fmt.Errorf("perf: %w (Debian: apt-get install linux-perf)", err)
		return pw
	}
	var started time.Time
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		switch sc.Text() {
		case "start":
			started = time.Now()
			phase.Store(phasePerf)
		case "stop":
			phase.Store(phaseStopping)
			pw.seconds = time.Since(started).Seconds()
		}
	}
	if err := cmd.Wait(); err != nil {
		pw.err = fmt.Errorf("perf stat: %w: %s", err, strings.TrimSpace(stderr.String()))
		return pw
	}
	if started.IsZero() || pw.seconds == 0 {
		pw.err = fmt.Errorf("perf stat did not run its window: %s", strings.TrimSpace(stderr.String()))
		return pw
	}
	f, err := os.Open(out.Name())
	if err != nil {
		pw.err = err
		return pw
	}
	defer f.Close()
	pw.counts, pw.err = stats.ParsePerfCSV(f)
	return pw
}
