package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/examples/resp/client"
	"github.com/mai-go/mai/examples/resp/internal/redistest"
	"github.com/mai-go/mai/examples/resp/resp"
	"github.com/mai-go/mai/examples/resp/store"
)

// TestMain lets TestMainSignals run this binary as the server's main.
func TestMain(m *testing.M) {
	if os.Getenv("RESP_SERVER_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// transports are the engine's I/O layers the tests run the server on.
var transports = []mai.Transport{mai.TransportNetpoll, mai.TransportStd, mai.TransportEpoll}

// eachTransport runs f as a subtest per transport, with a server on it.
func eachTransport(t *testing.T, f func(t *testing.T, addr string)) {
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) { f(t, startMaiOn(t, tr)) })
	}
}

func startMai(t *testing.T) string { return startMaiOn(t, mai.TransportAuto) }

func startMaiOn(t *testing.T, tr mai.Transport) string {
	t.Helper()
	s, err := Start("127.0.0.1:0", Config{Transport: tr})
	if errors.Is(err, mai.ErrUnsupported) {
		t.Skipf("transport %v: %v", tr, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s.Addr().String()
}

// cliScript is a session of commands with the output redis-cli --no-raw
// prints for each, as redis-server 7.0 answers them; TestRedisCLI checks the
// mai server against it and, when redis-server is installed, checks that
// redis-server gives the same outputs.
var cliScript = []struct {
	args []string
	want string
}{
	{[]string{"FLUSHALL"}, "OK"},
	{[]string{"PING"}, "PONG"},
	{[]string{"ping", "hello world"}, `"hello world"`},
	{[]string{"PING", "a", "b"}, "(error) ERR wrong number of arguments for 'ping' command"},
	{[]string{"ECHO", "hi\nthere"}, `"hi\nthere"`},
	{[]string{"ECHO"}, "(error) ERR wrong number of arguments for 'echo' command"},
	{[]string{"ECHO", "a", "b"}, "(error) ERR wrong number of arguments for 'echo' command"},
	{[]string{"SET", "k", "v"}, "OK"},
	{[]string{"GET", "k"}, `"v"`},
	{[]string{"GET", "missing"}, "(nil)"},
	{[]string{"GET"}, "(error) ERR wrong number of arguments for 'get' command"},
	{[]string{"SET", "k"}, "(error) ERR wrong number of arguments for 'set' command"},
	{[]string{"SET", "k", "v2", "XX"}, "OK"},
	{[]string{"SET", "k", "v3", "nx"}, "(nil)"},
	{[]string{"SET", "n1", "x", "NX"}, "OK"},
	{[]string{"SET", "n2", "x", "XX"}, "(nil)"},
	{[]string{"SET", "k", "v4", "GET"}, `"v2"`},
	{[]string{"SET", "fresh", "v", "GET"}, "(nil)"},
	{[]string{"SET", "k", "v", "NX", "XX"}, "(error) ERR syntax error"},
	{[]string{"SET", "k", "v", "EX", "10", "PX", "10"}, "(error) ERR syntax error"},
	{[]string{"SET", "k", "v", "EX"}, "(error) ERR syntax error"},
	{[]string{"SET", "k", "v", "FOO"}, "(error) ERR syntax error"},
	{[]string{"SET", "k", "v", "EX", "0"}, "(error) ERR invalid expire time in 'set' command"},
	{[]string{"SET", "k", "v", "PX", "-5"}, "(error) ERR invalid expire time in 'set' command"},
	{[]string{"SET", "k", "v", "EX", "abc"}, "(error) ERR value is not an integer or out of range"},
	{[]string{"SET", "k", "v", "EX", "100"}, "OK"},
	{[]string{"TTL", "k"}, "(integer) 100"},
	{[]string{"SET", "k", "v5", "KEEPTTL"}, "OK"},
	{[]string{"TTL", "k"}, "(integer) 100"},
	{[]string{"SET", "k", "v", "px", "200000"}, "OK"},
	{[]string{"TTL", "k"}, "(integer) 200"},
	{[]string{"SET", "k", "v", "EX", "10", "EX", "300"}, "OK"}, // a repeated expiry: the last wins
	{[]string{"TTL", "k"}, "(integer) 300"},
	{[]string{"SET", "k", "v", "EX", "10", "PX", "300"}, "(error) ERR syntax error"},
	{[]string{"SET", "k", "v"}, "OK"},
	{[]string{"TTL", "k"}, "(integer) -1"},
	{[]string{"TTL", "missing"}, "(integer) -2"},
	{[]string{"DEL", "k", "n1", "missing", "k"}, "(integer) 2"},
	{[]string{"DEL"}, "(error) ERR wrong number of arguments for 'del' command"},
	{[]string{"EXISTS", "k"}, "(integer) 0"},
	{[]string{"SET", "a", "1"}, "OK"},
	{[]string{"EXISTS", "a", "a", "missing"}, "(integer) 2"},
	{[]string{"EXISTS"}, "(error) ERR wrong number of arguments for 'exists' command"},
	{[]string{"INCR", "counter"}, "(integer) 1"},
	{[]string{"INCR", "counter"}, "(integer) 2"},
	{[]string{"INCR", "a"}, "(integer) 2"},
	{[]string{"GET", "a"}, `"2"`},
	{[]string{"SET", "s", "abc"}, "OK"},
	{[]string{"INCR", "s"}, "(error) ERR value is not an integer or out of range"},
	{[]string{"SET", "s", " 1"}, "OK"},
	{[]string{"INCR", "s"}, "(error) ERR value is not an integer or out of range"},
	{[]string{"SET", "big", "9223372036854775807"}, "OK"},
	{[]string{"INCR", "big"}, "(error) ERR increment or decrement would overflow"},
	{[]string{"INCR"}, "(error) ERR wrong number of arguments for 'incr' command"},
	{[]string{"INCR", "a", "b"}, "(error) ERR wrong number of arguments for 'incr' command"},
	{[]string{"MSET", "m1", "1", "m2", "two words"}, "OK"},
	{[]string{"MSET", "m1"}, "(error) ERR wrong number of arguments for 'mset' command"},
	{[]string{"MSET", "m1", "1", "m2"}, "(error) ERR wrong number of arguments for 'mset' command"},
	{[]string{"MGET", "m1", "missing", "m2"}, "1) \"1\"\n2) (nil)\n3) \"two words\""},
	{[]string{"MGET"}, "(error) ERR wrong number of arguments for 'mget' command"},
	{[]string{"DBSIZE"}, "(integer) 7"},
	{[]string{"FOO", "bar", "baz"}, "(error) ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' "},
	{[]string{"foo"}, "(error) ERR unknown command 'foo', with args beginning with: "},
	{[]string{"foo", "a\r\nb"}, "(error) ERR unknown command 'foo', with args beginning with: 'a  b' "},
	{[]string{"foo", strings.Repeat("x", 130), "y"}, "(error) ERR unknown command 'foo', with args beginning with: '" + strings.Repeat("x", 128) + "' "},
	{[]string{"CONFIG", "GET", "save"}, "1) \"save\"\n2) \"\""},
	{[]string{"CONFIG", "GET", "appendonly"}, "1) \"appendonly\"\n2) \"no\""},
	{[]string{"SELECT", "0"}, "OK"},
}

func cliOutput(t *testing.T, addr string) []string {
	out := make([]string, len(cliScript))
	for i, step := range cliScript {
		out[i] = strings.TrimSuffix(redistest.CLI(t, addr, nil, append([]string{"--no-raw"}, step.args...)...), "\n")
	}
	return out
}

// TestRedisCLI drives the mai server with redis-cli, one command per
// redis-cli run, and checks every reply.
func TestRedisCLI(t *testing.T) {
	redistest.Require(t, "redis-cli")
	eachTransport(t, func(t *testing.T, addr string) {
		got := cliOutput(t, addr)
		for i, step := range cliScript {
			if got[i] != step.want {
				t.Errorf("step %d %q:\n got %q\nwant %q", i, step.args, got[i], step.want)
			}
		}
	})
}

// TestScriptMatchesRedis holds the script's expectations against the real
// redis-server.
func TestScriptMatchesRedis(t *testing.T) {
	redistest.Require(t, "redis-cli", "redis-server")
	got := cliOutput(t, redistest.StartServer(t).Addr)
	for i, step := range cliScript {
		if got[i] != step.want {
			t.Errorf("redis-server, step %d %q:\n got %q\nwant %q", i, step.args, got[i], step.want)
		}
	}
}

// TestRedisCLIConnectCalls covers what clients send at connect.
func TestRedisCLIConnectCalls(t *testing.T) {
	redistest.Require(t, "redis-cli")
	addr := startMai(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"COMMAND", "DOCS"}, "(empty array)"},
		{[]string{"COMMAND"}, "(empty array)"},
		{[]string{"CLIENT", "SETNAME", "x"}, "OK"},
		{[]string{"CONFIG", "GET", "nothing"}, "(empty array)"},
		{[]string{"CONFIG", "NOPE"}, "(error) ERR unknown subcommand 'NOPE'. Try CONFIG HELP."},
		{[]string{"SELECT", "1"}, "(error) ERR DB index is out of range"},
		{[]string{"QUIT"}, "OK"},
	} {
		got := strings.TrimSuffix(redistest.CLI(t, addr, nil, append([]string{"--no-raw"}, c.args...)...), "\n")
		if got != c.want {
			t.Errorf("%q: got %q, want %q", c.args, got, c.want)
		}
	}
	// Commands read from standard input, one per line, on one connection.
	got := redistest.CLI(t, addr, []byte("SET x 41\nINCR x\nGET x\n"), "--no-raw")
	if want := "OK\n(integer) 42\n\"42\"\n"; got != want {
		t.Errorf("stdin session: got %q, want %q", got, want)
	}
}

// TestRedisCLIPipe sends 20000 commands at once with redis-cli --pipe, the
// mass-insertion mode: the replies must all come back, without errors.
func TestRedisCLIPipe(t *testing.T) {
	redistest.Require(t, "redis-cli")
	addr := startMai(t)
	const n = 20000
	var in []byte
	for i := 0; i < n; i++ {
		cmd := resp.Command("SET", "key:"+strconv.Itoa(i), strconv.Itoa(i*i))
		in, _ = resp.AppendValue(in, cmd, resp.Config{})
	}
	out := redistest.CLI(t, addr, in, "--pipe")
	if !strings.Contains(out, fmt.Sprintf("errors: 0, replies: %d", n)) {
		t.Fatalf("redis-cli --pipe: %s", out)
	}
	if got := strings.TrimSpace(redistest.CLI(t, addr, nil, "GET", "key:1234")); got != strconv.Itoa(1234*1234) {
		t.Fatalf("GET key:1234 = %q", got)
	}
	if got := strings.TrimSpace(redistest.CLI(t, addr, nil, "DBSIZE")); got != strconv.Itoa(n) {
		t.Fatalf("DBSIZE = %q", got)
	}
}

// TestRedisBenchmark runs redis-benchmark against the mai server, with and
// without pipelining; redistest.Benchmark fails on any error reply.
func TestRedisBenchmark(t *testing.T) {
	redistest.Require(t, "redis-benchmark")
	eachTransport(t, testRedisBenchmark)
}

func testRedisBenchmark(t *testing.T, addr string) {
	for _, p := range []string{"1", "16"} {
		res := redistest.Benchmark(t, addr, "-t", "ping,set,get", "-n", "20000", "-c", "20", "-P", p)
		seen := map[string]bool{}
		for _, r := range res {
			if r.RPS <= 0 {
				t.Errorf("-P %s %s: %v requests/s", p, r.Test, r.RPS)
			}
			seen[r.Test] = true
			t.Logf("-P %s %s: %.0f requests/s", p, r.Test, r.RPS)
		}
		for _, test := range []string{"PING_INLINE", "PING_MBULK", "SET", "GET"} {
			if !seen[test] {
				t.Errorf("-P %s: no result for %s in %v", p, test, res)
			}
		}
	}
}

// exchange writes in to addr in pieces (sizes from a seeded generator, so
// the split is deterministic; seed 0 writes it at once) and reads until the
// server closes or n lines have been read.
func exchange(t *testing.T, addr string, in []byte, lines int, seed uint64) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		r := rand.New(rand.NewPCG(seed, 1))
		for len(in) > 0 {
			k := len(in)
			if seed != 0 {
				k = min(1+r.IntN(64), len(in))
			}
			if _, err := c.Write(in[:k]); err != nil {
				return
			}
			in = in[k:]
		}
	}()
	br := bufio.NewReader(c)
	var out []string
	for lines < 0 || len(out) < lines {
		line, err := br.ReadString('\n')
		if err == io.EOF && line == "" {
			break
		}
		if err != nil {
			t.Fatalf("after %d lines: %v", len(out), err)
		}
		out = append(out, line)
	}
	return out
}

// TestPipelineInOrder sends 2000 mixed commands in small pieces that cut
// frames anywhere, inline commands among them, and checks every reply comes
// back in order.
func TestPipelineInOrder(t *testing.T) { eachTransport(t, testPipelineInOrder) }

func testPipelineInOrder(t *testing.T, addr string) {
	var in []byte
	var want []string
	for i := 0; i < 2000; i++ {
		s := strconv.Itoa(i)
		switch i % 4 {
		case 0:
			in, _ = resp.AppendValue(in, resp.Command("ECHO", "e"+s), resp.Config{})
			want = append(want, "$"+strconv.Itoa(len(s)+1)+"\r\n", "e"+s+"\r\n")
		case 1:
			in = append(in, "INCR ctr\r\n"...)
			want = append(want, ":"+strconv.Itoa(i/4+1)+"\r\n")
		case 2:
			in, _ = resp.AppendValue(in, resp.Command("SET", "k"+s, s), resp.Config{})
			want = append(want, "+OK\r\n")
		case 3:
			in, _ = resp.AppendValue(in, resp.Command("GET", "k"+strconv.Itoa(i-1)), resp.Config{})
			p := strconv.Itoa(i - 1)
			want = append(want, "$"+strconv.Itoa(len(p))+"\r\n", p+"\r\n")
		}
	}
	got := exchange(t, addr, in, len(want), 7)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("line %d: got %q, want %q", i, got[i], want[i])
		}
	}
}

// protocolCases are malformed requests; the server answers as redis-server
// does and closes the connection.
var protocolCases = []struct{ in, want string }{
	{"*1\r\n+PING\r\n", "-ERR Protocol error: expected '$', got '+'\r\n"},
	{"*1\r\n$99999999999\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
	{"*99999999999\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
	{"PING\r\n\"abc\r\n", "+PONG\r\n-ERR Protocol error: unbalanced quotes in request\r\n"},
	{"*2\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
}

// TestSkippedCommands: Redis skips an array of any count <= 0 and answers
// the next command (mai once closed the connection at *-5).
func TestSkippedCommands(t *testing.T) {
	check := func(t *testing.T, addr string) {
		for _, in := range []string{"*-5\r\nPING\r\n", "*0\r\n*-1\r\nPING\r\n"} {
			if got := strings.Join(exchange(t, addr, []byte(in), 1, 0), ""); got != "+PONG\r\n" {
				t.Errorf("%q: got %q, want +PONG", in, got)
			}
		}
	}
	t.Run("mai", func(t *testing.T) { eachTransport(t, check) })
	t.Run("redis-server", func(t *testing.T) { check(t, redistest.StartServer(t).Addr) })
}

func TestProtocolErrors(t *testing.T) {
	check := func(t *testing.T, addr string) {
		for _, c := range protocolCases {
			// One write: the server must not close with unread input, or
			// the reset could discard its reply before we read it.
			got := strings.Join(exchange(t, addr, []byte(c.in), -1, 0), "")
			if got != c.want {
				t.Errorf("%q: got %q, want %q", c.in, got, c.want)
			}
		}
	}
	t.Run("mai", func(t *testing.T) { eachTransport(t, check) })
	t.Run("redis-server", func(t *testing.T) { check(t, redistest.StartServer(t).Addr) })
}

// TestExpiry checks SET's expiry options and the sweeper with a fake clock.
func TestExpiry(t *testing.T) {
	st := store.New(4)
	now := int64(1_000_000)
	st.SetClock(func() int64 { return now })
	s := &server{store: st}
	run := func(args ...string) string { return s.exec(resp.Command(args...).Array).String() }
	steps := []struct {
		advance int64
		args    []string
		want    string
	}{
		{0, []string{"SET", "a", "1", "EX", "2"}, "OK"},
		{0, []string{"SET", "b", "1", "PX", "1500"}, "OK"},
		{0, []string{"SET", "c", "1", "PXAT", strconv.FormatInt(now+1000, 10)}, "OK"},
		{0, []string{"SET", "d", "1", "EXAT", strconv.FormatInt(now/1000+3, 10)}, "OK"},
		{0, []string{"PTTL", "b"}, "(integer) 1500"},
		{999, []string{"GET", "c"}, `"1"`},
		{1, []string{"GET", "c"}, "(nil)"},
		{0, []string{"EXISTS", "a", "b", "c", "d"}, "(integer) 3"},
		{500, []string{"MGET", "a", "b", "d"}, `["1" (nil) "1"]`},
		{0, []string{"INCR", "a"}, "(integer) 2"},
		{0, []string{"TTL", "a"}, "(integer) 1"}, // 500 ms, rounded as Redis does
		{499, []string{"GET", "a"}, `"2"`},
		{1, []string{"GET", "a"}, "(nil)"},
		{0, []string{"SET", "b", "x", "XX"}, "(nil)"},
		{0, []string{"SET", "d", "2", "XX", "GET"}, `"1"`},
		{0, []string{"TTL", "d"}, "(integer) -1"},
	}
	for i, step := range steps {
		now += step.advance
		if got := run(step.args...); got != step.want {
			t.Fatalf("step %d %q: got %s, want %s", i, step.args, got, step.want)
		}
	}
	if st.Len() != 3 { // a and c expired but not swept (SET XX dropped b); d
		t.Fatalf("Len = %d before sweep", st.Len())
	}
	if n := st.Sweep(100); n != 2 || st.Len() != 1 {
		t.Fatalf("Sweep removed %d, Len %d", n, st.Len())
	}
}

// TestMainSignals runs the server's main in a child process: it must print
// its address, serve, and exit cleanly on SIGTERM and on SIGINT.
func TestMainSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-addr", "127.0.0.1:0")
			cmd.Env = append(os.Environ(), "RESP_SERVER_RUN_MAIN=1")
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			cmd.Stdout, cmd.Stderr = w, os.Stderr
			err = cmd.Start()
			w.Close()
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			var waitErr error
			go func() {
				waitErr = cmd.Wait()
				close(done)
			}()
			defer func() {
				select {
				case <-done:
				default:
					_ = cmd.Process.Kill() // by PID: the child we started
					<-done
				}
			}()
			line, err := bufio.NewReader(r).ReadString('\n')
			addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
			if err != nil || !ok {
				t.Fatalf("first line %q, %v", line, err)
			}
			if err := redistest.Ping(addr); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
				if waitErr != nil {
					t.Fatalf("exit after %v: %v", sig, waitErr)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("no exit 20s after %v", sig)
			}
		})
	}
}

// TestWithMaiClient drives the mai server with the mai client: large values
// arriving in many reads, a pipeline, and a value over the bulk limit, which
// the client's codec refuses to send.
func TestWithMaiClient(t *testing.T) {
	addr := startMai(t)
	cl, err := client.New(client.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cl.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("abcdefgh", 900<<10/8)
	if _, err := c.Do(ctx, "SET", "big", big); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Do(ctx, "GET", "big"); err != nil || v.Text() != big {
		t.Fatalf("GET big: %d bytes, %v", len(v.Str), err)
	}
	cmds := make([][]string, 1000)
	for i := range cmds {
		cmds[i] = []string{"INCR", "n"}
	}
	vals, errs := c.Pipeline(ctx, cmds...)
	for i := range vals {
		if errs[i] != nil || vals[i].Int != int64(i+1) {
			t.Fatalf("INCR %d: %v %v", i, vals[i], errs[i])
		}
	}
	huge := strings.Repeat("x", resp.DefaultMaxBulkLen+1)
	if _, err = c.Do(ctx, "SET", "huge", huge); !errors.Is(err, mai.ErrFrameTooLarge) {
		t.Fatalf("oversized SET from a default client: %v", err)
	}
	// (The server's own refusal of a too long bulk string, an error reply
	// and a close, is checked with raw bytes in TestProtocolErrors: a client
	// still sending the body when the server closes may see a reset first.)
}
