package stats

import (
	"maps"
	"math"
	"strings"
	"testing"
)

func TestHistQuantiles(t *testing.T) {
	var h Hist
	for v := int64(1); v <= 100000; v++ {
		h.Record(v * 1000) // 1 µs .. 100 ms
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		want := q * 100000 * 1000
		got := h.Quantile(q)
		if math.Abs(got-want)/want > 1.0/subCount {
			t.Errorf("q%.3f = %.0f, want %.0f within %.1f%%", q, got, want, 100.0/subCount)
		}
	}
	var o Hist
	o.Merge(&h)
	if o.Count() != h.Count() || o.Quantile(0.5) != h.Quantile(0.5) {
		t.Error("Merge lost values")
	}
	if (&Hist{}).Quantile(0.5) != 0 {
		t.Error("empty histogram")
	}
	for _, v := range []int64{-5, 0, 31, 32, 33, 1 << 40, math.MaxInt64} {
		if i := bucketOf(v); i < 0 || i >= numBuckets {
			t.Errorf("bucketOf(%d) = %d", v, i)
		}
	}
}

func TestProc(t *testing.T) {
	if _, err := ProcCPU(0); err != nil {
		t.Fatal(err)
	}
	if rss, err := RSSKiB(0); err != nil || rss <= 0 {
		t.Fatal(rss, err)
	}
	cpus, err := SystemCPU()
	if err != nil || len(cpus) == 0 || cpus[0].Idle+cpus[0].Busy() == 0 {
		t.Fatal(cpus, err)
	}
}

func TestProcTimes(t *testing.T) {
	u, s, err := ProcTimes(0)
	if err != nil || u < 0 || s < 0 {
		t.Fatal(u, s, err)
	}
	if _, _, err := ProcTimes(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

func TestParsePerfCSV(t *testing.T) {
	const header = "# started on Sat Nov 21 16:00:36 2026\n\n"
	for _, tc := range []struct {
		name, in string
		want     map[string]int64 // nil: an error
	}{
		{"counts", header + "700,,raw_syscalls:sys_enter,199055,100.00,,\n" +
			"200,,syscalls:sys_enter_read,199055,100.00,,\n3,,context-switches,199055,100.00,,\n",
			map[string]int64{"raw_syscalls:sys_enter": 700, "syscalls:sys_enter_read": 200, "context-switches": 3}},
		{"not counted", header + "<not counted>,,raw_syscalls:sys_enter,0,0.00,,\n", nil},
		{"not supported", header + "5,,raw_syscalls:sys_enter,1,100.00,,\n<not supported>,,syscalls:sys_enter_futex,0,0.00,,\n", nil},
		{"no total", header + "5,,syscalls:sys_enter_read,1,100.00,,\n", nil},
		{"malformed", "garbage\n", nil},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePerfCSV(strings.NewReader(tc.in))
			if tc.want == nil {
				if err == nil {
					t.Fatalf("no error; got %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewSyscalls(t *testing.T) {
	counts := map[string]int64{
		"raw_syscalls:sys_enter":         1000,
		"syscalls:sys_enter_read":        100,
		"syscalls:sys_enter_readv":       50,
		"syscalls:sys_enter_recvfrom":    50,
		"syscalls:sys_enter_writev":      100,
		"syscalls:sys_enter_sendmsg":     100,
		"syscalls:sys_enter_epoll_wait":  20,
		"syscalls:sys_enter_epoll_pwait": 30,
		"syscalls:sys_enter_futex":       10,
		"context-switches":               5,
	}
	got := NewSyscalls(counts, 100, 2.5)
	want := Syscalls{Seconds: 2.5, Frames: 100, Total: 10, Reads: 2, Writes: 2, Waits: 0.5, Futex: 0.1, ContextSwitches: 0.05}
	if *got != want {
		t.Errorf("got %+v, want %+v", *got, want)
	}
	if z := NewSyscalls(counts, 0, 1); z.Total != 0 || z.Frames != 0 {
		t.Errorf("no frames: got %+v, want zeros", *z)
	}
}
