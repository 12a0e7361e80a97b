package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/protocol"
)

// Reading paused at the socket: a connection over its high water mark
// stops decoding, reads ahead until the input it holds fills
// WithMaxInboundBytes, and then stops reading, so that TCP slows the peer
// down. netpoll cannot stop reading (netpoll#422): there the held input
// goes over the bound and the connection fails with ErrInboundLimit
// (TestFloodNotReading).

// pausingEchoServer starts an echo server on tr with small water marks,
// socket buffers and inbound bound maxIn. It skips the test on netpoll,
// which cannot stop reading.
func pausingEchoServer(t *testing.T, tr mai.Transport, maxIn int, opts ...mai.Option) (*recorder, *ProtocolEngine[[]byte], string) {
	t.Helper()
	if tr == mai.TransportNetpoll {
		t.Skip("netpoll limitation: it cannot stop reading, so the held input goes over the bound (TestFloodNotReading)")
	}
	r := newRecorder(t)
	r.onFrame = func(c mai.Context[[]byte], f []byte) error { return c.Send(f) }
	e, addr := server(t, r, lengthField(t, 1<<10), append(opts, mai.WithTransport(tr),
		mai.WithWriteBufferWaterMarks(lowWater, highWater), mai.WithMaxFrameSize(4<<10),
		mai.WithMaxInboundBytes(maxIn), mai.WithListenControl(sockBufs(0, serverSnd)))...)
	return r, e, addr
}

// TestPipelinedPeerSlowed: a client pipelines far more requests than the
// server's inbound bound before it reads any reply. The server pauses,
// holds input up to the bound, and stops reading; once the client reads,
// every reply arrives, in order, and nothing failed.
func TestPipelinedPeerSlowed(t *testing.T) {
	const (
		maxIn  = 16 << 10
		frames = 2000
	)
	payload := bytes.Repeat([]byte{'p'}, 500)
	frameLen := uint64(4 + len(payload))
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r, e, addr := pausingEchoServer(t, tr, maxIn)
		c := dialBufs(t, addr, clientRcv, 0)
		ctx := recv(t, r.ready, "ready")

		wrote := make(chan error, 1)
		go func() {
			var batch []byte
			for i := 0; i < frames; i++ {
				batch = append(batch, frame(payload)...)
				if len(batch) >= 16<<10 || i == frames-1 {
					if _, err := c.Write(batch); err != nil {
						wrote <- err
						return
					}
					batch = batch[:0]
				}
			}
			wrote <- nil
		}()
		// The server holds a bound's worth of input it does not decode: it
		// is paused, and read ahead as far as it may.
		eventually(t, "the server to hold its inbound bound", func() bool {
			info := ctx.Info()
			return info.BytesIn-info.FramesIn*frameLen > maxIn-frameLen
		})
		info := ctx.Info()
		if held := info.BytesIn - info.FramesIn*frameLen; held > maxIn {
			t.Fatalf("the server holds %d bytes, over its bound %d", held, maxIn)
		}
		if info.FramesIn >= frames {
			t.Fatalf("the server decoded all %d frames while the client read nothing", info.FramesIn)
		}
		br := bufio.NewReader(c)
		if err := readFrames(br, frames, payload); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, wrote, "the client's writes"); err != nil {
			t.Fatal(err)
		}
		echoRoundTrip(t, c, "after the pipeline")
		if errs := r.errorsOf(ctx.ID()); len(errs) > 0 {
			t.Errorf("OnError: %v", errs)
		}
		if n := e.Len(); n != 1 {
			t.Errorf("%d connections, want the client's", n)
		}
	})
}

// TestReadTimeoutWhilePaused: a connection that stopped reading for a
// pause holds a partial frame it will not read the rest of until the
// pause ends. The read timeout does not count that time: a witness timer
// three read timeouts long fires first, and once the client reads, every
// reply comes.
func TestReadTimeoutWhilePaused(t *testing.T) {
	const (
		maxIn       = 16 << 10
		frames      = 2000
		readTimeout = 50 * time.Millisecond
	)
	payload := bytes.Repeat([]byte{'r'}, 500)
	frameLen := uint64(4 + len(payload))
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r, _, addr := pausingEchoServer(t, tr, maxIn, mai.WithReadTimeout(readTimeout))
		timeouts := r.collectTimeouts(16, false)
		c := dialBufs(t, addr, clientRcv, 0)
		ctx := recv(t, r.ready, "ready")
		wrote := make(chan error, 1)
		go func() {
			var all []byte
			for range frames {
				all = append(all, frame(payload)...)
			}
			_, err := c.Write(all)
			wrote <- err
		}()
		eventually(t, "the server to hold its inbound bound", func() bool {
			info := ctx.Info()
			return info.BytesIn-info.FramesIn*frameLen > maxIn-frameLen
		})
		if _, err := ctx.SetTimer(3*readTimeout, "witness"); err != nil {
			t.Fatal(err)
		}
		if to := recv(t, timeouts, "a timeout"); to.Kind != mai.TimeoutTimer {
			t.Fatalf("%v timeout while paused, before the witness timer", to.Kind)
		}
		if err := readFrames(bufio.NewReader(c), frames, payload); err != nil {
			t.Fatalf("%v; server errors %v", err, r.errorsOf(ctx.ID()))
		}
		if err := recv(t, wrote, "the client's writes"); err != nil {
			t.Fatal(err)
		}
	})
}

// pipeClient sends n requests of payload, from a goroutine of its own
// started by OnReady, waiting for writability whenever Send reports
// backpressure, and checks the replies.
type pipeClient struct {
	protocol.Base[[]byte]
	n        int
	payload  []byte
	writable chan struct{} // 1-buffered: the queue drained
	sent     chan error    // the sender's end
	got      atomic.Int64  // replies
	done     chan struct{} // closed with the last reply
	closed   chan struct{} // closed by OnClosed
	cause    error         // OnClosed's; read after closed
}

func newPipeClient(n int, payload []byte) *pipeClient {
	return &pipeClient{n: n, payload: payload, writable: make(chan struct{}, 1),
		sent: make(chan error, 1), done: make(chan struct{}), closed: make(chan struct{})}
}

func (p *pipeClient) OnReady(c mai.Context[[]byte]) error {
	go func() { p.sent <- p.send(c) }()
	return nil
}

func (p *pipeClient) send(c mai.Context[[]byte]) error {
	for i := 0; i < p.n; {
		err := c.Send(p.payload)
		switch {
		case err == nil:
			i++
		case errors.Is(err, mai.ErrBackpressure):
			select {
			case <-p.writable:
			case <-p.closed:
				return fmt.Errorf("request %d: the connection closed while it waited: %w", i, p.cause)
			case <-time.After(waitLimit):
				return fmt.Errorf("request %d: not writable again within %v", i, waitLimit)
			}
		default:
			return fmt.Errorf("request %d: %w", i, err)
		}
	}
	return nil
}

func (p *pipeClient) OnWritabilityChanged(_ mai.Context[[]byte], writable bool) {
	if writable {
		select {
		case p.writable <- struct{}{}:
		default:
		}
	}
}

func (p *pipeClient) OnClosed(_ mai.Context[[]byte], err error) {
	p.cause = err
	close(p.closed)
}

func (p *pipeClient) OnFrame(_ mai.Context[[]byte], f []byte) error {
	if !bytes.Equal(f, p.payload) {
		return fmt.Errorf("reply %d: %d bytes, want %d", p.got.Load(), len(f), len(p.payload))
	}
	if p.got.Add(1) == int64(p.n) {
		close(p.done)
	}
	return nil
}

// TestPipelinedMaiPeers: a mai client with the read pause off, as
// WithReadPause advises for clients, pipelines a burst many times its own
// and the server's high water marks and inbound bound to a mai server with
// the pause on. Both queues fill and the server stops reading, yet the
// client goes on reading replies, so the server's queue drains, it reads
// again, and every request is answered.
func TestPipelinedMaiPeers(t *testing.T) {
	const n = 4000
	payload := bytes.Repeat([]byte{'q'}, 1000)
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		sr, _, addr := pausingEchoServer(t, tr, 16<<10)
		pc := newPipeClient(n, payload)
		cl, err := New(lengthField(t, 1<<10), pc, mai.WithTransport(tr), mai.WithReadPause(false),
			mai.WithWriteBufferWaterMarks(lowWater, highWater), mai.WithMaxFrameSize(4<<10))
		if err != nil {
			t.Fatal(err)
		}
		defer shutdown(t, cl)
		if _, err := cl.Dial(context.Background(), "tcp", addr); err != nil {
			t.Fatal(err)
		}
		sctx := recv(t, sr.ready, "the server's ready")
		if err := recv(t, pc.sent, "the client's requests"); err != nil {
			t.Fatalf("%v; server errors %v, events %v", err, sr.errorsOf(sctx.ID()), sr.events(sctx.ID())[max(0, len(sr.events(sctx.ID()))-4):])
		}
		select {
		case <-pc.done:
		case <-pc.closed:
			t.Fatalf("the client closed after %d replies: %v; server errors %v", pc.got.Load(), pc.cause, sr.errorsOf(sctx.ID()))
		case <-time.After(waitLimit):
			t.Fatalf("%d replies of %d within %v; server %+v", pc.got.Load(), n, waitLimit, sctx.Info())
		}
		if errs := sr.errorsOf(sctx.ID()); len(errs) > 0 {
			t.Errorf("server OnError: %v", errs)
		}
		if info := sctx.Info(); info.FramesIn != n {
			t.Errorf("server decoded %d frames, want %d", info.FramesIn, n)
		}
	})
}

// TestReadRoom: what the read path tells the transport it may read next.
// A transport that reads no more never makes the connection fail with
// ErrInboundLimit: while paused the room is what is left of the bound, 0
// once the held input fills it; and when the pause has ended but its
// resume event has not run yet, the held input is decoded first, so that
// the room is not a byte the held input has no space for.
func TestReadRoom(t *testing.T) {
	const (
		bound = 1024
		size  = 64 // a frame: 4 bytes of header and 60 of payload
	)
	e, err := New(lengthField(t, 60), echo{}, mai.WithWriteBufferWaterMarks(0, 4*size),
		mai.WithMaxFrameSize(size), mai.WithMaxInboundBytes(bound))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, e)
	gate := &gateWriter{open: make(chan struct{})}
	c := bareConn(t, e, gate)
	frames := func(n int) []byte { return bytes.Repeat(frame(make([]byte, size-4)), n) }
	// held takes the runner role, as a transport does, so that no event
	// posted meanwhile is stranded.
	held := func() (n int) {
		c.serial.Lock()
		c.setFlag(flRunning)
		if c.pend != nil {
			n = c.unread()
		}
		c.release()
		return n
	}

	if room := c.readRoom(); room != bound {
		t.Fatalf("room of a new connection %d, want the bound %d", room, bound)
	}
	// The echoes cross the high mark (a flusher takes them and waits at
	// the gate): decoding pauses, the rest of the input is held.
	sent := bound / size
	room := c.input(frames(sent))
	if !c.hasFlag(flPaused) {
		t.Fatal("not paused over the high mark")
	}
	h := held()
	if h == 0 || room != bound-h {
		t.Fatalf("room %d with %d bytes held, want %d", room, h, bound-h)
	}
	sent += room / size
	if room = c.input(frames(room / size)); room != 0 || held() != bound {
		t.Fatalf("room %d with %d bytes held, want 0 with the bound %d", room, held(), bound)
	}
	if room = c.readRoom(); room != 0 {
		t.Fatalf("readRoom %d while paused and full, want 0", room)
	}

	// The pause ends while a runner holds the connection, so the resume
	// event waits in the mailbox.
	c.serial.Lock()
	c.setFlag(flRunning)
	close(gate.open)
	eventually(t, "the pause to end", func() bool { return !c.hasFlag(flPaused) })
	room = c.roomLocked()
	h = 0
	if c.pend != nil { // nil if all of it was decoded
		h = c.unread()
	}
	c.release()
	if h >= bound || room != bound-h {
		t.Fatalf("room %d with %d bytes held after the pause ended, want the held input decoded first", room, h)
	}
	// The rest is decoded as the queue drains.
	eventually(t, "every frame to be decoded", func() bool { return held() == 0 })
	if n := c.framesIn.Load(); n != uint64(sent) {
		t.Errorf("%d frames decoded, want %d", n, sent)
	}
}

// roomConn is a loopConn whose room is set by the test; the transport
// code under test calls only readRoom.
type roomConn struct {
	loopConn
	room atomic.Int64
}

func (r *roomConn) readRoom() int { return int(r.room.Load()) }

// TestStdWaitRoomPauseEndedBeforeWait: the std reader learned that the
// connection had no room; before it waits, the pause ends (signalling the
// reader) and begins anew with room to read ahead. The reader reads on
// into that room instead of waiting for the end of the new pause, and a
// close ends its wait.
func TestStdWaitRoomPauseEndedBeforeWait(t *testing.T) {
	tr := &stdTransport{wake: make(chan struct{}, 1)}
	c := &roomConn{}
	c.room.Store(100)
	tr.resumeReading() // the end of the pause that gave no room
	got := make(chan int, 1)
	go func() { got <- tr.waitRoom(c) }()
	if room := recv(t, got, "waitRoom"); room != 100 {
		t.Fatalf("waitRoom %d, want 100", room)
	}

	// No room: it waits until the transport closes.
	c.room.Store(0)
	a, b := net.Pipe()
	defer b.Close()
	tr.nc = a
	go func() { got <- tr.waitRoom(c) }()
	tr.close()
	if room := recv(t, got, "waitRoom after close"); room != 0 {
		t.Fatalf("waitRoom %d after close, want 0", room)
	}
}

// TestNoPauseFloodEnds: with the pause off (WithReadPause(false), as
// pipelining clients run), a peer floods small frames and reads nothing;
// the handler ignores its refused Sends. The connection still ends by a
// bound, long before the flood is sent: the write timeout (std and epoll
// read a bounded piece at a time, and the timeout runs between pieces),
// or on netpoll, which reads ahead without a bound, the inbound bound on
// what it read ahead while the connection decoded (or the write timeout,
// which runs between the pieces it is handed). Before, netpoll handed
// all it held at once and held more each time: the connection never
// ended and the heap grew by hundreds of MiB.
func TestNoPauseFloodEnds(t *testing.T) {
	const (
		maxIn    = 256 << 10
		perFlood = 512 << 20 // more than netpoll reads ahead while its reader is starved of CPU
	)
	payload := []byte{'x'}
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newRecorder(t)
		r.onFrame = func(c mai.Context[[]byte], f []byte) error {
			_ = c.Send(f) // refused once the queue is full: dropped
			return nil
		}
		_, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr), mai.WithReadPause(false),
			mai.WithWriteTimeout(200*time.Millisecond), mai.WithMaxInboundBytes(maxIn),
			mai.WithWriteBufferWaterMarks(lowWater, highWater), mai.WithListenControl(sockBufs(0, serverSnd)))
		c := dialBufs(t, addr, clientRcv, 0)
		ctx := recv(t, r.ready, "ready")
		_, sent, err := flood(c, payload, perFlood, nil, nil)
		if err == nil {
			t.Fatalf("the flood of %d MiB was all sent: the server did not end it", sent>>20)
		}
		recv(t, r.closed, "OnClosed")
		cause := r.causeOf(ctx.ID())
		if !errors.Is(cause, mai.ErrWriteTimeout) && !errors.Is(cause, mai.ErrInboundLimit) {
			t.Errorf("OnClosed: %v, want the write timeout or the inbound bound", cause)
		}
		t.Logf("%s: ended after %d MiB: %v", tr, sent>>20, cause)
	})
}

// TestNetpollReadAheadBound: netpoll reads a connection's input with no
// bound of its own, also while a callback runs. A handler slower than its
// peer (here one OnFrame held up while the peer sends 80 MiB, and no
// replies at all, so none back up) must not let that grow without end:
// netpoll holding more than npAheadLimit (8 times the inbound bound, 64 MiB
// at least) closes the connection with ErrInboundLimit. std and epoll stop
// reading instead (a blocked callback stops the reading), which
// TestFloodMemoryBounded covers.
func TestNetpollReadAheadBound(t *testing.T) {
	const (
		maxIn = 64 << 10
		sent  = npReadAheadMin + 16<<20 // over npAheadLimit(maxIn), and far over what the small socket buffers hold
		sock  = 16 << 10
	)
	gate := make(chan struct{})
	var held atomic.Bool
	r := newRecorder(t)
	r.onFrame = func(mai.Context[[]byte], []byte) error {
		if held.CompareAndSwap(false, true) {
			<-gate
		}
		return nil
	}
	_, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(mai.TransportNetpoll),
		mai.WithMaxInboundBytes(maxIn), mai.WithListenControl(sockBufs(sock, 0)))
	c := dialBufs(t, addr, 0, sock)
	ctx := recv(t, r.ready, "OnReady")
	// The writes return once netpoll has read all but what the sockets
	// hold: the first OnFrame is still held up.
	_ = c.SetWriteDeadline(time.Now().Add(waitLimit))
	_, n, err := flood(c, bytes.Repeat([]byte{'x'}, 1000), sent, nil, nil)
	close(gate)
	if err != nil {
		t.Fatalf("write after %d bytes: %v", n, err)
	}
	recv(t, r.closed, "OnClosed")
	if cause := r.causeOf(ctx.ID()); !errors.Is(cause, mai.ErrInboundLimit) {
		t.Fatalf("OnClosed: %v, want ErrInboundLimit", cause)
	}
}
