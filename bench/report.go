package main

import (
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/mai-go/mai/bench/internal/stats"
)

// metric is one row of the table.
type metric struct {
	scen  string
	name  string
	lower bool // lower is better
	get   func(Run) (float64, bool)
}

func loadMetric(scen, name string, lower bool, f func(r Run) float64) metric {
	return metric{scen, name, lower, func(r Run) (float64, bool) {
		if r.Load == nil || r.Err != "" {
			return 0, false
		}
		return f(r), true
	}}
}

func memMetric(name string, f func(m *MemResult) float64) metric {
	return metric{"s5", name, true, func(r Run) (float64, bool) {
		if r.Mem == nil || r.Err != "" {
			return 0, false
		}
		return f(r.Mem), true
	}}
}

func metrics(detail bool) []metric {
	var ms []metric
	for _, s := range []string{"s1", "s2", "s3", "s4"} {
		if s == "s4" {
			ms = append(ms, loadMetric(s, "MB/s", false, func(r Run) float64 { return r.Load.MBPerSec }))
		}
		ms = append(ms,
			loadMetric(s, "server CPU us/frame", true, func(r Run) float64 { return r.Load.ServerUsPerFrame }),
			// The machine's level moves server and client alike; their
			// ratio in one run does not move with it (see README).
			metric{s, "server/client CPU", true, func(r Run) (float64, bool) {
				if r.Load == nil || r.Err != "" || r.Load.ClientCPUSec <= 0 {
					return 0, false
				}
				return r.Load.ServerCPUSec / r.Load.ClientCPUSec, true
			}})
		if s != "s4" {
			ms = append(ms, loadMetric(s, "kframes/s", false, func(r Run) float64 { return r.Load.FramesPerSec / 1e3 }))
		}
		ms = append(ms,
			loadMetric(s, "p50 us", true, func(r Run) float64 { return r.Load.P50us }),
			loadMetric(s, "p99 us", true, func(r Run) float64 { return r.Load.P99us }),
			loadMetric(s, "p999 us", true, func(r Run) float64 { return r.Load.P999us }))
		if detail {
			ms = append(ms, detailMetrics(s)...)
		}
	}
	return append(ms,
		memMetric("KiB/conn idle", func(m *MemResult) float64 { return m.IdleKiBPerConn }),
		memMetric("KiB/conn after echo", func(m *MemResult) float64 { return m.EchoKiBPerConn }),
		memMetric("goroutines", func(m *MemResult) float64 { return float64(m.EchoStats.Goroutines) }))
}

// detailMetrics are the rows -detail adds to load scenario s: where the
// server's CPU time went, and its system calls per frame.
func detailMetrics(s string) []metric {
	perFrame := func(sec float64, r Run) float64 {
		if r.Load.Frames == 0 {
			return 0
		}
		return sec * 1e6 / float64(r.Load.Frames)
	}
	sys := func(name string, f func(*stats.Syscalls) float64) metric {
		return metric{s, name, true, func(r Run) (float64, bool) {
			if r.Load == nil || r.Err != "" || r.Load.Syscalls == nil || r.Load.Syscalls.Frames == 0 {
				return 0, false
			}
			return f(r.Load.Syscalls), true
		}}
	}
	return []metric{
		loadMetric(s, "server user us/frame", true, func(r Run) float64 { return perFrame(r.Load.ServerUserSec, r) }),
		loadMetric(s, "server sys us/frame", true, func(r Run) float64 { return perFrame(r.Load.ServerSysSec, r) }),
		sys("syscalls/frame", func(c *stats.Syscalls) float64 { return c.Total }),
		sys("reads/frame", func(c *stats.Syscalls) float64 { return c.Reads }),
		sys("writes/frame", func(c *stats.Syscalls) float64 { return c.Writes }),
		sys("epoll waits/frame", func(c *stats.Syscalls) float64 { return c.Waits }),
		sys("futex/frame", func(c *stats.Syscalls) float64 { return c.Futex }),
		sys("context switches/frame", func(c *stats.Syscalls) float64 { return c.ContextSwitches }),
	}
}

// Cell is the summary of one implementation's runs for one metric.
type Cell struct {
	Median    float64 `json:"median"`
	Min       float64 `json:"min"`
	Max       float64 `json:"max"`
	N         int     `json:"n"`         // runs summarized: the undisturbed ones if any, else all
	Runs      int     `json:"runs"`      // runs with a value
	Disturbed int     `json:"disturbed"` // runs flagged as disturbed
}

// Row is one line of the table.
type Row struct {
	Scenario string          `json:"scenario"`
	Metric   string          `json:"metric"`
	Lower    bool            `json:"lower_is_better"`
	Cells    map[string]Cell `json:"cells"`
	// Ratio is, for each peer, mai's median over the peer's; for mai's
	// server at another revision (X@REV, see -against), X's over X@REV's.
	Ratio map[string]float64 `json:"mai_over_peer,omitempty"`
}

// Machine describes where the suite ran.
type Machine struct {
	CPUModel string `json:"cpu_model"`
	CPUs     int    `json:"cpus"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	Pinned   bool   `json:"pinned"`
}

// Report is everything a suite produced; it is written as results.json.
type Report struct {
	Date      string            `json:"date"`
	Machine   Machine           `json:"machine"`
	Versions  map[string]string `json:"versions"`
	Config    config            `json:"config"`
	Scenarios []scenario        `json:"scenarios"`
	Rows      []Row             `json:"summary"`
	Runs      []Run             `json:"runs"`
	Profiles  []Profile         `json:"profiles,omitempty"`
	WallSec   float64           `json:"wall_sec"`
}

func newReport(cfg config, scens []scenario, runs []Run) *Report {
	rep := &Report{
		Date:      time.Now().UTC().Format("2006-01-02 15:04 MST"),
		Machine:   machine(),
		Versions:  versions(cfg.Impls),
		Config:    cfg,
		Scenarios: scens,
		Runs:      runs,
	}
	for _, m := range metrics(cfg.Detail) {
		if !slices.Contains(cfg.Scenarios, m.scen) {
			continue
		}
		row := Row{Scenario: m.scen, Metric: m.name, Lower: m.lower, Cells: map[string]Cell{}, Ratio: map[string]float64{}}
		for _, impl := range cfg.Impls {
			var clean, all []float64
			c := Cell{}
			for _, r := range runs {
				if r.Scenario != m.scen || r.Impl != impl {
					continue
				}
				if v, ok := m.get(r); ok {
					all = append(all, v)
					c.Runs++
					if r.Disturbed {
						c.Disturbed++
					} else {
						clean = append(clean, v)
					}
				}
			}
			// Summarize the undisturbed runs when there are any.
			vs := clean
			if len(vs) == 0 {
				vs = all
			}
			if len(vs) == 0 {
				continue
			}
			slices.Sort(vs)
			c.N, c.Min, c.Max = len(vs), vs[0], vs[len(vs)-1]
			if n := len(vs); n%2 == 1 {
				c.Median = vs[n/2]
			} else {
				c.Median = (vs[n/2-1] + vs[n/2]) / 2
			}
			row.Cells[impl] = c
		}
		for impl, c := range row.Cells {
			if !hasRatio(impl, cfg.Impls) || c.Median == 0 {
				continue
			}
			if num, ok := row.Cells[ratioBase(impl)]; ok {
				row.Ratio[impl] = num.Median / c.Median
			}
		}
		rep.Rows = append(rep.Rows, row)
	}
	return rep
}

// ratioBase is the implementation impl's ratio column divides: mai for a
// peer, X for X@REV.
func ratioBase(impl string) string {
	if base, rev := splitRev(impl); rev != "" {
		return base
	}
	return "mai"
}

// hasRatio reports whether impl gets a ratio column in a run of impls: it
// is not mai itself, and what its ratio divides (ratioBase) ran too.
func hasRatio(impl string, impls []string) bool {
	return impl != "mai" && slices.Contains(impls, ratioBase(impl))
}

// rerender reads a results.json, summarizes its runs again, prints the
// table and redraws the chart beside it.
func rerender(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var old Report
	if err := json.Unmarshal(b, &old); err != nil {
		return err
	}
	rep := newReport(old.Config, old.Scenarios, old.Runs)
	rep.Date, rep.Machine, rep.Versions = old.Date, old.Machine, old.Versions
	rep.Profiles, rep.WallSec = old.Profiles, old.WallSec
	rep.print(os.Stdout)
	return rep.chart(filepath.Join(filepath.Dir(path), "chart.png"))
}

func (rep *Report) failed() bool {
	for _, r := range rep.Runs {
		if r.Err != "" {
			return true
		}
	}
	return false
}

func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100 || (v == math.Trunc(v) && a >= 2): // counts; a ratio of 1 keeps its decimals
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func fmtRatio(r float64) string {
	if r < 0.1 {
		return fmt.Sprintf("%.3f", r)
	}
	return fmt.Sprintf("%.2f", r)
}

func (c Cell) String() string {
	if c.N == 0 {
		return "-"
	}
	s := fmtNum(c.Median)
	if c.N > 1 {
		s += " (" + fmtNum(c.Min) + "-" + fmtNum(c.Max) + ")"
	}
	switch {
	case c.Disturbed == c.Runs:
		s += "*" // every run disturbed: the figures include the disturbance
	case c.Disturbed > 0:
		s += "~" // the disturbed runs were left out
	}
	return s
}

// print writes the table and its notes.
func (rep *Report) print(w io.Writer) {
	cfg := rep.Config
	fmt.Fprintf(w, "\nmai echo benchmark, %s\n", rep.Date)
	fmt.Fprintf(w, "machine: %s, %d CPUs, Linux %s, %s; server on CPU 0, load generator on CPU 1, GOMAXPROCS=1 each (pinned: %v)\n",
		rep.Machine.CPUModel, rep.Machine.CPUs, rep.Machine.Kernel, rep.Machine.Go, rep.Machine.Pinned)
	var vs []string
	for _, impl := range cfg.Impls {
		vs = append(vs, impl+" "+rep.Versions[impl])
	}
	fmt.Fprintf(w, "versions: %s\n", strings.Join(vs, ", "))
	if cfg.MaiArgs != "" {
		fmt.Fprintf(w, "mai server tuned with: %s\n", cfg.MaiArgs)
	}
	fmt.Fprintf(w, "%d round(s); each run: %v warm-up, %v measured. Cells: median (min-max) of the runs not disturbed by other work\n", cfg.Rounds, cfg.Warmup, cfg.Duration)
	fmt.Fprintf(w, "(other work over %.0f%% of a core); ~ = disturbed runs left out, * = every run was disturbed, all are counted.\n\n", cfg.ForeignMax)

	var peers []string // the ratio columns
	header := []string{"", "metric"}
	header = append(header, cfg.Impls...)
	for _, impl := range cfg.Impls {
		if hasRatio(impl, cfg.Impls) {
			peers = append(peers, impl)
			if b, rev := splitRev(impl); rev != "" {
				header = append(header, b+"/@"+rev)
			} else {
				header = append(header, "mai/"+impl)
			}
		}
	}
	table := [][]string{header}
	titles := map[string]string{}
	for _, sc := range rep.Scenarios {
		titles[sc.Key] = sc.Key + " " + sc.Title
	}
	last := ""
	for _, row := range rep.Rows {
		if row.Scenario != last {
			table = append(table, []string{titles[row.Scenario]})
			last = row.Scenario
		}
		dir := "(higher better)"
		if row.Lower {
			dir = "(lower better)"
		}
		line := []string{"", row.Metric + " " + dir}
		for _, impl := range cfg.Impls {
			line = append(line, row.Cells[impl].String())
		}
		for _, p := range peers {
			if r, ok := row.Ratio[p]; ok {
				line = append(line, fmtRatio(r))
			} else {
				line = append(line, "-")
			}
		}
		table = append(table, line)
	}
	writeTable(w, table)

	fmt.Fprintf(w, "\nmai/peer is the ratio of medians: below 1 means mai is lower (better where lower is better).\n")
	if len(cfg.Against) > 0 {
		fmt.Fprintf(w, "X/@REV is the ratio of X's median to the median of X built at revision REV: below 1 means the working tree is lower.\n")
	}
	for _, r := range rep.Runs {
		switch {
		case r.Err != "":
			fmt.Fprintf(w, "FAILED: %s round %d %s: %s\n", r.Scenario, r.Round, r.Impl, r.Err)
		case r.Disturbed:
			fmt.Fprintf(w, "disturbed: %s round %d %s: other work used %.0f%% of a core (steal %.0f%%)\n",
				r.Scenario, r.Round, r.Impl, r.Load.ForeignPct, r.Load.StealPct)
		}
	}
	for _, p := range rep.Profiles {
		lines := strings.Split(p.Top, "\n")
		fmt.Fprintf(w, "\n%s server %s profile under %s (%s):\n%s\n", p.Impl, p.Kind, p.Scenario, p.Path, strings.Join(lines[:min(len(lines), 22)], "\n"))
	}
}

// writeTable prints rows with columns padded to their widest cell. A row
// with one cell is a section title and does not count for widths.
func writeTable(w io.Writer, rows [][]string) {
	var width []int
	for _, r := range rows {
		if len(r) == 1 {
			continue
		}
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, r := range rows {
		if len(r) == 1 {
			fmt.Fprintln(w, r[0])
			continue
		}
		var b strings.Builder
		for i, c := range r {
			pad := width[i] - len([]rune(c))
			if i <= 1 {
				b.WriteString(c + strings.Repeat(" ", pad))
			} else {
				b.WriteString(strings.Repeat(" ", pad) + c)
			}
			b.WriteString("  ")
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

func (rep *Report) writeJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Pinned: taskset != ""}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// versions reads each server binary's build information for the version
// of the library it runs on; mai's is the repository's commit.
func versions(impls []string) map[string]string {
	mods := map[string]string{
		"netpoll": "github.com/cloudwego/netpoll",
		"gnet":    "github.com/panjf2000/gnet/v2",
		"nbio":    "github.com/lesismal/nbio",
	}
	out := map[string]string{"std": runtime.Version()}
	for _, impl := range impls {
		flags := strings.Join(implArgs(impl), " ")
		if _, rev := splitRev(impl); rev != "" {
			out[impl] = "(commit " + rev + ")"
			if flags != "" {
				out[impl] = "(commit " + rev + ", " + flags + ")"
			}
			continue
		}
		if impl != "mai" && isMai(impl) {
			out[impl] = "mai with " + flags
			continue
		}
		if impl == "mai" {
			rev, err := exec.Command("git", "-C", "..", "rev-parse", "--short", "HEAD").Output()
			if err == nil {
				out["mai"] = "@" + strings.TrimSpace(string(rev)) + " (working tree)"
			} else {
				out["mai"] = "(working tree)"
			}
			continue
		}
		mod, ok := mods[impl]
		if !ok {
			continue
		}
		bi, err := buildinfo.ReadFile(binPath(impl))
		if err != nil {
			continue
		}
		for _, d := range bi.Deps {
			if d.Path == mod {
				out[impl] = d.Version
			}
		}
	}
	return out
}
