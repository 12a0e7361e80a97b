// Package redistest starts real Redis binaries for the RESP example's tests:
// a redis-server on a loopback port, redis-cli and redis-benchmark runs.
//
// Tests that need a binary call Require: without it they skip, unless the
// environment variable CI is set, in which case they fail (CI installs
// redis-server and redis-tools).
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Require skips t when a binary is missing from PATH, or fails it when the
// environment variable CI is set.
func Require(t testing.TB, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found and CI is set: install redis-server and redis-tools: %v", b, err)
			}
			t.Skipf("%s not found (install redis-server and redis-tools): %v", b, err)
		}
	}
}

// Server is a redis-server process started by StartServer.
type Server struct {
	Addr string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

// StartServer starts redis-server on a free loopback port, without
// persistence, and waits until it answers PING. The process is killed (by
// its PID) when the test ends. A port taken between choosing it and
// redis-server binding it is retried with another.
func StartServer(t testing.TB, extra ...string) *Server {
	t.Helper()
	Require(t, "redis-server")
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s, err := startServer(t, port, extra)
		if err == nil {
			return s
		}
		lastErr = err
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	t.Fatalf("redis-server did not start: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startServer(t testing.TB, port int, extra []string) (*Server, error) {
	args := append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--dir", t.TempDir(), "--logfile", "",
	}, extra...)
	cmd := exec.Command("redis-server", args...)
	dieWithParent(cmd)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	// Wait for PONG, for the process to exit, or give up: bounded.
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("redis-server exited: %s", out.String())
		default:
		}
		if err := Ping(s.Addr); err == nil {
			t.Cleanup(s.Kill)
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Kill()
			return nil, fmt.Errorf("redis-server on %s did not answer PING in time: %s", s.Addr, out.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a port, bounded by the deadline
	}
}

// Kill kills the server process (SIGKILL, by its PID) and waits for it to
// exit. It may be called more than once.
func (s *Server) Kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill() // SIGKILL on Unix, to the process it started
	<-s.done
}

// Ping dials addr, sends PING and expects +PONG.
func Ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// CLI runs redis-cli against addr with args (a command, or options such as
// --pipe) and stdin, and returns its standard output. It fails t if
// redis-cli exits with an error or takes over a minute.
func CLI(t testing.TB, addr string, stdin []byte, args ...string) string {
	t.Helper()
	Require(t, "redis-cli")
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "redis-cli", append([]string{"-h", host, "-p", port}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("redis-cli %q: %v\nstdout: %s\nstderr: %s", args, err, out.String(), errOut.String())
	}
	return out.String()
}

// BenchResult is one line of redis-benchmark's --csv output.
type BenchResult struct {
	Test string
	RPS  float64
}

// Benchmark runs redis-benchmark against addr with args (say "-t",
// "ping,set,get", "-n", "20000") plus --csv, and returns its results. It
// fails t if redis-benchmark fails, prints to stderr (errors from the server
// are printed there), or gives no result.
func Benchmark(t testing.TB, addr string, args ...string) []BenchResult {
	t.Helper()
	Require(t, "redis-benchmark")
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "redis-benchmark", append([]string{"-h", host, "-p", port, "--csv"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil || errOut.Len() > 0 {
		t.Fatalf("redis-benchmark %q: %v\nstdout: %s\nstderr: %s", args, err, out.String(), errOut.String())
	}
	res, perr := ParseCSV(out.String())
	if perr != nil || len(res) == 0 {
		t.Fatalf("redis-benchmark %q output: %v\n%s", args, perr, out.String())
	}
	return res
}

// ParseCSV parses redis-benchmark --csv output: a header line, then
// "TEST","RPS",... per test.
func ParseCSV(s string) ([]BenchResult, error) {
	var res []BenchResult
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Split(strings.TrimSpace(line), ",")
		if len(f) < 2 || f[0] == `"test"` {
			continue
		}
		rps, err := strconv.ParseFloat(strings.Trim(f[1], `"`), 64)
		if err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		res = append(res, BenchResult{Test: strings.Trim(f[0], `"`), RPS: rps})
	}
	if len(res) == 0 {
		return nil, errors.New("no results")
	}
	return res, nil
}
