package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mai-go/mai/bench/internal/stats"
)

func TestImplNames(t *testing.T) {
	for _, tc := range []struct {
		impl, base, rev, pkg, ratioBase string
		args                            []string
		mai                             bool
	}{
		{"mai", "mai", "", "./servers/mai", "mai", nil, true},
		{"mai-epoll", "mai-epoll", "", "./servers/mai", "mai", []string{"-transport", "epoll"}, true},
		{"mai@1a2b3c4", "mai", "1a2b3c4", "./servers/mai", "mai", nil, true},
		{"mai-epoll@1a2b3c4", "mai-epoll", "1a2b3c4", "./servers/mai", "mai-epoll", []string{"-transport", "epoll"}, true},
		{"gnet", "gnet", "", "./servers/gnet", "mai", nil, false},
	} {
		base, rev := splitRev(tc.impl)
		if base != tc.base || rev != tc.rev {
			t.Errorf("splitRev(%q) = %q, %q", tc.impl, base, rev)
		}
		if got := serverPkg(tc.impl); got != tc.pkg {
			t.Errorf("serverPkg(%q) = %q, want %q", tc.impl, got, tc.pkg)
		}
		if got := implArgs(tc.impl); !slices.Equal(got, tc.args) {
			t.Errorf("implArgs(%q) = %q, want %q", tc.impl, got, tc.args)
		}
		if got := isMai(tc.impl); got != tc.mai {
			t.Errorf("isMai(%q) = %v", tc.impl, got)
		}
		if got := ratioBase(tc.impl); got != tc.ratioBase {
			t.Errorf("ratioBase(%q) = %q, want %q", tc.impl, got, tc.ratioBase)
		}
	}
	for _, tc := range []struct {
		impl  string
		impls []string
		want  bool
	}{
		{"mai", []string{"mai", "gnet"}, false},                           // mai is the base
		{"gnet", []string{"mai", "gnet"}, true},                           // a peer over mai
		{"gnet", []string{"mai-epoll", "gnet"}, false},                    // mai did not run
		{"mai-epoll@a1", []string{"mai-epoll", "mai-epoll@a1"}, true},     // an A/B over its base
		{"mai-epoll@a1", []string{"mai", "mai-epoll@a1"}, false},          // its base did not run
		{"mai-epoll", []string{"mai", "mai-epoll", "mai-epoll@a1"}, true}, // a peer of mai
	} {
		if got := hasRatio(tc.impl, tc.impls); got != tc.want {
			t.Errorf("hasRatio(%q, %q) = %v, want %v", tc.impl, tc.impls, got, tc.want)
		}
	}
	if got := versions([]string{"mai-epoll", "mai-epoll@a1", "mai@a1"}); got["mai-epoll"] != "mai with -transport epoll" ||
		got["mai-epoll@a1"] != "(commit a1, -transport epoll)" || got["mai@a1"] != "(commit a1)" {
		t.Errorf("versions = %q", got)
	}
	got := withRevs([]string{"mai", "mai-epoll", "gnet"}, []string{"a1", "b2"})
	want := []string{"mai", "mai@a1", "mai@b2", "mai-epoll", "mai-epoll@a1", "mai-epoll@b2", "gnet"}
	if !slices.Equal(got, want) {
		t.Errorf("withRevs = %q, want %q", got, want)
	}
}

// TestReportAgainst checks the ratio columns of an A/B (-against) and the
// rows -detail adds.
func TestReportAgainst(t *testing.T) {
	impls := []string{"mai", "mai@a1", "mai-epoll", "mai-epoll@a1", "gnet"}
	us := map[string]float64{"mai": 8, "mai@a1": 10, "mai-epoll": 6, "mai-epoll@a1": 4, "gnet": 5}
	var runs []Run
	for _, impl := range impls {
		runs = append(runs, Run{Scenario: "s1", Impl: impl, Round: 1, Load: &stats.Result{
			Frames: 1000, ServerUsPerFrame: us[impl], ServerCPUSec: us[impl] * 1e-3, ServerUserSec: us[impl] * 0.25e-3,
			ClientCPUSec: 1,
			Syscalls:     &stats.Syscalls{Frames: 500, Total: 2, Reads: 1, Writes: 1},
		}})
	}
	sc := scenarios(10)[:1]
	for _, detail := range []bool{false, true} {
		cfg := config{Rounds: 1, Impls: impls, Scenarios: []string{"s1"}, Against: []string{"a1"}, Detail: detail}
		rep := newReport(cfg, sc, runs)
		var cpu *Row
		rows := map[string]bool{}
		for i, r := range rep.Rows {
			rows[r.Metric] = true
			if r.Metric == "server CPU us/frame" {
				cpu = &rep.Rows[i]
			}
		}
		if cpu == nil {
			t.Fatal("no server CPU row")
		}
		wantRatio := map[string]float64{"mai@a1": 0.8, "mai-epoll": 8.0 / 6, "mai-epoll@a1": 1.5, "gnet": 1.6}
		for impl, want := range wantRatio {
			if got := cpu.Ratio[impl]; got < want-1e-9 || got > want+1e-9 {
				t.Errorf("ratio for %s = %v, want %v", impl, got, want)
			}
		}
		for _, m := range []string{"server user us/frame", "syscalls/frame", "writes/frame"} {
			if rows[m] != detail {
				t.Errorf("detail %v: row %q present: %v", detail, m, rows[m])
			}
		}
		var out bytes.Buffer
		rep.print(&out)
		for _, col := range []string{"mai/@a1", "mai-epoll/@a1", "mai/gnet", "mai/mai-epoll"} {
			if !strings.Contains(out.String(), col) {
				t.Errorf("no column %q in\n%s", col, out.String())
			}
		}
	}
}

// TestLoadgenPerf runs the load generator with -perf against the std server
// and checks that it counts plausible system calls: a closed loop on one
// connection makes about one write per frame, and one or two reads (one
// may find nothing and wait).
func TestLoadgenPerf(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a server")
	}
	needPerf(t)
	binDir = t.TempDir()
	taskset = ""
	if _, err := buildAll([]string{"std"}, nil); err != nil {
		t.Fatal(err)
	}
	cfg := config{Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond, Detail: true}
	res, err := runLoad(cfg, scenario{Mode: "closed", Conns: 1, Size: 64}, "std", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors > 0 {
		t.Fatalf("%d errors, first: %s", res.Errors, res.FirstError)
	}
	s := res.Syscalls
	if s == nil || s.Frames < 100 || s.Seconds < 0.2 {
		t.Fatalf("perf window: %+v", s)
	}
	t.Logf("per frame: %+v", *s)
	if s.Writes < 0.9 || s.Writes > 2 || s.Reads < 0.9 || s.Reads > 3 || s.Total < s.Reads+s.Writes {
		t.Errorf("implausible counts per frame: %+v", *s)
	}
	// The server echoed for the whole window: its CPU time must show
	// (tens of clock ticks), split into non-negative user and system time.
	if res.ServerUserSec < 0 || res.ServerSysSec < 0 || res.ServerCPUSec <= 0 {
		t.Errorf("server CPU over the window: user %v, sys %v, total %v", res.ServerUserSec, res.ServerSysSec, res.ServerCPUSec)
	}
}
