package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mai-go/mai/bench/internal/srvkit"
	"github.com/mai-go/mai/bench/internal/stats"
)

// Run is one implementation under one scenario in one round.
type Run struct {
	Scenario  string        `json:"scenario"`
	Impl      string        `json:"impl"`
	Round     int           `json:"round"`
	Load      *stats.Result `json:"load,omitempty"` // s1-s4
	Mem       *MemResult    `json:"mem,omitempty"`  // s5
	Disturbed bool          `json:"disturbed"`
	Retries   int           `json:"retries,omitempty"` // disturbed runs replaced by this one or kept over it
	Err       string        `json:"error,omitempty"`
	WallSec   float64       `json:"wall_sec"`
}

// MemResult is the memory scenario's outcome. Per-connection figures are
// the growth of the server's RSS over its RSS before any connection,
// divided by the number of connections; every figure is taken after a GC
// that returns free memory to the OS.
type MemResult struct {
	Conns          int          `json:"conns"`
	BaseStats      srvkit.Stats `json:"base"`
	IdleStats      srvkit.Stats `json:"idle"`       // all connections open, nothing sent
	EchoStats      srvkit.Stats `json:"after_echo"` // after one echo on each
	IdleKiBPerConn float64      `json:"idle_kib_per_conn"`
	EchoKiBPerConn float64      `json:"echo_kib_per_conn"`
}

func runOne(cfg config, sc scenario, impl string, round int, srvArgs ...string) Run {
	t0 := time.Now()
	if isMai(impl) && maiArgs != "" {
		srvArgs = append(strings.Fields(maiArgs), srvArgs...)
	}
	srvArgs = append(implArgs(impl), srvArgs...)
	r := Run{Scenario: sc.Key, Impl: impl, Round: round}
	var err error
	if sc.Mode == "idle" {
		r.Mem, err = runMem(sc, impl, srvArgs)
	} else {
		r.Load, err = runLoad(cfg, sc, impl, srvArgs)
		if err == nil {
			r.Disturbed = r.Load.ForeignPct > cfg.ForeignMax
			if r.Load.Errors > 0 {
				err = fmt.Errorf("%d bad replies or I/O errors, first: %s", r.Load.Errors, r.Load.FirstError)
			}
		}
	}
	if err != nil {
		r.Err = err.Error()
	}
	r.WallSec = time.Since(t0).Seconds()
	return r
}

func loadArgs(cfg config, sc scenario, addr string, pid int, ps *perfStat) []string {
	args := []string{"-addr", addr, "-server-pid", strconv.Itoa(pid), "-mode", sc.Mode,
		"-conns", strconv.Itoa(sc.Conns), "-size", strconv.Itoa(sc.Size), "-depth", strconv.Itoa(max(sc.Depth, 1)),
		"-warmup", cfg.Warmup.String(), "-duration", cfg.Duration.String()}
	if ps != nil {
		args = append(args, ps.loadArgs()...)
	}
	return args
}

// runLoad runs one load scenario against impl's server. With cfg.Detail the
// server runs under perf stat, which the load generator enables for its
// second window, and the counts are read once the server has exited.
func runLoad(cfg config, sc scenario, impl string, srvArgs []string) (*stats.Result, error) {
	var ps *perfStat
	if cfg.Detail {
		var err error
		if ps, err = newPerfStat(); err != nil {
			return nil, err
		}
		defer ps.remove()
	}
	srv, err := startServer(impl, ps, srvArgs...)
	if err != nil {
		return nil, err
	}
	defer srv.stop("quit")
	lg, err := startChild("loadgen", 1, nil, binPath("loadgen"), loadArgs(cfg, sc, srv.addr, srv.pid(), ps)...)
	if err != nil {
		return nil, err
	}
	window := cfg.Duration
	if cfg.Detail {
		window += cfg.Duration // the loadgen's -perf window follows the measured one
	}
	line, err := lg.expect("RESULT ", cfg.Warmup+window+60*time.Second)
	lg.stop("")
	if err != nil {
		return nil, err
	}
	var res stats.Result
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return nil, err
	}
	if err := srv.stop("quit"); err != nil {
		return &res, fmt.Errorf("server exit: %v: %s", err, srv.stderr.String())
	}
	if ps != nil && res.Syscalls != nil {
		counts, err := ps.counts()
		if err != nil {
			return &res, fmt.Errorf("perf stat: %w: %s", err, srv.stderr.String())
		}
		res.Syscalls = stats.NewSyscalls(counts, res.Syscalls.Frames, res.Syscalls.Seconds)
	}
	return &res, nil
}

func runMem(sc scenario, impl string, srvArgs []string) (*MemResult, error) {
	srv, err := startServer(impl, nil, srvArgs...)
	if err != nil {
		return nil, err
	}
	defer srv.stop("quit")
	m := &MemResult{Conns: sc.Conns}
	if m.BaseStats, err = srv.stats(); err != nil {
		return nil, err
	}
	lg, err := startChild("loadgen", 1, nil, binPath("loadgen"), "-addr", srv.addr, "-mode", "idle",
		"-conns", strconv.Itoa(sc.Conns), "-size", strconv.Itoa(sc.Size))
	if err != nil {
		return nil, err
	}
	defer lg.stop("close")
	if _, err := lg.expect("CONNECTED", 60*time.Second); err != nil {
		return nil, err
	}
	// The client is connected once the kernel completed the handshakes; the
	// server may still be accepting.
	// Give up when the count stops moving for 5s.
	last, lastMove := int64(-1), time.Now()
	for {
		if m.IdleStats, err = srv.stats(); err != nil {
			return nil, err
		}
		if m.IdleStats.Conns >= int64(sc.Conns) {
			break
		}
		if m.IdleStats.Conns != last {
			last, lastMove = m.IdleStats.Conns, time.Now()
		} else if time.Since(lastMove) > 5*time.Second {
			return nil, fmt.Errorf("server reports %d of %d connections, unchanged for 5s", last, sc.Conns)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := lg.send("echo"); err != nil {
		return nil, err
	}
	if _, err := lg.expect("ECHOED", 60*time.Second); err != nil {
		return nil, err
	}
	if m.EchoStats, err = srv.stats(); err != nil {
		return nil, err
	}
	n := float64(sc.Conns)
	m.IdleKiBPerConn = float64(m.IdleStats.RSSKiB-m.BaseStats.RSSKiB) / n
	m.EchoKiBPerConn = float64(m.EchoStats.RSSKiB-m.BaseStats.RSSKiB) / n
	return m, nil
}

// Profile is a profile taken of a server.
type Profile struct {
	Impl     string `json:"impl"`
	Scenario string `json:"scenario"`
	Kind     string `json:"kind"` // "cpu" or "allocs"
	Path     string `json:"path"`
	Top      string `json:"top"` // go tool pprof -top, first lines
}

// profile1 runs scenario sc once more against impl's server with CPU and
// allocation profiling on, and keeps the top of each profile.
func profile1(cfg config, sc scenario, impl, outDir string) []Profile {
	abs, _ := filepath.Abs(outDir)
	base := filepath.Join(abs, impl+"-"+sc.Key)
	cpu, mem := base+".cpu.prof", base+".allocs.prof"
	cfg.Detail = false // perf would count the profiler's signals too
	r := runOne(cfg, sc, impl, 0, "-cpuprofile", cpu, "-memprofile", mem)
	logRun(r)
	if r.Err != "" {
		return nil
	}
	var out []Profile
	for _, p := range []Profile{{Kind: "cpu", Path: cpu}, {Kind: "allocs", Path: mem}} {
		p.Impl, p.Scenario = impl, sc.Key
		args := []string{"tool", "pprof", "-top", "-nodecount=25"}
		if p.Kind == "allocs" {
			args = append(args, "-sample_index=alloc_space")
		}
		top, err := exec.Command(goTool(), append(args, p.Path)...).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "pprof %s: %v\n", p.Kind, err)
		}
		p.Top = string(top)
		out = append(out, p)
	}
	return out
}
