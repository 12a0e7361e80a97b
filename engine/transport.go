package engine

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/mai-go/mai/codec"
)

// transport is the I/O layer under a connection. It delivers input by
// calling conn.input (never concurrently for one connection), and calls
// conn.transportClosed exactly once after the last input.
type transport interface {
	// write writes what the socket takes of p now, without waiting, and
	// returns how much that was: a short count with a nil error means the
	// socket is full. Only the connection's flush loop calls it, so never
	// concurrently. The runner uses it, so a peer that does not read can
	// never hold up the read path.
	write(p []byte) (int, error)
	// waitWritable blocks until the socket can take more bytes, or fails
	// once the connection is closed. Transports that implement
	// blockingWriter are never asked.
	waitWritable() error
	// close closes the connection now. It is idempotent, safe from any
	// goroutine, and wakes a blocked write.
	close()
}

// headerEncoder is a codec that splits its encoding of a frame into a
// header and a payload that is the frame's own bytes, unchanged
// (codec.LengthField.EncodeHeader): Send can then write a large payload
// without copying it (see conn.sendDirect).
type headerEncoder[F any] interface {
	EncodeHeader(dst []byte, frame F) (header []byte, payload []byte, err error)
}

// directCodec reports whether Send may use cd's EncodeHeader. Only the
// codec package's own types qualify, matched by their exact type: a
// user's codec that embeds one of them and changes its Encode would
// otherwise have the embedded EncodeHeader bypass its Encode.
func directCodec[F any](cd codec.Codec[F]) bool {
	switch any(cd).(type) {
	case *codec.LengthField, *codec.Raw:
		return true
	}
	return false
}

// vectorWriter is implemented by transports that can write two slices
// with one system call. Send uses it to write a large payload straight
// from the frame (see conn.sendDirect).
type vectorWriter interface {
	// writev is write for h followed by p.
	writev(h, p []byte) (int, error)
}

// readPauser is implemented by transports that stop reading the socket
// when the connection has no room for more input (conn.input returned 0:
// decoding is paused and the held input fills WithMaxInboundBytes), so that
// TCP slows the peer down instead of the connection failing with
// ErrInboundLimit. resumeReading is called, from any goroutine, after the
// pause ended (flPaused was cleared): only that gives room back to a
// connection that had none. The transport then asks conn.readRoom again,
// as the connection may have paused anew. To lose no wake-up, a transport
// that stops reading asks conn.readRoom after it has recorded that it
// stopped (under the lock resumeReading takes, or with a signal that
// resumeReading leaves for it), and reads on if there is room: the pause
// may have ended meanwhile, and begun anew with room to read ahead.
type readPauser interface {
	resumeReading()
}

// blockingWriter is implemented by transports that can only wait for the
// socket by writing: flusher goroutines (never the runner) write the rest
// of a batch with writeAll, which returns when all of p is written or the
// connection failed.
type blockingWriter interface {
	writeAll(p []byte) error
}

// stdTransport drives a net.Conn with one reading goroutine.
type stdTransport struct {
	nc        net.Conn
	raw       syscall.RawConn // nil when nc has no descriptor (TLS, pipes)
	closeOnce sync.Once

	// The reading goroutine waits on wake while the connection has no room
	// for input; resumeReading and close signal it, and it checks again.
	wake    chan struct{}
	closing atomic.Bool

	// The non-blocking write's callback and its arguments, made once so
	// that a write allocates nothing. Only the flush loop uses them.
	writeFn func(fd uintptr) bool
	wh, wp  []byte // wh: writev's first slice, else empty
	wn      int
	werr    error
}

// write tries one non-blocking write through the descriptor; a net.Conn
// without one writes nothing here and leaves everything to writeAll.
func (t *stdTransport) write(p []byte) (int, error) {
	if t.raw == nil {
		return 0, nil
	}
	t.wp = p
	err := t.raw.Write(t.writeFn)
	n, werr := t.wn, t.werr
	t.wp, t.wn, t.werr = nil, 0, nil
	if err != nil {
		return 0, err
	}
	return n, werr
}

// writev is write for h followed by p, with one system call.
func (t *stdTransport) writev(h, p []byte) (int, error) {
	t.wh = h
	n, err := t.write(p)
	t.wh = nil
	return n, err
}

func (t *stdTransport) writeAll(p []byte) error {
	_, err := t.nc.Write(p)
	return err
}

func (t *stdTransport) waitWritable() error { return nil }

func (t *stdTransport) close() {
	t.closeOnce.Do(func() {
		t.closing.Store(true)
		t.signal()
		_ = t.nc.Close()
	})
}

func (t *stdTransport) resumeReading() { t.signal() }

// lingerDup implements lingerer, for connections with a descriptor.
func (t *stdTransport) lingerDup(sending bool) (fd int, ok bool) {
	if t.raw == nil {
		return -1, false
	}
	_ = t.raw.Control(func(s uintptr) {
		if sending || lingerDue(int(s)) {
			fd, ok = dupFD(int(s))
		}
	})
	return fd, ok
}

// signal wakes the reading goroutine if it waits; a signal it was not
// waiting for makes its next wait check once more.
func (t *stdTransport) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// waitRoom waits until c can take input again, or the transport closes,
// and returns how much it can take (0 once closing: the next read fails).
// The reading goroutine only.
func (t *stdTransport) waitRoom(c loopConn) int {
	for !t.closing.Load() {
		if room := c.readRoom(); room > 0 {
			return room
		}
		// A readRoom of 0 means a pause that is on: its end signals
		// wake after this, or did before and left the signal in its slot.
		<-t.wake
	}
	return 0
}

// attachStd starts the reading goroutine of c over nc.
func (e *ProtocolEngine[F]) attachStd(c *conn[F], nc net.Conn) {
	t := &stdTransport{nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			t.raw = raw
			t.writeFn = func(fd uintptr) bool {
				t.wn, t.werr = rawWritev(fd, t.wh, t.wp)
				return true // never wait here
			}
		}
	}
	t.wake = make(chan struct{}, 1)
	c.tr = t
	e.spawn(func() { readLoop(c, t) })
}

// readLoop reads into a pooled buffer and hands what arrives to the
// connection until the connection fails or closes. It reads no more than
// the connection has room for, and while it has none (decoding is paused
// and the held input fills the inbound bound) it does not read at all.
func readLoop[F any](c *conn[F], t *stdTransport) {
	buf := c.e.pool.Get()
	// A callback may end the goroutine (runtime.Goexit): input's guard
	// fails the connection, and reading goes on on another goroutine until
	// the close.
	ended := false
	defer onGoexit(&ended, func() { c.e.spawn(func() { readLoop(c, t) }) })
	room := c.readRoom()
	var err error
	for {
		if room == 0 {
			room = t.waitRoom(c)
			// Closing: the read fails at once (a net.Conn without a
			// descriptor may take a 0-byte read for a no-op).
			room = max(room, 1)
		}
		var n int
		n, err = t.nc.Read(buf.B[:min(cap(buf.B), room)])
		if n > 0 {
			room = c.input(buf.B[:n])
		}
		if err != nil {
			break
		}
	}
	ended = true
	c.e.pool.Put(buf)
	if errors.Is(err, net.ErrClosed) {
		err = nil // we closed it: the cause is already recorded
	} else if errors.Is(err, io.EOF) {
		err = io.EOF
	}
	// Record why before closing: a write failing on the closed socket
	// must not become the cause.
	c.peerEnded(err)
	t.close()
	c.transportClosed(err)
}

// loopConn is what an event-loop transport needs from a connection; it
// keeps the loop code free of the frame type.
type loopConn interface {
	// setTransport installs the transport; called by attach before the
	// descriptor can produce any event.
	setTransport(t transport)
	// input hands over bytes that arrived, and returns the most the
	// transport may read next (see conn.input).
	input(data []byte) (room int)
	// readRoom is input's result without an input (see conn.readRoom).
	readRoom() int
	// transportClosed reports the end of the connection, exactly once.
	transportClosed(err error)
	// release runs the connection's pending callbacks and lets go of its
	// runner role, which the caller was handed (see epConn.start).
	release()
}

func (c *conn[F]) setTransport(t transport) { c.tr = t }

var _ loopConn = (*conn[[]byte])(nil)
