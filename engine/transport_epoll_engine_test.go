//go:build linux

package engine

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mai-go/mai"
)

// The engine over the epoll transport: what only this transport has (its
// loops, waiting for EPOLLOUT, falling back to std) and its memory per idle
// connection next to netpoll and std. The shared tests (harness_test.go's
// transports) run every general behaviour over epoll too.

// ---- The engine over TransportEpoll ----

var epOpt = mai.WithTransport(mai.TransportEpoll)

// TestEpollManyConns: many clients at once over two loops, each with its
// own pipelined echoes.
func TestEpollManyConns(t *testing.T) {
	const clients, frames = 64, 200
	e, addr := server(t, echo{}, lengthField(t, 1<<20), epOpt, mai.WithEventLoops(2))
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		c := dial(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out bytes.Buffer
			for j := 0; j < frames; j++ {
				out.Write(frame([]byte(fmt.Sprintf("client %d frame %d", i, j))))
			}
			go func() { _, _ = c.Write(out.Bytes()) }()
			br := bufio.NewReader(c)
			for j := 0; j < frames; j++ {
				got, err := readFrame(br)
				if want := fmt.Sprintf("client %d frame %d", i, j); err != nil || string(got) != want {
					t.Errorf("got %q, %v; want %q", got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := len(e.ep.loops); n != 2 {
		t.Errorf("%d loops, want 2", n)
	}
}

// epConnOf returns the transport of connection id.
func epConnOf(t *testing.T, e *ProtocolEngine[[]byte], id mai.ConnID) *epConn {
	t.Helper()
	c := e.reg.get(id)
	if c == nil {
		t.Fatalf("no connection %v", id)
	}
	ec, ok := c.tr.(*epConn)
	if !ok {
		t.Fatalf("connection %v runs on %T", id, c.tr)
	}
	return ec
}

// TestEpollSlowReader: a client that does not read makes the writes short
// (EAGAIN) and the flusher wait for EPOLLOUT; once the client reads, every
// byte arrives, in order. The loop keeps serving another client meanwhile.
func TestEpollSlowReader(t *testing.T) {
	const frames, size = 512, 16 << 10 // 8 MiB: far over the kernel buffers
	r := newRecorder(t)
	r.onFrame = func(c mai.Context[[]byte], f []byte) error {
		if string(f) != "go" {
			return c.Send(f)
		}
		p := make([]byte, size)
		for i := 0; i < frames; i++ {
			binary.BigEndian.PutUint32(p, uint32(i))
			for j := 4; j < size; j++ {
				p[j] = byte(i + j)
			}
			if err := c.Send(p); err != nil {
				return err
			}
		}
		return nil
	}
	e, addr := server(t, r, lengthField(t, 1<<20), epOpt, mai.WithEventLoops(1),
		mai.WithWriteBufferWaterMarks(32<<20, 64<<20), mai.WithListenControl(sockBufs(0, serverSnd)))
	slow := dialBufs(t, addr, clientRcv, 0)
	ctx := recv(t, r.ready, "ready")
	other := dial(t, addr)
	recv(t, r.ready, "ready")
	ec := epConnOf(t, e, ctx.ID())
	if _, err := slow.Write(frame([]byte("go"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the flusher to wait for EPOLLOUT", func() bool {
		ec.mu.Lock()
		defer ec.mu.Unlock()
		return ec.wantOut
	})
	// The same loop serves the other client while the first is stuck.
	for i := 0; i < 10; i++ {
		echoRoundTrip(t, other, "while the other is stuck")
	}
	br := bufio.NewReaderSize(slow, 64<<10)
	for i := 0; i < frames; i++ {
		f, err := readFrame(br)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if len(f) != size || binary.BigEndian.Uint32(f) != uint32(i) {
			t.Fatalf("frame %d: %d bytes, index %d", i, len(f), binary.BigEndian.Uint32(f))
		}
		for j := 4; j < size; j++ {
			if f[j] != byte(i+j) {
				t.Fatalf("frame %d: byte %d corrupt", i, j)
			}
		}
	}
	// Every byte arrived, so the last write finished; the flusher clears
	// its count right after the write returns.
	eventually(t, "the queue to empty", func() bool { return ctx.Info().Queued == 0 })
}

// TestEpollCloseWhileWaiting: closing a connection whose flusher waits for
// EPOLLOUT ends it at once, exactly once.
func TestEpollCloseWhileWaiting(t *testing.T) {
	for _, how := range []string{"Abort", "peer close"} {
		t.Run(how, func(t *testing.T) {
			r := newRecorder(t)
			e, addr := server(t, r, lengthField(t, 8<<20), epOpt, mai.WithMaxFrameSize(8<<20),
				mai.WithWriteBufferWaterMarks(32<<20, 64<<20), mai.WithListenControl(sockBufs(0, serverSnd)))
			c := dialBufs(t, addr, clientRcv, 0)
			ctx := recv(t, r.ready, "ready")
			ec := epConnOf(t, e, ctx.ID())
			big := make([]byte, 4<<20)
			sent := make(chan error, 1)
			if err := e.Do(ctx.ID(), func(c mai.Context[[]byte]) { sent <- c.Send(big) }); err != nil {
				t.Fatal(err)
			}
			if err := recv(t, sent, "Send"); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the flusher to wait for EPOLLOUT", func() bool {
				ec.mu.Lock()
				defer ec.mu.Unlock()
				return ec.wantOut
			})
			switch how {
			case "Abort":
				if err := ctx.Abort(); err != nil {
					t.Fatal(err)
				}
			default:
				_ = c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
			recv(t, r.closed, "OnClosed")
			shutdown(t, e)
			r.check()
		})
	}
}

// TestEpollManageFallback: Manage of a connection without a descriptor
// (net.Pipe) uses the std transport; a Unix socket uses the loops.
func TestEpollManageFallback(t *testing.T) {
	r := newRecorder(t)
	e, err := New(lengthField(t, 1<<10), r, epOpt)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, e)
	a, b := net.Pipe()
	defer b.Close()
	u1, u2 := epSocketPair(t)
	for _, pair := range [][2]net.Conn{{a, b}, {u1, u2}} {
		id, err := e.Manage(pair[0])
		if err != nil {
			t.Fatal(err)
		}
		recv(t, r.ready, "ready")
		if _, isEpoll := e.reg.get(id).tr.(*epConn); isEpoll != (pair[0] != a) {
			t.Errorf("%T: on epoll %v", pair[0], isEpoll)
		}
		go func() { _, _ = pair[1].Write(frame([]byte("managed"))) }()
		if got := recv(t, r.frames, "frame"); string(got.b) != "managed" || got.id != id {
			t.Fatalf("got %q from %v", got.b, got.id)
		}
	}
}

// TestEpollNoLeaks: no descriptor outlives its connection or the engine,
// and the loops end with the engine.
func TestEpollNoLeaks(t *testing.T) {
	before := openFDs(t)
	r := echoRecorder(t)
	e, addr := server(t, r, lengthField(t, 1<<10), epOpt, mai.WithEventLoops(3))
	var keep []net.Conn
	for i := 0; i < 300; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(waitLimit))
		ctx := recv(t, r.ready, "ready")
		switch i % 3 {
		case 0: // the peer closes
			echoRoundTrip(t, c, "before closing")
			c.Close()
			recv(t, r.closed, "closed")
		case 1: // the server closes
			_ = ctx.Close()
			recv(t, r.closed, "closed")
			c.Close()
		default: // open until shutdown
			keep = append(keep, c)
		}
	}
	shutdown(t, e)
	e.Wait()
	r.check()
	for _, l := range e.ep.loops {
		l.mu.Lock()
		if !l.dead {
			t.Error("a loop is still running after Wait")
		}
		l.mu.Unlock()
	}
	for _, c := range keep {
		expectClosedByPeer(t, c)
		c.Close()
	}
	if after := openFDs(t); after != before {
		t.Errorf("descriptors: %d before, %d after", before, after)
	}
}

// ---- Memory and speed ----

const epMemChildEnv = "MAI_EPOLL_MEM_CLIENT"

// TestEpollIdleMemory measures the server's memory per idle connection,
// after one echo, for each transport. The clients run in a child process
// (TestEpollMemClient), so the figures are the server's alone.
//
//	go test -run TestEpollIdleMemory -v ./engine/
func TestEpollIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const n = 2000
	res := map[mai.Transport]epIdleMem{}
	for _, tr := range []mai.Transport{mai.TransportEpoll, mai.TransportNetpoll, mai.TransportStd} {
		m := epMeasureIdle(t, tr, n)
		res[tr] = m
		t.Logf("%-7s %d idle conns: heap %6.0f B/conn (HeapInuse %6.0f), stacks %6.0f B/conn, %.2f goroutines/conn",
			tr, n, m.heapAlloc, m.heapInuse, m.stack, m.goroutines)
	}
	if ep, np := res[mai.TransportEpoll], res[mai.TransportNetpoll]; ep.heapAlloc+ep.stack >= np.heapAlloc+np.stack {
		t.Errorf("epoll holds %.0f B per idle connection, netpoll %.0f", ep.heapAlloc+ep.stack, np.heapAlloc+np.stack)
	}
	if g := res[mai.TransportEpoll].goroutines; g > 0.01 {
		t.Errorf("epoll: %.2f goroutines per idle connection", g)
	}
}

type epIdleMem struct{ heapAlloc, heapInuse, stack, goroutines float64 }

func epMeasureIdle(t *testing.T, tr mai.Transport, n int) epIdleMem {
	e, err := New(lengthField(t, 1<<10), echo{}, mai.WithTransport(tr))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, e)
	addr, err := e.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// One connection first, so that lazily made shared state (netpoll's
	// pollers, the buffer pool) is in the baseline.
	warm, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	echoRoundTrip(t, warm, "warm-up")
	warm.Close()
	eventually(t, "the warm-up connection to leave", func() bool { return e.Len() == 0 })

	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()

	cmd := exec.Command(os.Args[0], "-test.run=^TestEpollMemClient$", "-test.count=1")
	cmd.Env = append(os.Environ(), epMemChildEnv+"="+addr.String(), epMemChildEnv+"_N="+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("client process: %v", err)
		}
	}()
	lines := bufio.NewScanner(stdout)
	ready := false
	for lines.Scan() {
		if lines.Text() == "ready" {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatal("the client process did not connect")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	if got := e.Len(); got != n {
		t.Fatalf("%d connections, want %d", got, n)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	g1 := runtime.NumGoroutine()
	per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(n) }
	return epIdleMem{
		heapAlloc:  per(m0.HeapAlloc, m1.HeapAlloc),
		heapInuse:  per(m0.HeapInuse, m1.HeapInuse),
		stack:      per(m0.StackInuse, m1.StackInuse),
		goroutines: float64(g1-g0) / float64(n),
	}
}

// TestEpollMemClient is the client process of TestEpollIdleMemory: it
// opens the connections, echoes one frame on each, says "ready", and holds
// them until its standard input closes.
func TestEpollMemClient(t *testing.T) {
	addr := os.Getenv(epMemChildEnv)
	if addr == "" {
		t.Skip("the client process of TestEpollIdleMemory")
	}
	n, err := strconv.Atoi(os.Getenv(epMemChildEnv + "_N"))
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		_ = c.SetDeadline(time.Now().Add(waitLimit))
		echoRoundTrip(t, c, "idle")
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
}
