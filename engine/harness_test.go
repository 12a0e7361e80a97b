package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/codec"
	"github.com/mai-go/mai/protocol"
)

// netpoll keeps process-wide pollers and a worker pool; they are not the
// engine's goroutines.
var leakOpts = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/cloudwego/netpoll.(*defaultPoll).Wait"),
	goleak.IgnoreAnyFunction("github.com/bytedance/gopkg/util/gopool.(*worker).run.func1"),
	goleak.IgnoreAnyFunction("github.com/cloudwego/netpoll.(*manager).Run"),
	goleak.IgnoreAnyFunction("syscall.Syscall6"),
	goleak.IgnoreAnyFunction("syscall.RawSyscall6"),
	goleak.IgnoreAnyFunction("github.com/cloudwego/netpoll.EpollWait"),
	goleak.IgnoreAnyFunction("internal/runtime/syscall/linux.Syscall6"),
	goleak.IgnoreAnyFunction("internal/runtime/syscall.Syscall6"),
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakOpts...)
}

// transports runs a test once per transport.
var transports = []mai.Transport{mai.TransportNetpoll, mai.TransportStd}

func init() {
	if runtime.GOOS == "linux" {
		transports = append(transports, mai.TransportEpoll)
	}
}

func forEachTransport(t *testing.T, fn func(t *testing.T, tr mai.Transport)) {
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) { fn(t, tr) })
	}
}

// lengthField is the echo example's framing: a 4-byte big-endian length,
// then the payload.
func lengthField(t testing.TB, max int) codec.Factory[[]byte] {
	t.Helper()
	lf, err := codec.NewLengthField(codec.LengthFieldConfig{Width: 4, Strip: 4, MaxLength: max})
	if err != nil {
		t.Fatal(err)
	}
	return lf.Factory()
}

func frame(payload []byte) []byte {
	b := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(b, uint32(len(payload)))
	copy(b[4:], payload)
	return b
}

// readFrame reads one length-prefixed frame from r.
func readFrame(r io.Reader) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(h[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}

// recorder is a Handler that records every callback per connection and
// checks the ordering contract as it goes: OnReady first and once, nothing
// concurrent, OnClosed last and once.
type recorder struct {
	protocol.Base[[]byte]
	t *testing.T

	mu       sync.Mutex
	log      map[mai.ConnID][]string
	inCall   map[mai.ConnID]bool
	errs     map[mai.ConnID][]error
	causes   map[mai.ConnID]error
	violated []string

	frames chan recFrame
	ready  chan mai.Context[[]byte]
	closed chan mai.ConnID

	onFrame   func(c mai.Context[[]byte], f []byte) error
	onReady   func(c mai.Context[[]byte]) error
	onTimeout func(c mai.Context[[]byte], t mai.Timeout) error
}

type recFrame struct {
	id mai.ConnID
	b  []byte
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{
		t:      t,
		log:    map[mai.ConnID][]string{},
		inCall: map[mai.ConnID]bool{},
		errs:   map[mai.ConnID][]error{},
		causes: map[mai.ConnID]error{},
		frames: make(chan recFrame, 1<<16),
		ready:  make(chan mai.Context[[]byte], 1024),
		closed: make(chan mai.ConnID, 1024),
	}
}

func (r *recorder) enter(c mai.Context[[]byte], what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := c.ID()
	if r.inCall[id] {
		r.violated = append(r.violated, fmt.Sprintf("%v: %s while another callback runs", id, what))
	}
	r.inCall[id] = true
	l := r.log[id]
	switch {
	case what == "ready" && len(l) != 0:
		r.violated = append(r.violated, fmt.Sprintf("%v: ready after %v", id, l))
	case what != "ready" && len(l) == 0:
		r.violated = append(r.violated, fmt.Sprintf("%v: %s before ready", id, what))
	case len(l) > 0 && l[len(l)-1] == "closed":
		r.violated = append(r.violated, fmt.Sprintf("%v: %s after closed", id, what))
	}
	r.log[id] = append(l, what)
}

func (r *recorder) leave(c mai.Context[[]byte]) {
	r.mu.Lock()
	r.inCall[c.ID()] = false
	r.mu.Unlock()
}

func (r *recorder) OnReady(c mai.Context[[]byte]) error {
	r.enter(c, "ready")
	defer r.leave(c)
	r.ready <- c
	if r.onReady != nil {
		return r.onReady(c)
	}
	return nil
}

func (r *recorder) OnFrame(c mai.Context[[]byte], f []byte) error {
	r.enter(c, "frame")
	defer r.leave(c)
	if r.onFrame != nil {
		return r.onFrame(c, f)
	}
	r.frames <- recFrame{c.ID(), append([]byte(nil), f...)}
	return nil
}

func (r *recorder) OnTimeout(c mai.Context[[]byte], t mai.Timeout) error {
	r.enter(c, "timeout:"+t.Kind.String())
	defer r.leave(c)
	if r.onTimeout != nil {
		return r.onTimeout(c, t)
	}
	return t.Err()
}

func (r *recorder) OnError(c mai.Context[[]byte], err error) {
	r.enter(c, "error")
	defer r.leave(c)
	r.mu.Lock()
	r.errs[c.ID()] = append(r.errs[c.ID()], err)
	r.mu.Unlock()
}

func (r *recorder) OnClosed(c mai.Context[[]byte], err error) {
	r.enter(c, "closed")
	r.mu.Lock()
	r.causes[c.ID()] = err
	r.mu.Unlock()
	r.leave(c)
	r.closed <- c.ID()
}

// check fails the test on any ordering violation and verifies that every
// connection that was ready got exactly one OnClosed, last.
func (r *recorder) check() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range r.violated {
		r.t.Error(v)
	}
	for id, l := range r.log {
		n := 0
		for _, s := range l {
			if s == "closed" {
				n++
			}
		}
		if n != 1 || l[len(l)-1] != "closed" {
			r.t.Errorf("%v: want exactly one closed, last; got %v", id, l)
		}
	}
}

func (r *recorder) errorsOf(id mai.ConnID) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs[id]...)
}

func (r *recorder) causeOf(id mai.ConnID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.causes[id]
}

func (r *recorder) events(id mai.ConnID) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log[id]...)
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

// collectTimeouts makes OnTimeout send each timeout to the channel it
// returns, which holds n. With keep, OnTimeout keeps the connection open;
// else a built-in timeout closes it (to.Err()).
func (r *recorder) collectTimeouts(n int, keep bool) <-chan mai.Timeout {
	ch := make(chan mai.Timeout, n)
	r.onTimeout = func(_ mai.Context[[]byte], to mai.Timeout) error {
		ch <- to
		if keep {
			return nil
		}
		return to.Err()
	}
	return ch
}

const waitLimit = 10 * time.Second

func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// server starts an engine listening on loopback and returns it with its
// address. The engine is shut down at the end of the test.
func server(t *testing.T, h protocol.Handler[[]byte], f codec.Factory[[]byte], opts ...mai.Option) (*ProtocolEngine[[]byte], string) {
	t.Helper()
	e, err := New(f, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := e.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, e) })
	return e, addr.String()
}

func shutdown(t testing.TB, e *ProtocolEngine[[]byte]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// dialReady dials n connections to addr, one at a time, waiting for each
// one's OnReady on r; it returns the client ends and the IDs in dial order.
func dialReady(t *testing.T, r *recorder, addr string, n int) ([]net.Conn, []mai.ConnID) {
	t.Helper()
	clients := make([]net.Conn, 0, n)
	ids := make([]mai.ConnID, 0, n)
	for range n {
		clients = append(clients, dial(t, addr))
		ids = append(ids, recv(t, r.ready, "ready").ID())
	}
	return clients, ids
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	return c
}

// expectClosedByPeer reads from c until EOF or reset.
func expectClosedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("server did not close the connection")
	}
}

// openFDs counts this process's open descriptors (linux).
func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}
