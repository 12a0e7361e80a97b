package stats

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Syscalls is what the server did in the load generator's perf window
// (-perf): system calls and context switches per echoed frame, counted by
// `perf stat` on the server's process.
type Syscalls struct {
	Seconds float64 `json:"seconds"` // length of the perf window
	Frames  int64   `json:"frames"`  // replies verified in it

	// Per frame.
	Total           float64 `json:"total"`  // every system call
	Reads           float64 `json:"reads"`  // read, readv, recvfrom, recvmsg, recvmmsg
	Writes          float64 `json:"writes"` // write, writev, sendto, sendmsg, sendmmsg
	Waits           float64 `json:"waits"`  // epoll_wait, epoll_pwait, epoll_pwait2
	Futex           float64 `json:"futex"`
	ContextSwitches float64 `json:"context_switches"`
}

// The system calls each class counts; perf names their tracepoints
// syscalls:sys_enter_NAME.
var (
	readCalls  = []string{"read", "readv", "recvfrom", "recvmsg", "recvmmsg"}
	writeCalls = []string{"write", "writev", "sendto", "sendmsg", "sendmmsg"}
	waitCalls  = []string{"epoll_wait", "epoll_pwait", "epoll_pwait2"}
)

const (
	allSyscallsEvent = "raw_syscalls:sys_enter"
	ctxSwitchEvent   = "context-switches"
)

// PerfEvents returns the events to count for Syscalls. Tracepoints this
// kernel does not have (epoll_pwait2 before Linux 5.11, say) are left out
// when tracefs tells; perf itself rejects an unknown one.
func PerfEvents() []string {
	evs := []string{allSyscallsEvent, ctxSwitchEvent}
	var dir string
	for _, d := range []string{"/sys/kernel/tracing/events/syscalls", "/sys/kernel/debug/tracing/events/syscalls"} {
		if _, err := os.Stat(d); err == nil {
			dir = d
			break
		}
	}
	for _, group := range [][]string{readCalls, writeCalls, waitCalls, {"futex"}} {
		for _, name := range group {
			tp := "sys_enter_" + name
			if dir != "" {
				if _, err := os.Stat(filepath.Join(dir, tp)); err != nil {
					continue
				}
			}
			evs = append(evs, "syscalls:"+tp)
		}
	}
	return evs
}

// ParsePerfCSV reads the output of `perf stat -x,` and returns each event's
// count. A count perf could not take ("<not counted>", "<not supported>")
// is an error: a figure that silently reads 0 would mislead.
func ParsePerfCSV(r io.Reader) (map[string]int64, error) {
	counts := map[string]int64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 3 || f[2] == "" {
			return nil, fmt.Errorf("perf stat: unexpected line %q", line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("perf stat: %s: %s", f[2], f[0])
		}
		counts[f[2]] += n
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if _, ok := counts[allSyscallsEvent]; !ok {
		return nil, fmt.Errorf("perf stat: no %s count", allSyscallsEvent)
	}
	return counts, nil
}

// NewSyscalls turns event counts over a window in which frames were echoed
// into per-frame figures.
func NewSyscalls(counts map[string]int64, frames int64, seconds float64) *Syscalls {
	s := &Syscalls{Seconds: seconds, Frames: frames}
	if frames <= 0 {
		return s
	}
	per := func(n int64) float64 { return float64(n) / float64(frames) }
	sum := func(names []string) (n int64) {
		for _, name := range names {
			n += counts["syscalls:sys_enter_"+name]
		}
		return n
	}
	s.Total = per(counts[allSyscallsEvent])
	s.Reads = per(sum(readCalls))
	s.Writes = per(sum(writeCalls))
	s.Waits = per(sum(waitCalls))
	s.Futex = per(counts["syscalls:sys_enter_futex"])
	s.ContextSwitches = per(counts[ctxSwitchEvent])
	return s
}

// PerfStatArgs returns the arguments for `perf stat` that make it count the
// events of PerfEvents in the workload that follows them ("--", the program
// and its arguments) only while enabled through the control FIFOs ctl and
// ack (see PerfControl), and write the counts to csv as `-x,` does.
//
// perf starts the workload itself, so every thread and process the
// workload starts inherits the counters; no thread can be started while
// perf attaches, as with `perf stat -p PID`.
func PerfStatArgs(csv, ctl, ack string) []string {
	return []string{"stat", "-x,", "-o", csv, "-e", strings.Join(PerfEvents(), ","),
		"-D", "-1", "--control", "fifo:" + ctl + "," + ack}
}

// PerfControl enables and disables the counters of a `perf stat` started
// with PerfStatArgs, through its control FIFOs. Each command returns once
// perf acknowledged it, so what happens after Enable returns and before
// Disable is called is counted. Not safe for concurrent use.
type PerfControl struct {
	// Timeout bounds the wait for perf's acknowledgement of a command;
	// OpenPerfControl sets it to 10s.
	Timeout  time.Duration
	ctl, ack *os.File
	buf      [64]byte
}

// OpenPerfControl opens the control FIFOs ctl and ack. It opens both for
// reading and writing, which does not wait for perf to open its ends.
func OpenPerfControl(ctl, ack string) (*PerfControl, error) {
	c, err := os.OpenFile(ctl, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("perf control: %w", err)
	}
	a, err := os.OpenFile(ack, os.O_RDWR, 0)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("perf control: %w", err)
	}
	return &PerfControl{Timeout: 10 * time.Second, ctl: c, ack: a}, nil
}

// Enable starts the counters.
func (p *PerfControl) Enable() error { return p.command("enable") }

// Disable stops the counters.
func (p *PerfControl) Disable() error { return p.command("disable") }

// Close closes the FIFOs.
func (p *PerfControl) Close() error {
	return errors.Join(p.ctl.Close(), p.ack.Close())
}

// command sends cmd and waits up to p.Timeout for perf's "ack".
func (p *PerfControl) command(cmd string) error {
	if _, err := io.WriteString(p.ctl, cmd+"\n"); err != nil {
		return fmt.Errorf("perf control %s: %w", cmd, err)
	}
	if err := p.ack.SetReadDeadline(time.Now().Add(p.Timeout)); err != nil {
		return fmt.Errorf("perf control %s: %w", cmd, err)
	}
	// perf writes "ack\n" and a NUL with one write, which a pipe delivers
	// whole; anything before it is left over from no command of ours.
	for {
		n, err := p.ack.Read(p.buf[:])
		if bytes.Contains(p.buf[:n], []byte("ack")) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("perf control %s: no ack: %w", cmd, err)
		}
	}
}
