package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/codec"
)

// The peer's end: what a connection does with the input it holds, and
// how it reports the end, when the peer closes, half closes or resets.

const peerRequests = 64 // requests the tests below pipeline

// peerReply is what the server answers to each request: 1 MiB in all,
// more than any socket here holds, so a client that does not read makes
// the server pause.
var peerReply = bytes.Repeat([]byte{'R'}, 16<<10)

// requestsBytes returns peerRequests frames "req 0", "req 1", ...
func requestsBytes() []byte {
	var in []byte
	for i := range peerRequests {
		in = append(in, frame(fmt.Appendf(nil, "req %d", i))...)
	}
	return in
}

// heldPeer starts a server on tr whose handler is r and codec f, with
// small water marks and socket buffers, and a client that writes in and
// reads nothing. It returns once the server read every byte while
// paused, so that most requests are held undecoded.
func heldPeer(t *testing.T, tr mai.Transport, r *recorder, f codec.Factory[[]byte], in []byte, opts ...mai.Option) (*net.TCPConn, mai.Context[[]byte]) {
	t.Helper()
	_, addr := server(t, r, f, append([]mai.Option{mai.WithTransport(tr),
		mai.WithWriteBufferWaterMarks(lowWater, highWater),
		mai.WithListenControl(sockBufs(0, serverSnd))}, opts...)...)
	c := dialBufs(t, addr, clientRcv, 0).(*net.TCPConn)
	ctx := recv(t, r.ready, "ready")
	if _, err := c.Write(in); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the server to read every request while paused", func() bool {
		info := ctx.Info()
		return info.BytesIn == uint64(len(in)) && !info.Writable
	})
	return c, ctx
}

// failingCodec is a length-field codec that fails on the frame bad.
type failingCodec struct {
	codec.Codec[[]byte]
	bad string
}

func (b failingCodec) Decode(src []byte) ([]byte, int, error) {
	f, n, err := b.Codec.Decode(src)
	if err == nil && n > 0 && string(f) == b.bad {
		return nil, 0, errors.New("bad frame")
	}
	return f, n, err
}

// TestPeerEndDeliversHeldFrames: a client pipelines requests without
// reading the large replies, so the server pauses and holds the rest of
// its requests undecoded; then the client ends the connection. The frames
// that arrived whole are still delivered, in order, before OnClosed (their
// Sends fail with ErrClosed, which is not reported as an error), and
// OnClosed tells how the peer ended: io.EOF, ErrPartialFrame for the
// bytes of a frame it did not finish, or its reset. What a handler does
// in one of those frames (request 40) counts: an error or a panic ends
// the delivery and is reported, as a codec error is; Close and Abort are
// ErrClosed by then, and the delivery goes on.
func TestPeerEndDeliversHeldFrames(t *testing.T) {
	const at = 40
	errStop := errors.New("stop here")
	halfClose := (*net.TCPConn).CloseWrite
	reset := func(c *net.TCPConn) error {
		if err := c.SetLinger(0); err != nil {
			return err
		}
		return c.Close()
	}
	isEOF := func(err error) bool { return errors.Is(err, io.EOF) }
	for _, tc := range []struct {
		name      string
		partial   []byte // sent after the requests
		end       func(c *net.TCPConn) error
		act       func(c mai.Context[[]byte]) error // OnFrame of request 40, if set
		badCodec  bool                              // the codec fails on request 40
		delivered int                               // requests OnFrame sees
		cause     func(err error) bool
		onError   error // what OnError sees, if anything
	}{
		{name: "half close", end: halfClose, delivered: peerRequests, cause: isEOF},
		{name: "half close inside a frame", partial: []byte{0, 0, 1}, end: halfClose,
			delivered: peerRequests, cause: func(err error) bool {
				return errors.Is(err, mai.ErrPartialFrame) && strings.Contains(err.Error(), "(3 bytes)")
			}},
		{name: "reset", end: reset, delivered: peerRequests,
			cause: func(err error) bool { return err != nil && !errors.Is(err, mai.ErrPartialFrame) }},
		{name: "handler error", end: halfClose, delivered: at + 1, cause: isEOF, onError: errStop,
			act: func(mai.Context[[]byte]) error { return errStop }},
		{name: "handler panic", end: halfClose, delivered: at + 1, cause: isEOF, onError: mai.ErrPanic,
			act: func(mai.Context[[]byte]) error { panic("boom") }},
		{name: "codec error", end: halfClose, badCodec: true, delivered: at, cause: isEOF, onError: mai.ErrProtocol},
		{name: "Close", end: halfClose, delivered: peerRequests, cause: isEOF,
			act: func(c mai.Context[[]byte]) error {
				if err := c.Close(); !errors.Is(err, mai.ErrClosed) {
					return fmt.Errorf("Close: %v, want ErrClosed", err)
				}
				return nil
			}},
		{name: "Abort", end: halfClose, delivered: peerRequests, cause: isEOF,
			act: func(c mai.Context[[]byte]) error { return c.Abort() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr mai.Transport) {
				r := newRecorder(t)
				got := make(chan string, peerRequests)
				atName := fmt.Sprintf("req %d", at)
				r.onFrame = func(c mai.Context[[]byte], f []byte) error {
					got <- string(f)
					if tc.act != nil && string(f) == atName {
						return tc.act(c)
					}
					return c.Send(peerReply)
				}
				f := lengthField(t, 64<<10)
				if tc.badCodec {
					lf := f
					f = func() codec.Codec[[]byte] { return failingCodec{lf(), atName} }
				}
				c, ctx := heldPeer(t, tr, r, f, append(requestsBytes(), tc.partial...))
				if n := ctx.Info().FramesIn; n >= at {
					t.Fatalf("the server decoded %d requests before the end: too few were held", n)
				}
				if err := tc.end(c); err != nil {
					t.Fatal(err)
				}
				if id := recv(t, r.closed, "OnClosed"); id != ctx.ID() {
					t.Fatalf("OnClosed for %v, want %v", id, ctx.ID())
				}
				close(got)
				i := 0
				for s := range got {
					if want := fmt.Sprintf("req %d", i); s != want {
						t.Fatalf("frame %d is %q, want %q", i, s, want)
					}
					i++
				}
				if i != tc.delivered {
					t.Errorf("OnFrame saw %d of the %d requests, want %d", i, peerRequests, tc.delivered)
				}
				if cause := r.causeOf(ctx.ID()); !tc.cause(cause) {
					t.Errorf("OnClosed: %v", cause)
				}
				errs := r.errorsOf(ctx.ID())
				switch {
				case tc.onError != nil && (len(errs) != 1 || !errors.Is(errs[0], tc.onError)):
					t.Errorf("OnError: %v, want %v", errs, tc.onError)
				case tc.onError == nil:
					for _, err := range errs {
						if errors.Is(err, mai.ErrClosed) {
							t.Errorf("OnError: %v", err)
						}
					}
				}
				r.check()
			})
		})
	}
}

// TestPeerEndWithoutWaiting: the client writes its requests and half
// closes at once, without waiting for the server to read them, so the
// end can reach the server while it still reads or decodes them; and,
// replies failing once it has, the handler ignores Send's errors. Every
// request is delivered, with the pause on or off. On netpoll the
// connection is closed by netpoll at the hang-up, before OnRequest has
// been given all it read: mai does not close it again (which would stop
// OnRequest) and keeps what comes for the delivery.
func TestPeerEndWithoutWaiting(t *testing.T) {
	for _, pause := range []bool{true, false} {
		t.Run(fmt.Sprintf("pause %v", pause), func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr mai.Transport) {
				r := newRecorder(t)
				var n atomic.Int32
				r.onFrame = func(c mai.Context[[]byte], f []byte) error {
					n.Add(1)
					_ = c.Send(peerReply)
					return nil
				}
				_, addr := server(t, r, lengthField(t, 64<<10), mai.WithTransport(tr),
					mai.WithReadPause(pause), mai.WithWriteBufferWaterMarks(lowWater, highWater))
				c := dialBufs(t, addr, clientRcv, 0).(*net.TCPConn)
				ctx := recv(t, r.ready, "ready")
				if _, err := c.Write(requestsBytes()); err != nil {
					t.Fatal(err)
				}
				if err := c.CloseWrite(); err != nil {
					t.Fatal(err)
				}
				recv(t, r.closed, "OnClosed")
				if got := n.Load(); got != peerRequests {
					t.Errorf("%d of %d requests delivered; OnClosed(%v)", got, peerRequests, r.causeOf(ctx.ID()))
				}
				r.check()
			})
		})
	}
}

// countLateFrames makes r's OnFrame reply with peerReply and count the
// frames it gets once closed is set: frames after the close.
func countLateFrames(r *recorder) (closed *atomic.Bool, late *atomic.Int32) {
	closed, late = new(atomic.Bool), new(atomic.Int32)
	r.onFrame = func(c mai.Context[[]byte], f []byte) error {
		if closed.Load() {
			late.Add(1)
		}
		return c.Send(peerReply)
	}
	return closed, late
}

// TestLocalEndDropsHeldFrames: when this side ends a paused connection
// (Abort; Close followed by the peer's reset; the write timeout), the
// frames it holds are dropped: no OnFrame runs after the close.
func TestLocalEndDropsHeldFrames(t *testing.T) {
	for _, mode := range []string{"abort", "close then reset", "write timeout"} {
		t.Run(mode, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr mai.Transport) {
				r := newRecorder(t)
				closed, late := countLateFrames(r)
				var opts []mai.Option
				if mode == "write timeout" {
					opts = append(opts, mai.WithWriteTimeout(200*time.Millisecond))
					r.onTimeout = func(c mai.Context[[]byte], to mai.Timeout) error {
						closed.Store(true)
						return to.Err()
					}
				}
				c, ctx := heldPeer(t, tr, r, lengthField(t, 64<<10), requestsBytes(), opts...)
				switch mode {
				case "abort":
					closed.Store(true)
					if err := ctx.Abort(); err != nil {
						t.Fatal(err)
					}
				case "close then reset":
					closed.Store(true)
					if err := ctx.Close(); err != nil {
						t.Fatal(err)
					}
					if err := c.SetLinger(0); err != nil {
						t.Fatal(err)
					}
					c.Close()
				}
				recv(t, r.closed, "OnClosed")
				if n := late.Load(); n > 0 {
					t.Errorf("%d OnFrame calls after the close (cause %v)", n, r.causeOf(ctx.ID()))
				}
				r.check()
			})
		})
	}
}

// eofConn is a net.Conn without a descriptor (so the std transport takes
// it): Read hands out in, then waits for eof and returns io.EOF; Write
// waits for Close (a peer that reads nothing); Close signals inClose and
// waits for letClose before it completes.
type eofConn struct {
	in                     []byte
	eof, inClose, letClose chan struct{}
	closed                 chan struct{}
	closeOnce              atomic.Bool
}

func newEOFConn(in []byte) *eofConn {
	return &eofConn{in: in, eof: make(chan struct{}), inClose: make(chan struct{}),
		letClose: make(chan struct{}), closed: make(chan struct{})}
}

func (e *eofConn) Read(p []byte) (int, error) {
	if len(e.in) > 0 {
		n := copy(p, e.in)
		e.in = e.in[n:]
		return n, nil
	}
	select {
	case <-e.eof:
		return 0, io.EOF
	case <-e.closed:
		return 0, net.ErrClosed
	}
}

func (e *eofConn) Write([]byte) (int, error) {
	<-e.closed
	return 0, net.ErrClosed
}

func (e *eofConn) Close() error {
	if e.closeOnce.CompareAndSwap(false, true) {
		close(e.inClose)
		<-e.letClose
		close(e.closed)
	}
	return nil
}

func (*eofConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (*eofConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (*eofConn) SetDeadline(time.Time) error      { return nil }
func (*eofConn) SetReadDeadline(time.Time) error  { return nil }
func (*eofConn) SetWriteDeadline(time.Time) error { return nil }

// TestCloseBetweenPeerEndAndTransportClose: the std reader has read the
// peer's EOF and is closing the socket when the application calls Close,
// which succeeds. The close is then the application's: the frames held
// are dropped, not delivered after its Close returned.
func TestCloseBetweenPeerEndAndTransportClose(t *testing.T) {
	r := newRecorder(t)
	closedByApp, late := countLateFrames(r)
	e, err := New(lengthField(t, 64<<10), r, mai.WithTransport(mai.TransportStd),
		mai.WithWriteBufferWaterMarks(lowWater, highWater))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, e)
	in := requestsBytes()
	nc := newEOFConn(in)
	if _, err := e.Manage(nc); err != nil {
		t.Fatal(err)
	}
	ctx := recv(t, r.ready, "ready")
	eventually(t, "the server to read every request while paused", func() bool {
		info := ctx.Info()
		return info.BytesIn == uint64(len(in)) && !info.Writable
	})
	close(nc.eof) // the reader gets EOF, records it, and closes the socket
	<-nc.inClose  // ... which waits here: the transport has not reported the close
	closedByApp.Store(true)
	if err := ctx.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	close(nc.letClose)
	recv(t, r.closed, "OnClosed")
	if n := late.Load(); n > 0 {
		t.Errorf("%d OnFrame calls after Close returned nil", n)
	}
	r.check()
}
