package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/examples/resp/internal/redistest"
	"github.com/mai-go/mai/examples/resp/resp"
)

// transports are the engine's I/O layers the tests run the client on.
var transports = []mai.Transport{mai.TransportNetpoll, mai.TransportStd, mai.TransportEpoll}

// eachTransport runs f as a subtest per transport, with a Client on it.
func eachTransport(t *testing.T, f func(t *testing.T, cl *Client)) {
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) { f(t, newClientOn(t, tr)) })
	}
}

func newClient(t *testing.T) *Client { return newClientOn(t, mai.TransportAuto) }

func newClientOn(t *testing.T, tr mai.Transport) *Client {
	t.Helper()
	cl, err := New(Config{Options: []mai.Option{mai.WithTransport(tr)}})
	if errors.Is(err, mai.ErrUnsupported) {
		t.Skipf("transport %v: %v", tr, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cl.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return cl
}

func dial(t *testing.T, cl *Client, addr string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := cl.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestCommands runs every command of the example server against the real
// redis-server and checks the replies, errors included.
func TestCommands(t *testing.T) {
	srv := redistest.StartServer(t)
	c := dial(t, newClient(t), srv.Addr)
	ctx := testCtx(t)
	big := strings.Repeat("0123456789abcdef", 40<<10) // 640 KiB
	steps := []struct {
		args []string
		want string // Value.String() of the reply, or the error text
	}{
		{[]string{"PING"}, "PONG"},
		{[]string{"PING", "hi"}, `"hi"`},
		{[]string{"ECHO", "a\r\nb"}, `"a\r\nb"`},
		{[]string{"SET", "k", "v"}, "OK"},
		{[]string{"GET", "k"}, `"v"`},
		{[]string{"GET", "nope"}, "(nil)"},
		{[]string{"SET", "k", "w", "NX"}, "(nil)"},
		{[]string{"SET", "k", "w", "XX", "GET"}, `"v"`},
		{[]string{"SET", "t", "v", "EX", "100"}, "OK"},
		{[]string{"TTL", "t"}, "(integer) 100"},
		{[]string{"SET", "t", "v", "PX", "100000"}, "OK"},
		{[]string{"TTL", "t"}, "(integer) 100"},
		{[]string{"SET", "big", big}, "OK"},
		{[]string{"STRLEN", "big"}, "(integer) " + strconv.Itoa(len(big))},
		{[]string{"EXISTS", "k", "t", "nope", "k"}, "(integer) 3"},
		{[]string{"DEL", "t", "nope"}, "(integer) 1"},
		{[]string{"INCR", "n"}, "(integer) 1"},
		{[]string{"INCR", "n"}, "(integer) 2"},
		{[]string{"MSET", "a", "1", "b", "2"}, "OK"},
		{[]string{"MGET", "a", "nope", "b"}, `["1" (nil) "2"]`},
		{[]string{"INCR", "k"}, "ERR value is not an integer or out of range"},
		{[]string{"GET"}, "ERR wrong number of arguments for 'get' command"},
		{[]string{"NOSUCH", "x"}, "ERR unknown command 'NOSUCH', with args beginning with: 'x' "},
		{[]string{"CONFIG", "GET", "appendonly"}, `["appendonly" "no"]`},
	}
	for _, s := range steps {
		v, err := c.Do(ctx, s.args...)
		got := v.String()
		if err != nil {
			var re *RedisError
			if !errors.As(err, &re) {
				t.Fatalf("%q: %v", s.args, err)
			}
			if re.Prefix() != "ERR" || v.Kind != resp.KindError {
				t.Errorf("%q: error %q, prefix %q, reply %v", s.args, re, re.Prefix(), v)
			}
			got = re.Error()
		}
		if got != s.want {
			t.Errorf("%q: got %s, want %s", s.args, got, s.want)
		}
	}
	v, err := c.Do(ctx, "GET", "big")
	if err != nil || string(v.Str) != big {
		t.Fatalf("GET big: %d bytes, %v", len(v.Str), err)
	}
	// A nested reply: COMMAND INFO describes a command with arrays in arrays.
	v, err = c.Do(ctx, "COMMAND", "INFO", "get")
	if err != nil || v.Kind != resp.KindArray || len(v.Array) != 1 || v.Array[0].Array[0].Text() != "get" {
		t.Fatalf("COMMAND INFO get: %v, %v", v, err)
	}
}

// TestPipelining sends 5000 commands before reading any reply, from one
// goroutine, then from several at once: replies must match their calls.
func TestPipelining(t *testing.T) {
	srv := redistest.StartServer(t)
	eachTransport(t, func(t *testing.T, cl *Client) { testPipelining(t, cl, srv.Addr) })
}

func testPipelining(t *testing.T, cl *Client, addr string) {
	c := dial(t, cl, addr)
	if _, err := c.Do(testCtx(t), "FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	const n = 5000
	calls := make([]*Call, 0, 2*n)
	for i := 0; i < n; i++ {
		calls = append(calls, c.Send(ctx, resp.Command("SET", "p"+strconv.Itoa(i), strconv.Itoa(i))))
		calls = append(calls, c.Send(ctx, resp.Command("INCR", "p"+strconv.Itoa(i))))
	}
	for i, k := range calls {
		v, err := k.Result(ctx)
		want := "OK"
		if i%2 == 1 {
			want = "(integer) " + strconv.Itoa(i/2+1)
		}
		if err != nil || v.String() != want {
			t.Fatalf("call %d: %v, %v; want %s", i, v, err, want)
		}
	}
	if c.Pending() != 0 {
		t.Fatalf("Pending = %d", c.Pending())
	}

	cmds := [][]string{{"SET", "x", "1"}, {"INCR", "x"}, {"INCR", "x", "extra"}, {"GET", "x"}}
	vals, errs := c.Pipeline(ctx, cmds...)
	var re *RedisError
	if vals[1].Int != 2 || !errors.As(errs[2], &re) || vals[3].Text() != "2" || errs[0] != nil || errs[3] != nil {
		t.Fatalf("Pipeline: %v %v", vals, errs)
	}

	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "g" + strconv.Itoa(g)
			var pend []*Call
			for i := 0; i < 500; i++ {
				pend = append(pend, c.Send(ctx, resp.Command("INCR", key)))
			}
			for i, k := range pend {
				v, err := k.Result(ctx)
				if err != nil || v.Int != int64(i+1) {
					errc <- fmt.Errorf("%s call %d: %v %v", key, i, v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

// TestServerClosesMidPipeline: the server kills the connection while calls
// are pending (one blocked in BLPOP, more queued behind it); every pending
// call fails with ErrClosed, the replies before stay good, and the Conn
// refuses new calls.
func TestServerClosesMidPipeline(t *testing.T) {
	srv := redistest.StartServer(t)
	eachTransport(t, func(t *testing.T, cl *Client) { testServerClosesMidPipeline(t, cl, srv) })
}

func testServerClosesMidPipeline(t *testing.T, cl *Client, srv *redistest.Server) {
	c := dial(t, cl, srv.Addr)
	admin := dial(t, cl, srv.Addr)
	ctx := testCtx(t)

	id, err := c.Do(ctx, "CLIENT", "ID")
	if err != nil {
		t.Fatal(err)
	}
	first := c.Send(ctx, resp.Command("SET", "before", "1"))
	blocked := c.Send(ctx, resp.Command("BLPOP", "nothing", "0"))
	var behind []*Call
	for i := 0; i < 100; i++ {
		behind = append(behind, c.Send(ctx, resp.Command("PING")))
	}
	if v, err := first.Result(ctx); err != nil || v.String() != "OK" {
		t.Fatalf("first: %v %v", v, err)
	}
	waitBlocked(ctx, t, admin)
	if v, err := admin.Do(ctx, "CLIENT", "KILL", "ID", id.Text()); err != nil || v.Int != 1 {
		t.Fatalf("CLIENT KILL: %v %v", v, err)
	}
	// The server closes with a FIN, or with a reset when some of the
	// pipelined PINGs were still unread in its socket: both are the peer's
	// close.
	for i, k := range append([]*Call{blocked}, behind...) {
		if _, err := k.Result(ctx); !errors.Is(err, ErrClosed) || !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("pending call %d: %v; want ErrClosed wrapping io.EOF or ECONNRESET", i, err)
		}
	}
	if _, err := c.Do(ctx, "PING"); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after close: %v", err)
	}
	if v, err := admin.Do(ctx, "GET", "before"); err != nil || v.Text() != "1" {
		t.Fatalf("admin GET: %v %v", v, err)
	}
}

// waitBlocked polls INFO clients until a client is blocked (bounded).
func waitBlocked(ctx context.Context, t *testing.T, admin *Conn) {
	t.Helper()
	for i := 0; i < 500; i++ {
		v, err := admin.Do(ctx, "INFO", "clients")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(v.Text(), "blocked_clients:1") {
			return
		}
		time.Sleep(10 * time.Millisecond) // polling server state, bounded
	}
	t.Fatal("no client blocked in BLPOP")
}

// TestServerProcessDies kills redis-server while a pipeline is in flight.
func TestServerProcessDies(t *testing.T) {
	srv := redistest.StartServer(t)
	c := dial(t, newClient(t), srv.Addr)
	ctx := testCtx(t)
	if _, err := c.Do(ctx, "PING"); err != nil {
		t.Fatal(err)
	}
	blocked := c.Send(ctx, resp.Command("BLPOP", "nothing", "0"))
	behind := c.Send(ctx, resp.Command("PING"))
	srv.Kill()
	for _, k := range []*Call{blocked, behind} {
		if _, err := k.Result(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("pending call: %v; want ErrClosed", err)
		}
	}
}

// TestClose: closing the Conn or the Client fails what is pending.
func TestClose(t *testing.T) {
	srv := redistest.StartServer(t)
	cl, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, cl, srv.Addr)
	ctx := testCtx(t)
	blocked := c.Send(ctx, resp.Command("BLPOP", "nothing", "0"))
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := blocked.Result(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("pending call after Client.Close: %v", err)
	}
	if _, err := cl.Dial(ctx, srv.Addr); err == nil {
		t.Fatal("Dial after Close succeeded")
	}
}

// TestDialRefused: a failed Dial is an error, and no Conn is left behind.
func TestDialRefused(t *testing.T) {
	cl := newClient(t)
	ctx := testCtx(t)
	srv := redistest.StartServer(t)
	addr := srv.Addr
	srv.Kill()
	if _, err := cl.Dial(ctx, addr); err == nil {
		t.Fatal("Dial to a dead server succeeded")
	}
}

// TestUnexpectedReply: a reply nobody asked for breaks the stream; the
// connection closes with ErrUnexpectedReply. A std-net fake server sends it.
func TestUnexpectedReply(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		_, _ = nc.Write([]byte("+HELLO\r\n"))
		_, _ = io.Copy(io.Discard, nc) // until the client closes
	}()
	c := dial(t, newClient(t), ln.Addr().String())
	ctx := testCtx(t)
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("connection still open")
	}
	if err := c.Err(); !errors.Is(err, ErrClosed) || !errors.Is(err, ErrUnexpectedReply) {
		t.Fatalf("Err() = %v", err)
	}
	if _, err := c.Do(ctx, "PING"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Do after close: %v", err)
	}
}

// TestLargeRepliesPipelined pipelines 1000 GETs of a 64 KiB value (64 MiB
// of replies). netpoll hands over everything it buffered, megabytes, in one
// read: the engine must feed a pending partial frame only what it needs and
// not count the complete frames of that read against WithMaxInboundBytes.
func TestLargeRepliesPipelined(t *testing.T) {
	srv := redistest.StartServer(t)
	eachTransport(t, func(t *testing.T, cl *Client) {
		c := dial(t, cl, srv.Addr)
		ctx := testCtx(t)
		val := strings.Repeat("v", 64<<10)
		if _, err := c.Do(ctx, "SET", "big", val); err != nil {
			t.Fatal(err)
		}
		calls := make([]*Call, 1000)
		for i := range calls {
			calls[i] = c.Send(ctx, resp.Command("GET", "big"))
		}
		for i, k := range calls {
			if v, err := k.Result(ctx); err != nil || len(v.Str) != len(val) {
				t.Fatalf("call %d: %d bytes, %v", i, len(v.Str), err)
			}
			calls[i] = nil
		}
	})
}

// TestFlowControl: with a small MaxPendingBytes, Sends wait for replies
// instead of queueing without bound; 8 goroutines still get their replies
// in order. A Send waiting for room gives up when its ctx ends.
func TestFlowControl(t *testing.T) {
	srv := redistest.StartServer(t)
	cl, err := New(Config{MaxPendingBytes: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	c := dial(t, cl, srv.Addr)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "fc" + strconv.Itoa(g)
			pend := make([]*Call, 0, 1000)
			for i := 0; i < 1000; i++ {
				pend = append(pend, c.Send(ctx, resp.Command("INCR", key)))
				if c.Pending()*len("*2\r\n$4\r\nINCR\r\n$3\r\nfc0\r\n") > 512 {
					errc <- fmt.Errorf("%d calls pending: over MaxPendingBytes", c.Pending())
					return
				}
			}
			for i, k := range pend {
				if v, err := k.Result(ctx); err != nil || v.Int != int64(i+1) {
					errc <- fmt.Errorf("%s call %d: %v %v", key, i, v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}

	// A blocked BLPOP holds 500 of the 512 bytes; the next Send must wait.
	blocked := c.Send(ctx, resp.Command("BLPOP", strings.Repeat("k", 470), "0"))
	short, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Send(short, resp.Command("PING")).Result(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with no room and a cancelled ctx: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := blocked.Result(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked call after Close: %v", err)
	}
}

// TestSendRejectsNonCommands: a value that is not a non-empty array of
// bulk strings draws no reply (an empty or null array) or several (a bulk
// string, read as inline lines), so the calls would be matched to the
// wrong replies from then on: against redis-server, ECHO a returned "b"
// after an empty Do. Send refuses it with ErrInvalidCommand and sends
// nothing, and the connection stays in step.
func TestSendRejectsNonCommands(t *testing.T) {
	srv := redistest.StartServer(t)
	cl := newClient(t)
	c := dial(t, cl, srv.Addr)
	ctx := testCtx(t)
	if _, err := c.Do(ctx); !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("Do with no arguments: %v, want ErrInvalidCommand", err)
	}
	for _, v := range []resp.Value{resp.Command(), resp.NullArray(), resp.BulkString("x"), resp.Array(resp.Int(1)), resp.Array(resp.BulkString("GET"), resp.NullBulk())} {
		if _, err := c.Send(ctx, v).Result(ctx); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("Send(%v): %v, want ErrInvalidCommand", v, err)
		}
	}
	for _, s := range []string{"a", "b"} {
		if v, err := c.Do(ctx, "ECHO", s); err != nil || string(v.Str) != s {
			t.Fatalf("ECHO %s: %q %v", s, v.Str, err)
		}
	}
}

// TestResultOfCompleteCall: a call that has its reply returns it, also
// when ctx has ended (Result once picked at random between the two).
func TestResultOfCompleteCall(t *testing.T) {
	srv := redistest.StartServer(t)
	c := dial(t, newClient(t), srv.Addr)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 20 {
		k := c.Send(testCtx(t), resp.Command("PING"))
		select {
		case <-k.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("no reply to PING")
		}
		if v, err := k.Result(ended); err != nil || string(v.Str) != "PONG" {
			t.Fatalf("call %d, complete, with an ended ctx: %q %v, want PONG", i, v.Str, err)
		}
	}
}
