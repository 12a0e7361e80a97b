// Package stats holds what the bench programs share: CPU accounting from
// /proc, a latency histogram, and the result records the load generator
// hands to the driver.
package stats

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ClockTicks is USER_HZ, the unit of the times in /proc/PID/stat and
// /proc/stat. It is 100 on every Linux configuration Go supports.
const ClockTicks = 100

// procFile is the path of file in /proc for process pid (0: this process).
func procFile(pid int, file string) string {
	if pid > 0 {
		return "/proc/" + strconv.Itoa(pid) + "/" + file
	}
	return "/proc/self/" + file
}

// ProcCPU returns the user+system CPU time of process pid (all its threads),
// in clock ticks, from /proc/PID/stat. pid 0 means this process.
func ProcCPU(pid int) (int64, error) {
	u, s, err := ProcTimes(pid)
	return u + s, err
}

// ProcTimes returns the user and the system CPU time of process pid (all
// its threads), in clock ticks, from /proc/PID/stat. pid 0 means this
// process.
func ProcTimes(pid int) (user, system int64, err error) {
	path := procFile(pid, "stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	// The command name is in parentheses and may contain spaces: fields
	// are counted after the last ')'. utime and stime are fields 14 and 15
	// of the whole line, so 12 and 13 after the name (0-based: 11, 12).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("%s: malformed", path)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("%s: %d fields", path, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%s: bad utime/stime", path)
	}
	return u, s, nil
}

// CPUTimes is one line of /proc/stat, in clock ticks.
type CPUTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal int64
}

// Busy is the time the CPU ran something, softirq and irq included.
func (t CPUTimes) Busy() int64 {
	return t.User + t.Nice + t.System + t.IRQ + t.SoftIRQ
}

// Sub returns t - u field by field.
func (t CPUTimes) Sub(u CPUTimes) CPUTimes {
	return CPUTimes{t.User - u.User, t.Nice - u.Nice, t.System - u.System, t.Idle - u.Idle,
		t.IOWait - u.IOWait, t.IRQ - u.IRQ, t.SoftIRQ - u.SoftIRQ, t.Steal - u.Steal}
}

// SystemCPU returns the per-CPU lines of /proc/stat ("cpu0", "cpu1", ...),
// indexed by CPU number.
func SystemCPU() ([]CPUTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []CPUTimes
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "cpu") || strings.HasPrefix(line, "cpu ") {
			continue
		}
		fs := strings.Fields(line)
		n, err := strconv.Atoi(strings.TrimPrefix(fs[0], "cpu"))
		if err != nil || len(fs) < 9 {
			continue
		}
		var v [8]int64
		for k := range v {
			v[k], _ = strconv.ParseInt(fs[k+1], 10, 64)
		}
		for len(out) <= n {
			out = append(out, CPUTimes{})
		}
		out[n] = CPUTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}
	}
	return out, sc.Err()
}

// RSSKiB returns VmRSS of process pid (0: this process) in KiB.
func RSSKiB(pid int) (int64, error) {
	path := procFile(pid, "status")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no VmRSS", path)
}
