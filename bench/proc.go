package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mai-go/mai/bench/internal/srvkit"
)

// child is a benchmark process (a server or the load generator) with its
// control channel: lines written to its stdin, lines read from its stdout.
type child struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *capBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // exit status, valid after done
	// workload is the PID of the program when cmd is the perf stat that
	// runs it, else 0.
	workload int
}

// startChild runs bin with args pinned to cpu (when pinning works) and
// GOMAXPROCS=1, under ps when ps is not nil.
func startChild(name string, cpu int, ps *perfStat, bin string, args ...string) (*child, error) {
	argv := append([]string{bin}, args...)
	if taskset != "" {
		argv = append([]string{taskset, "-c", strconv.Itoa(cpu)}, argv...)
	}
	if ps != nil {
		argv = ps.wrap(argv)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	c := &child{name: name, cmd: cmd, lines: make(chan string, 16), stderr: &capBuffer{max: 8 << 10}, done: make(chan struct{})}
	cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// pid is the program's process ID (taskset execs the program, so it keeps
// taskset's; perf stat forks it).
func (c *child) pid() int {
	if c.workload != 0 {
		return c.workload
	}
	return c.cmd.Process.Pid
}

// expect waits up to d for a line that starts with prefix and returns the
// rest of it; other lines are ignored.
func (c *child) expect(prefix string, d time.Duration) (string, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				<-c.done
				return "", fmt.Errorf("%s exited (%v) before %q: %s", c.name, c.err, prefix, c.stderr.String())
			}
			if rest, found := strings.CutPrefix(line, prefix); found {
				return strings.TrimSpace(rest), nil
			}
			if strings.HasPrefix(line, "ERROR") {
				return "", fmt.Errorf("%s: %s", c.name, line)
			}
		case <-timer.C:
			return "", fmt.Errorf("%s: no %q within %v: %s", c.name, prefix, d, c.stderr.String())
		}
	}
}

func (c *child) send(cmd string) error {
	_, err := io.WriteString(c.stdin, cmd+"\n")
	return err
}

// wait waits up to d for the process to exit, then kills it (by its PID),
// and the program under it first when it is a perf stat: perf waits for
// its program, which a kill of perf would leave running.
func (c *child) wait(d time.Duration) error {
	select {
	case <-c.done:
		return c.err
	case <-time.After(d):
		if c.workload != 0 {
			_ = syscall.Kill(c.workload, syscall.SIGKILL)
		}
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s: killed after %v", c.name, d)
	}
}

// stop asks the process to finish (the quit command, then end of input)
// and waits for it.
func (c *child) stop(quit string) error {
	if quit != "" {
		_ = c.send(quit)
	}
	c.stdin.Close()
	return c.wait(10 * time.Second)
}

// server is a running echo server.
type server struct {
	*child
	addr string
}

// startServer runs impl's server on CPU 0, under ps when ps is not nil, and
// waits for its address.
func startServer(impl string, ps *perfStat, args ...string) (*server, error) {
	c, err := startChild(impl, 0, ps, binPath(impl), args...)
	if err != nil {
		return nil, err
	}
	addr, err := c.expect("ADDR ", 20*time.Second)
	if err == nil && ps != nil {
		c.workload, err = workloadPID(c.cmd.Process.Pid)
	}
	if err != nil {
		c.stop("quit")
		return nil, err
	}
	return &server{child: c, addr: addr}, nil
}

func (s *server) stats() (srvkit.Stats, error) {
	var st srvkit.Stats
	if err := s.send("stats"); err != nil {
		return st, err
	}
	line, err := s.expect("STATS ", 20*time.Second)
	if err != nil {
		return st, err
	}
	err = json.Unmarshal([]byte(line), &st)
	return st, err
}

// capBuffer keeps the first max bytes written to it.
type capBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *capBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}
