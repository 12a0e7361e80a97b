package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"testing"

	"github.com/mai-go/mai/bench/internal/stats"
)

// needPerf skips a test without perf, except in CI, which installs it.
func needPerf(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("perf"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("perf is not installed; .ci/run installs it")
		}
		t.Skip("perf is not installed")
	}
}

// TestPerfStatCountsNewProcesses checks what the -detail figures rest on:
// the perf stat a server runs under counts, between Enable's return and
// Disable, the system calls of the server and of the threads and processes
// it starts inside that window, and nothing outside it. The workload says
// "ready", waits for a line, starts a shell that makes 200 writes, and
// says "done"; then it only reads.
func TestPerfStatCountsNewProcesses(t *testing.T) {
	needPerf(t)
	ps, err := newPerfStat()
	if err != nil {
		t.Fatal(err)
	}
	defer ps.remove()
	const script = `echo ready; read go; sh -c 'i=0; while [ $i -lt 200 ]; do echo x; i=$((i+1)); done' >/dev/null; echo done; read end || :`
	argv := ps.wrap([]string{"sh", "-c", script})
	cmd := exec.Command(argv[0], argv[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() // on a failure below; a no-op once it has exited
	lines := bufio.NewScanner(stdout)
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("workload said %q (%v), want %q", lines.Text(), lines.Err(), want)
		}
	}
	expect("ready")
	pc, err := stats.OpenPerfControl(ps.ctl, ps.ack)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.Enable(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	expect("done")
	if err := pc.Disable(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	counts, err := ps.counts()
	if err != nil {
		t.Fatal(err)
	}
	// 200 from the new shell and 1 for "done"; "ready", before the
	// window, must not count.
	if w := counts["syscalls:sys_enter_write"]; w < 201 || w > 210 {
		t.Errorf("writes counted in the window: %d, want 201 (the new process's 200 and \"done\"); counts %v", w, counts)
	}
}
