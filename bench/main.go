// Command bench runs mai's echo server side by side with the same server
// written on raw netpoll, gnet, nbio and Go's net package, and prints one
// table with each one's figures and mai's ratio to each peer. It also
// writes the results as JSON and draws a chart.
//
//	cd bench && go run .          # the full suite, about 7 minutes
//	cd bench && go run . -quick   # a smoke test, under 2 minutes
//
// For an A/B of a change to mai, -against builds mai's server at another
// revision too, and -detail adds each server's user and system CPU time
// and its system calls per frame (counted with perf stat):
//
//	cd bench && go run . -scenarios s4 -impls mai,netpoll -against HEAD -detail
//
// Every run starts a fresh server process pinned to CPU 0 and a load
// generator process pinned to CPU 1, both with GOMAXPROCS=1. See README.md.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// allImpls is every implementation, mai first.
var allImpls = []string{"mai", "mai-epoll", "netpoll", "gnet", "nbio", "std"}

// serverPkg is the package an implementation's server is built from:
// mai-epoll is mai's server on mai.TransportEpoll (see implArgs).
func serverPkg(impl string) string {
	base, _ := splitRev(impl)
	if base == "mai-epoll" {
		return "./servers/mai"
	}
	return "./servers/" + base
}

// implArgs are the server flags an implementation always runs with.
func implArgs(impl string) []string {
	if base, _ := splitRev(impl); base == "mai-epoll" {
		return []string{"-transport", "epoll"}
	}
	return nil
}

// splitRev splits "mai@REV", mai's server built at revision REV (see
// -against), into "mai" and REV; rev is "" for the working tree's.
func splitRev(impl string) (base, rev string) {
	base, rev, _ = strings.Cut(impl, "@")
	return base, rev
}

// isMai reports whether impl is mai's server, on either transport and at
// any revision.
func isMai(impl string) bool {
	base, _ := splitRev(impl)
	return base == "mai" || base == "mai-epoll"
}

// scenario is one load shape.
type scenario struct {
	Key   string `json:"key"`
	Title string `json:"title"`
	Mode  string `json:"mode"` // loadgen -mode
	Conns int    `json:"conns"`
	Size  int    `json:"size"`
	Depth int    `json:"depth,omitempty"`
}

func scenarios(idleConns int) []scenario {
	return []scenario{
		{Key: "s1", Title: "100 conns, 64 B, closed loop", Mode: "closed", Conns: 100, Size: 64},
		{Key: "s2", Title: "100 conns, 64 B, pipeline depth 16", Mode: "pipeline", Conns: 100, Size: 64, Depth: 16},
		{Key: "s3", Title: "1,000 conns, 512 B, closed loop", Mode: "closed", Conns: 1000, Size: 512},
		{Key: "s4", Title: "4 conns, 64 KiB frames, streaming (8 in flight)", Mode: "stream", Conns: 4, Size: 64 << 10, Depth: 8},
		{Key: "s5", Title: fmt.Sprintf("memory, %d idle conns", idleConns), Mode: "idle", Conns: idleConns, Size: 64},
	}
}

// config is the run's settings, kept in the JSON.
type config struct {
	Quick      bool          `json:"quick"`
	Rounds     int           `json:"rounds"`
	Warmup     time.Duration `json:"warmup_ns"`
	Duration   time.Duration `json:"duration_ns"`
	IdleConns  int           `json:"idle_conns"`
	ForeignMax float64       `json:"foreign_max_pct"`
	Impls      []string      `json:"impls"`
	Scenarios  []string      `json:"scenarios"`
	MaiArgs    string        `json:"mai_args,omitempty"`
	Against    []string      `json:"against,omitempty"` // revisions mai was also built at
	Detail     bool          `json:"detail,omitempty"`  // user/system CPU and system calls reported
}

var (
	binDir  string
	taskset string
	maiArgs string
)

func binPath(name string) string { return filepath.Join(binDir, "echo-"+name) }

func main() {
	quick := flag.Bool("quick", false, "smoke test: 1 round, short windows, 1,000 idle connections")
	rounds := flag.Int("rounds", 3, "rounds; implementations alternate within each")
	warmup := flag.Duration("warmup", time.Second, "warm-up before each measured window")
	duration := flag.Duration("duration", 3*time.Second, "measured window of each run")
	idleConns := flag.Int("idle-conns", 10000, "idle connections in the memory scenario")
	implList := flag.String("impls", strings.Join(allImpls, ","), "implementations to run")
	scenList := flag.String("scenarios", "s1,s2,s3,s4,s5", "scenarios to run")
	outDir := flag.String("out", "results", "directory for results.json, chart.png and profiles (-quick: a temporary directory)")
	foreignMax := flag.Float64("foreign-max", 15, "flag a run as disturbed when other work used more than this % of a core")
	profile := flag.String("profile", "s1", "after the suite, profile the servers of -profile-impls (CPU and allocations) under these scenarios; \"\" for none")
	profImpls := flag.String("profile-impls", "mai", "servers to profile")
	flag.StringVar(&maiArgs, "mai-args", "", "extra flags for mai's server, e.g. \"-write-high 262144 -write-low 131072\" (see servers/mai)")
	retries := flag.Int("retries", 2, "re-run a disturbed run up to this many times, keeping the least disturbed, while -budget allows")
	budget := flag.Duration("budget", 8*time.Minute, "time the suite should take at most; retries stop when it would run over")
	detail := flag.Bool("detail", false, "also report each server's user and system CPU per frame and, counted by perf stat in a second window of each run, its system calls per frame (needs perf, and root or kernel.perf_event_paranoid=-1)")
	against := flag.String("against", "", "comma-separated git revisions: also run mai's servers built at each, as mai@REV (and mai-epoll@REV), for an A/B of a change; results go to a temporary directory unless -out is given")
	reportOnly := flag.String("report", "", "only print the table and redraw the chart of an earlier `results.json` (into the same directory)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	if *reportOnly != "" {
		if err := rerender(*reportOnly); err != nil {
			log.Fatal(err)
		}
		return
	}

	cfg := config{Quick: *quick, Rounds: *rounds, Warmup: *warmup, Duration: *duration,
		IdleConns: *idleConns, ForeignMax: *foreignMax, MaiArgs: maiArgs, Detail: *detail}
	if *detail {
		if _, err := exec.LookPath("perf"); err != nil {
			log.Fatal("-detail counts system calls with perf, which is not on PATH (Debian: apt-get install linux-perf)")
		}
	}
	if *against != "" && !flagSet("out") { // keep the committed results of a full run
		*outDir = filepath.Join(os.TempDir(), "mai-bench-against")
	}
	if *quick {
		cfg.Rounds, cfg.Warmup, cfg.Duration = 1, 200*time.Millisecond, 500*time.Millisecond
		if !flagSet("idle-conns") {
			cfg.IdleConns = 1000
		}
		if !flagSet("profile") {
			*profile = ""
		}
		if !flagSet("budget") {
			*budget = 90 * time.Second
		}
		if !flagSet("out") { // keep the committed results of a full run
			*outDir = filepath.Join(os.TempDir(), "mai-bench-quick")
		}
	}
	for _, s := range strings.Split(*implList, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !slices.Contains(allImpls, s) {
				log.Fatalf("unknown implementation %q", s)
			}
			cfg.Impls = append(cfg.Impls, s)
		}
	}
	var scens []scenario
	for _, sc := range scenarios(cfg.IdleConns) {
		if slices.Contains(strings.Split(*scenList, ","), sc.Key) {
			scens = append(scens, sc)
			cfg.Scenarios = append(cfg.Scenarios, sc.Key)
		}
	}
	if len(cfg.Impls) == 0 || len(scens) == 0 {
		log.Fatal("nothing to run")
	}
	if *against != "" {
		revs, err := resolveRevs(*against)
		if err != nil {
			log.Fatal(err)
		}
		if !slices.ContainsFunc(cfg.Impls, isMai) { // nothing to build at them
			log.Fatal("-against needs mai or mai-epoll in -impls")
		}
		cfg.Against = revs
		cfg.Impls = withRevs(cfg.Impls, revs)
	}

	start := time.Now()
	if p, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
		taskset = p
	} else {
		log.Printf("warning: taskset or a second CPU is missing: processes are not pinned")
	}
	var err error
	if binDir, err = os.MkdirTemp("", "mai-bench-"); err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(binDir)
	cfg.Impls, err = buildAll(cfg.Impls, cfg.Against)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Fatal(err)
	}
	log.Printf("built in %v; %d rounds of %d scenarios x %d implementations",
		time.Since(start).Round(time.Second), cfg.Rounds, len(scens), len(cfg.Impls))

	var runs []Run
	total := cfg.Rounds * len(scens) * len(cfg.Impls)
	var spent time.Duration // wall time of the runs done, for the estimate
	executed := 0
	for round := 1; round <= cfg.Rounds; round++ {
		for _, sc := range scens {
			// Rotate the order each round so no implementation always
			// runs first or right after the same one.
			order := slices.Clone(cfg.Impls)
			k := (round - 1) % len(order)
			order = append(order[k:], order[:k]...)
			for _, impl := range order {
				r := runOne(cfg, sc, impl, round)
				logRun(r)
				spent += time.Duration(r.WallSec * float64(time.Second))
				executed++
				for try := 0; try < *retries && r.Disturbed; try++ {
					left := total - len(runs) - 1
					avg := spent / time.Duration(executed)
					reserve := 20 * time.Second // profiling, report, chart
					if time.Since(start)+time.Duration(left+1)*avg+reserve > *budget {
						break
					}
					again := runOne(cfg, sc, impl, round)
					again.Retries = r.Retries + 1
					spent += time.Duration(again.WallSec * float64(time.Second))
					executed++
					log.Printf("  retry %d of a disturbed run:", again.Retries)
					logRun(again)
					if again.Err != "" || again.Load.ForeignPct < r.Load.ForeignPct {
						r = again
					} else {
						r.Retries = again.Retries
					}
				}
				runs = append(runs, r)
			}
		}
	}

	rep := newReport(cfg, scens, runs)
	for _, key := range strings.Split(*profile, ",") {
		for _, sc := range scenarios(cfg.IdleConns) {
			if sc.Key != key || sc.Mode == "idle" {
				continue
			}
			for _, impl := range strings.Split(*profImpls, ",") {
				if slices.Contains(cfg.Impls, impl) {
					rep.Profiles = append(rep.Profiles, profile1(cfg, sc, impl, *outDir)...)
				}
			}
		}
	}
	rep.WallSec = time.Since(start).Seconds()
	rep.print(os.Stdout)
	if err := rep.writeJSON(filepath.Join(*outDir, "results.json")); err != nil {
		log.Printf("writing JSON: %v", err)
	}
	if err := rep.chart(filepath.Join(*outDir, "chart.png")); err != nil {
		log.Printf("drawing chart: %v", err)
	}
	fmt.Printf("\nwrote %s and %s in %v\n", filepath.Join(*outDir, "results.json"),
		filepath.Join(*outDir, "chart.png"), time.Since(start).Round(time.Second))
	if rep.failed() {
		os.Exit(1)
	}
}

// goTool returns the go command: the one on PATH, else the one under
// $GOROOT (go run sets it for the program it runs).
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// buildAll builds the load generator and the servers, those of impls
// named mai@REV from a temporary git worktree at REV (revs). A server that
// does not build is left out with a warning (mai's engine may be
// mid-change); the load generator must build.
func buildAll(impls, revs []string) ([]string, error) {
	goBin := goTool()
	build := func(dir, out, pkg string) error {
		cmd := exec.Command(goBin, "build", "-o", out, pkg)
		cmd.Dir = dir
		cmd.Stderr = os.Stderr
		return cmd.Run()
	}
	if err := build("", binPath("loadgen"), "./loadgen"); err != nil {
		return nil, fmt.Errorf("building the load generator: %w", err)
	}
	trees := map[string]string{"": ""} // revision -> its bench directory
	for _, rev := range revs {
		dir, cleanup, err := checkout(rev)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		trees[rev] = dir
	}
	var ok []string
	for _, impl := range impls {
		_, rev := splitRev(impl)
		if err := build(trees[rev], binPath(impl), serverPkg(impl)); err != nil {
			if rev != "" { // asked for by name: no silent gap in the A/B
				return nil, fmt.Errorf("building %s: %w", impl, err)
			}
			log.Printf("warning: %s does not build, left out: %v", impl, err)
			continue
		}
		ok = append(ok, impl)
	}
	if len(ok) == 0 {
		return nil, fmt.Errorf("no server builds")
	}
	return ok, nil
}

func logRun(r Run) {
	switch {
	case r.Err != "":
		log.Printf("%s r%d %-9s FAILED: %s", r.Scenario, r.Round, r.Impl, r.Err)
	case r.Mem != nil:
		log.Printf("%s r%d %-9s %6.2f KiB/conn idle, %6.2f after echo, %d goroutines",
			r.Scenario, r.Round, r.Impl, r.Mem.IdleKiBPerConn, r.Mem.EchoKiBPerConn, r.Mem.EchoStats.Goroutines)
	default:
		flag := ""
		if r.Disturbed {
			flag = fmt.Sprintf("  DISTURBED (other work %.0f%% of a core)", r.Load.ForeignPct)
		}
		if sc := r.Load.Syscalls; sc != nil {
			flag = fmt.Sprintf("  %.2f syscalls/frame%s", sc.Total, flag)
		}
		log.Printf("%s r%d %-9s %9.0f frames/s %8.1f MB/s  %6.2f us/frame server CPU  p99 %8.0f us%s",
			r.Scenario, r.Round, r.Impl, r.Load.FramesPerSec, r.Load.MBPerSec,
			r.Load.ServerUsPerFrame, r.Load.P99us, flag)
	}
}

// resolveRevs turns a comma-separated list of git revisions into short
// commit hashes.
func resolveRevs(list string) ([]string, error) {
	var revs []string
	for _, r := range strings.Split(list, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		out, err := exec.Command("git", "rev-parse", "--short", "--verify", r+"^{commit}").Output()
		if err != nil {
			return nil, fmt.Errorf("-against %s: not a commit of this repository", r)
		}
		if h := strings.TrimSpace(string(out)); !slices.Contains(revs, h) {
			revs = append(revs, h)
		}
	}
	return revs, nil
}

// withRevs adds, after each mai server in impls, the same server at each
// of revs.
func withRevs(impls, revs []string) []string {
	var out []string
	for _, impl := range impls {
		out = append(out, impl)
		if isMai(impl) {
			for _, rev := range revs {
				out = append(out, impl+"@"+rev)
			}
		}
	}
	return out
}

// checkout makes a detached git worktree of the repository at rev in a
// temporary directory and returns its bench directory, and how to remove
// the worktree again.
func checkout(rev string) (dir string, cleanup func(), err error) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", nil, fmt.Errorf("-against needs the git repository: %w", err)
	}
	root := strings.TrimSpace(string(top))
	wt := filepath.Join(binDir, "src-"+rev)
	cmd := exec.Command("git", "-C", root, "worktree", "add", "--quiet", "--detach", wt, rev)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", nil, fmt.Errorf("git worktree add %s: %w", rev, err)
	}
	cleanup = func() {
		if err := exec.Command("git", "-C", root, "worktree", "remove", "--force", wt).Run(); err != nil {
			log.Printf("warning: removing the worktree %s: %v", wt, err)
		}
	}
	return filepath.Join(wt, "bench"), cleanup, nil
}
