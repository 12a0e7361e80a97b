package stats

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
