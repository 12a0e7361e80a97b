package main

import (
	"fmt"
	"time"

	"github.com/mai-go/mai/bench/internal/stats"
)

// perfWindow runs the load for another d while the server's `perf stat`
// counts, and returns the length of the counting window. The server runs
// under `perf stat` started by the benchmark with stats.PerfStatArgs, its
// counters disabled; ctl and ack are perf's control FIFOs. The phase is
// phasePerf only between perf's acknowledgement of "enable" and the
// sending of "disable", so the frames verified in that phase were all
// echoed while perf counted: the counts cover the frames' window and at
// most the two commands' round trips more.
func perfWindow(ctl, ack string, d time.Duration) (float64, error) {
	pc, err := stats.OpenPerfControl(ctl, ack)
	if err != nil {
		return 0, err
	}
	defer pc.Close()
	if err := pc.Enable(); err != nil {
		return 0, err
	}
	started := time.Now()
	phase.Store(phasePerf)
	time.Sleep(d)
	phase.Store(phaseStopping)
	secs := time.Since(started).Seconds()
	if err := pc.Disable(); err != nil {
		return 0, fmt.Errorf("%w (the counts went on past the window)", err)
	}
	return secs, nil
}
