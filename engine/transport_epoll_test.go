//go:build linux

package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mai-go/mai"
)

// The epoll transport alone, under a fake connection. The engine over it:
// transport_epoll_engine_test.go and the shared tests.

// ---- The transport alone ----

// epFakeConn is a loopConn that records what the transport does to it.
type epFakeConn struct {
	tr transport

	mu    sync.Mutex
	data  []byte
	ends  int   // transportClosed calls
	late  int   // input calls after transportClosed
	cause error // transportClosed's error
	in    chan struct{}
	done  chan struct{}

	// If set, input waits for unblock to close, after closing entered.
	entered, unblock chan struct{}
	started          int // release calls

	// While paused, the fake holds at most limit bytes (0: no limit) and
	// counts what was over it and its readRoom calls.
	paused, limit int
	over, rooms   int
	// If set, readRoom calls it, after taking the room, with its number
	// of calls. f.mu is held.
	onRoom func(call int)
}

func newEpFakeConn() *epFakeConn {
	return &epFakeConn{in: make(chan struct{}, 1), done: make(chan struct{})}
}

func (f *epFakeConn) setTransport(t transport) { f.tr = t }

func (f *epFakeConn) release() {
	f.mu.Lock()
	f.started++
	f.mu.Unlock()
}

// epStart attaches nc to g for f and starts it, as the engine does.
func epStart(g *epollGroup, f *epFakeConn, nc net.Conn) error {
	if err := g.attach(f, nc); err != nil {
		return err
	}
	if !f.tr.(*epConn).start(f) {
		return fmt.Errorf("start: %w", mai.ErrShutdown)
	}
	return nil
}

func (f *epFakeConn) input(d []byte) int {
	if f.unblock != nil {
		close(f.entered)
		<-f.unblock
		f.unblock = nil
	}
	f.mu.Lock()
	if f.ends > 0 {
		f.late++
	}
	f.data = append(f.data, d...)
	room := f.roomLocked()
	f.mu.Unlock()
	select {
	case f.in <- struct{}{}:
	default:
	}
	return room
}

// roomLocked is conn.roomLocked for the fake. f.mu is held.
func (f *epFakeConn) roomLocked() int {
	if f.paused == 0 || f.limit == 0 {
		return epReadBuf
	}
	if len(f.data) > f.limit {
		f.over = len(f.data) - f.limit
	}
	return max(f.limit-len(f.data), 0)
}

func (f *epFakeConn) readRoom() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rooms++
	room := f.roomLocked()
	if f.onRoom != nil {
		f.onRoom(f.rooms)
	}
	return room
}

func (f *epFakeConn) transportClosed(err error) {
	f.mu.Lock()
	f.ends++
	f.cause = err
	first := f.ends == 1
	f.mu.Unlock()
	if first {
		close(f.done)
	}
}

// waitData waits until the connection received n bytes and returns them.
func (f *epFakeConn) waitData(t *testing.T, n int) []byte {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		f.mu.Lock()
		got := len(f.data)
		f.mu.Unlock()
		if got >= n {
			f.mu.Lock()
			defer f.mu.Unlock()
			return append([]byte(nil), f.data...)
		}
		select {
		case <-f.in:
		case <-deadline:
			t.Fatalf("received %d bytes, want %d", got, n)
		}
	}
}

// waitClosed waits for transportClosed and checks it came once, with no
// input after it.
func (f *epFakeConn) waitClosed(t *testing.T) error {
	t.Helper()
	epRecvClosed(t, f.done, "transportClosed")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ends != 1 || f.late != 0 {
		t.Errorf("transportClosed %d times, %d inputs after it", f.ends, f.late)
	}
	return f.cause
}

func epRecvClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// newEpTestGroup starts n loops; the test's end stops them and checks that
// they ended and closed their descriptors.
func newEpTestGroup(t *testing.T, n int) *epollGroup {
	t.Helper()
	var wg sync.WaitGroup
	spawn := func(fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn()
		}()
	}
	g, err := newEpollGroup(n, spawn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.stop()
		wg.Wait()
		for _, l := range g.loops {
			l.mu.Lock()
			dead := l.dead
			l.mu.Unlock()
			if !dead {
				t.Error("loop not dead after stop")
			}
		}
	})
	return g
}

// epSocketPair returns the two ends of a connected Unix stream socket pair.
func epSocketPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conv := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conv(fds[0]), conv(fds[1])
}

// epFillSocket writes through tr until the socket is full, and returns how
// much it wrote.
func epFillSocket(t *testing.T, tr transport) int {
	t.Helper()
	chunk := bytes.Repeat([]byte{'f'}, 256<<10)
	total := 0
	for i := 0; ; i++ {
		if i == 1000 {
			t.Fatal("the socket never filled")
		}
		n, err := tr.write(chunk)
		total += n
		if err != nil {
			t.Fatal(err)
		}
		if n < len(chunk) {
			return total
		}
	}
}

func TestEpollTransportInputAndPeerEOF(t *testing.T) {
	g := newEpTestGroup(t, 2)
	local, peer := epSocketPair(t)
	f := newEpFakeConn()
	if err := epStart(g, f, local); err != nil {
		t.Fatal(err)
	}
	if f.tr == nil {
		t.Fatal("attach did not set the transport")
	}
	var want []byte
	for i := 0; i < 50; i++ {
		b := []byte(fmt.Sprintf("piece %d;", i))
		want = append(want, b...)
		if _, err := peer.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.waitData(t, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("got %q", got)
	}
	f.mu.Lock()
	started := f.started
	f.mu.Unlock()
	if started != 1 {
		t.Errorf("release ran %d times before the first input, want once", started)
	}
	// The transport writes to the peer.
	if n, err := f.tr.write([]byte("reply")); n != 5 || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "reply" {
		t.Fatalf("peer read %q, %v", buf, err)
	}
	peer.Close()
	if cause := f.waitClosed(t); cause != io.EOF {
		t.Errorf("cause %v, want io.EOF", cause)
	}
	if _, err := f.tr.write([]byte("x")); !errors.Is(err, io.EOF) {
		t.Errorf("write after the peer's close: %v, want io.EOF", err)
	}
	if err := f.tr.waitWritable(); err == nil {
		t.Error("waitWritable after close: nil")
	}
	f.tr.close() // idempotent, after the end too
}

func TestEpollTransportPeerReset(t *testing.T) {
	g := newEpTestGroup(t, 1)
	local, peer := tcpPair(t)
	f := newEpFakeConn()
	if err := epStart(g, f, local); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	f.waitData(t, 1)
	_ = peer.SetLinger(0)
	peer.Close()
	cause := f.waitClosed(t)
	if !errors.Is(cause, unix.ECONNRESET) {
		t.Errorf("cause %v, want ECONNRESET", cause)
	}
}

// TestEpollTransportPauseReading: a connection with no room for input is
// not read until resumeReading. The transport reads no more than the room
// it was given, then turns EPOLLIN off, so the loop does not spin on the
// readable socket while it serves its other connections; after the resume
// it reads the rest.
func TestEpollTransportPauseReading(t *testing.T) {
	g := newEpTestGroup(t, 1)
	local, peer := epSocketPair(t)
	f := newEpFakeConn()
	f.paused, f.limit = 1, 100
	if err := epStart(g, f, local); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("0123456789"), 1000)
	if _, err := peer.Write(want); err != nil {
		t.Fatal(err)
	}
	f.waitData(t, f.limit)
	// Twenty rounds of the loop for another connection, while the first
	// one's socket stays readable.
	local2, peer2 := epSocketPair(t)
	f2 := newEpFakeConn()
	if err := epStart(g, f2, local2); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		if _, err := peer2.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		f2.waitData(t, i)
	}
	f.mu.Lock()
	got, over, rooms := len(f.data), f.over, f.rooms
	f.paused = 0
	f.mu.Unlock()
	if got != f.limit || over != 0 {
		t.Fatalf("read %d bytes while paused (%d over the room), want %d", got, over, f.limit)
	}
	// One readRoom before the first read, one when the room ran out, one
	// after reading was turned off.
	if rooms > 3 {
		t.Errorf("readRoom called %d times while paused: the loop kept reporting the paused connection", rooms)
	}
	f.tr.(*epConn).resumeReading()
	if got := f.waitData(t, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("after the resume: %d bytes, not what was sent", len(got))
	}
}

// TestEpollTransportPauseEndedBeforeOff: the loop learned that the
// connection had no room, and before it turned reading off, the pause
// ended (its resumeReading found reading on: nothing to do) and began
// anew with room to read ahead. The loop reads on into that room instead
// of waiting for the end of the new pause.
func TestEpollTransportPauseEndedBeforeOff(t *testing.T) {
	g := newEpTestGroup(t, 1)
	local, peer := epSocketPair(t)
	f := newEpFakeConn()
	f.paused, f.limit = 1, 100
	// The second readRoom is the loop's after the input that left no
	// room: it answers 0, and then the pause ends and begins anew with
	// 100 bytes of room (as if the resume had decoded 100 bytes).
	f.onRoom = func(call int) {
		if call == 2 {
			f.limit = 200
		}
	}
	if err := epStart(g, f, local); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Write(bytes.Repeat([]byte("0123456789"), 100)); err != nil {
		t.Fatal(err)
	}
	f.waitData(t, 200)
	f.mu.Lock()
	got, over := len(f.data), f.over
	f.mu.Unlock()
	if got != 200 || over != 0 {
		t.Fatalf("read %d bytes (%d over the room), want 200", got, over)
	}
}

// TestEpollTransportPausedHangUp: a connection whose reading is off still
// learns that its peer went away, which epoll reports whatever the
// registration: the end is reported once, with the cause.
func TestEpollTransportPausedHangUp(t *testing.T) {
	for _, tc := range []struct {
		name string
		pair func(t *testing.T) (net.Conn, net.Conn)
		end  func(peer net.Conn)
		want error
	}{
		{"unix close", func(t *testing.T) (net.Conn, net.Conn) { return epSocketPair(t) },
			func(peer net.Conn) { peer.Close() }, io.EOF},
		{"tcp reset", func(t *testing.T) (net.Conn, net.Conn) { return tcpPair(t) },
			func(peer net.Conn) {
				_ = peer.(*net.TCPConn).SetLinger(0)
				peer.Close()
			}, unix.ECONNRESET},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newEpTestGroup(t, 1)
			local, peer := tc.pair(t)
			f := newEpFakeConn()
			f.paused, f.limit = 1, 10
			if err := epStart(g, f, local); err != nil {
				t.Fatal(err)
			}
			if _, err := peer.Write(bytes.Repeat([]byte{'h'}, 100)); err != nil {
				t.Fatal(err)
			}
			f.waitData(t, f.limit)
			tc.end(peer)
			if cause := f.waitClosed(t); !errors.Is(cause, tc.want) {
				t.Errorf("cause %v, want %v", cause, tc.want)
			}
		})
	}
}

// TestEpollTransportCloseOnce: close from many goroutines at once, right
// after attach (before the loop may have registered the descriptor), ends
// the connection once, with a nil cause; the peer sees the end.
func TestEpollTransportCloseOnce(t *testing.T) {
	g := newEpTestGroup(t, 2)
	for i := 0; i < 200; i++ {
		local, peer := epSocketPair(t)
		f := newEpFakeConn()
		if err := epStart(g, f, local); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for j := 0; j < 4; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.tr.close()
			}()
		}
		wg.Wait()
		if cause := f.waitClosed(t); cause != nil {
			t.Fatalf("cause %v, want nil", cause)
		}
		_ = peer.SetReadDeadline(time.Now().Add(waitLimit))
		if n, err := peer.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("peer read %d, %v; want EOF", n, err)
		}
		peer.Close()
	}
}

// TestEpollTransportWaitWritable: a full socket gives a short write with a
// nil error; waitWritable returns once the peer reads, and returns an error
// wrapping ErrClosed when the connection closes while it waits.
func TestEpollTransportWaitWritable(t *testing.T) {
	g := newEpTestGroup(t, 1)
	local, peer := epSocketPair(t)
	f := newEpFakeConn()
	if err := epStart(g, f, local); err != nil {
		t.Fatal(err)
	}
	c := f.tr.(*epConn)
	for round := 0; round < 3; round++ {
		n := epFillSocket(t, f.tr)
		waited := epWaitWritable(t, c)
		select {
		case err := <-waited:
			t.Fatalf("waitWritable returned %v before the peer read", err)
		default:
		}
		if _, err := io.ReadFull(peer, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, waited, "waitWritable"); err != nil {
			t.Fatal(err)
		}
	}
	epFillSocket(t, f.tr)
	waited := epWaitWritable(t, c)
	f.tr.close()
	if err := recv(t, waited, "waitWritable"); !errors.Is(err, mai.ErrClosed) {
		t.Fatalf("waitWritable on close: %v, want ErrClosed", err)
	}
	if cause := f.waitClosed(t); cause != nil {
		t.Fatalf("cause %v", cause)
	}
	if _, err := f.tr.write([]byte("x")); !errors.Is(err, mai.ErrClosed) {
		t.Fatalf("write after close: %v, want ErrClosed", err)
	}
}

// TestEpollTransportWaitBeforeRegister: a writer may find the socket full
// and wait before the loop has registered the descriptor; the
// registration then watches EPOLLOUT too. The loop is held up in another
// connection's input meanwhile, so the order is certain.
func TestEpollTransportWaitBeforeRegister(t *testing.T) {
	g := newEpTestGroup(t, 1)
	aLocal, aPeer := epSocketPair(t)
	a := newEpFakeConn()
	a.entered, a.unblock = make(chan struct{}), make(chan struct{})
	if err := epStart(g, a, aLocal); err != nil {
		t.Fatal(err)
	}
	if _, err := aPeer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	epRecvClosed(t, a.entered, "the loop to enter input")

	bLocal, bPeer := epSocketPair(t)
	b := newEpFakeConn()
	if err := epStart(g, b, bLocal); err != nil {
		t.Fatal(err)
	}
	n := epFillSocket(t, b.tr)
	bc := b.tr.(*epConn)
	waited := epWaitWritable(t, bc)
	bc.mu.Lock()
	registered := bc.registered
	bc.mu.Unlock()
	if registered {
		t.Fatal("registered while the loop was held up")
	}
	close(a.unblock)
	if _, err := io.ReadFull(bPeer, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, waited, "waitWritable"); err != nil {
		t.Fatal(err)
	}
	a.waitData(t, 1)
	if m, err := b.tr.write([]byte("more")); m != 4 || err != nil {
		t.Fatalf("write: %d, %v", m, err)
	}
	b.tr.close()
	a.tr.close()
	b.waitClosed(t)
	a.waitClosed(t)
}

// TestEpollTransportNoCrossTalk: connections come and go while writers
// write to them and closes race with the writes. Descriptor numbers are
// reused at once, so a write or a read on a stale number would put one
// connection's bytes on another; each connection writes only its own byte
// and each peer checks that it receives only that byte.
func TestEpollTransportNoCrossTalk(t *testing.T) {
	g := newEpTestGroup(t, 2)
	const workers, rounds = 6, 60
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				// Marks differ between workers, whose rounds overlap.
				mark := byte(1 + w + workers*(r%40))
				if err := epCrossTalkRound(g, mark, r%3); err != nil {
					errs <- fmt.Errorf("worker %d round %d: %w", w, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func epCrossTalkRound(g *epollGroup, mark byte, how int) error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	toConn := func(fd int) (net.Conn, error) {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		return net.FileConn(f)
	}
	local, err := toConn(fds[0])
	if err != nil {
		return err
	}
	peer, err := toConn(fds[1])
	if err != nil {
		local.Close()
		return err
	}
	defer peer.Close()
	f := newEpFakeConn()
	if err := epStart(g, f, local); err != nil {
		return err
	}
	// The peer sends a little and reads everything, checking the bytes.
	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := peer.Read(buf)
			for _, b := range buf[:n] {
				if b != mark {
					readErr <- fmt.Errorf("byte %d on connection %d", b, mark)
					return
				}
			}
			if err != nil {
				readErr <- nil
				return
			}
		}
	}()
	if _, err := peer.Write([]byte{mark}); err != nil {
		return err
	}
	// The writer writes its mark until the connection fails.
	writeDone := make(chan struct{})
	go func() {
		defer close(writeDone)
		p := bytes.Repeat([]byte{mark}, 8<<10)
		for i := 0; i < 64; i++ {
			n, err := f.tr.write(p)
			if err != nil {
				return
			}
			if n < len(p) {
				if f.tr.waitWritable() != nil {
					return
				}
			}
		}
	}()
	switch how {
	case 0: // close at once
		f.tr.close()
	case 1: // close after some input
		select {
		case <-f.in:
		case <-time.After(waitLimit):
			return errors.New("no input")
		}
		f.tr.close()
	case 2: // the writer finishes first
		<-writeDone
		f.tr.close()
	}
	select {
	case <-f.done:
	case <-time.After(waitLimit):
		return errors.New("no transportClosed")
	}
	<-writeDone
	select {
	case err := <-readErr:
		if err != nil {
			return err
		}
	case <-time.After(waitLimit):
		return errors.New("the peer did not see the end")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.data {
		if b != mark {
			return fmt.Errorf("received byte %d, want %d", b, mark)
		}
	}
	if f.ends != 1 || f.late != 0 {
		return fmt.Errorf("transportClosed %d times, %d late inputs", f.ends, f.late)
	}
	return nil
}

// TestEpollTransportStopCloses: stop ends a connection still attached, with
// ErrShutdown, and every descriptor is closed.
func TestEpollTransportStopCloses(t *testing.T) {
	before := openFDs(t)
	local, peer := epSocketPair(t)
	f := newEpFakeConn()
	var wg sync.WaitGroup
	g, err := newEpollGroup(3, func(fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn()
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := epStart(g, f, local); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	f.waitData(t, 2)
	g.stop()
	wg.Wait()
	if cause := f.waitClosed(t); !errors.Is(cause, mai.ErrShutdown) {
		t.Errorf("cause %v, want ErrShutdown", cause)
	}
	late := newEpFakeConn()
	if err := epStart(g, late, epPairEnd(t)); !errors.Is(err, mai.ErrShutdown) {
		t.Errorf("start after stop: %v, want ErrShutdown", err)
	}
	if cause := late.waitClosed(t); !errors.Is(cause, mai.ErrShutdown) {
		t.Errorf("start after stop: closed with %v, want ErrShutdown", cause)
	}
	peer.Close()
	if after := openFDs(t); after != before {
		t.Errorf("descriptors: %d before, %d after", before, after)
	}
}

func epPairEnd(t *testing.T) net.Conn {
	a, b := epSocketPair(t)
	b.Close()
	return a
}

func TestEpollTransportUnsupported(t *testing.T) {
	g := newEpTestGroup(t, 1)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if err := g.attach(newEpFakeConn(), a); err != mai.ErrUnsupported {
		t.Fatalf("attach of a pipe: %v, want mai.ErrUnsupported", err)
	}
}

func TestEpollConnSize(t *testing.T) {
	size := unsafe.Sizeof(epConn{})
	t.Logf("epConn: %d bytes", size)
	if size > 64 {
		t.Errorf("epConn grew to %d bytes", size)
	}
}

// epWaitWritable starts a waitWritable on c in a goroutine and returns its
// result channel once the writer is waiting (c watches EPOLLOUT).
func epWaitWritable(t *testing.T, c *epConn) <-chan error {
	t.Helper()
	waited := make(chan error, 1)
	go func() { waited <- c.waitWritable() }()
	eventually(t, "the writer to wait", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.wantOut
	})
	return waited
}
