//go:build (linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le || s390x)) || ((darwin || freebsd || netbsd || openbsd || dragonfly) && (amd64 || arm64))

package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cloudwego/netpoll"
	"golang.org/x/sys/unix"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/bufpool"
)

const netpollSupported = true

// npTransport drives a connection with netpoll: input arrives in OnRequest
// on netpoll's goroutine pool, and the flush loop writes through the
// connection's Writer (WriteBinary, then one Flush per batch).
//
// The runner's non-blocking write goes straight to the descriptor: netpoll's
// output buffer is empty then, since the one flush loop of the connection
// only starts a write once the previous Flush returned. fdMu keeps that
// write from meeting the descriptor's close (and a reuse of its number),
// and the flusher's writes through netpoll's Writer from meeting the
// recycling of its output buffer: our close callback runs before
// netpoll's own, which does both, and takes fdMu for writing.
type npTransport struct {
	nc     netpoll.Connection
	fd     int
	fdMu   sync.RWMutex // guards fdGone against direct writes
	fdGone bool
	// handing is how much of netpoll's input npRequest is handing to the
	// connection and has not skipped yet (see lingerDup).
	handing atomic.Int64
}

func (t *npTransport) write(p []byte) (int, error) { return t.writev(nil, p) }

// writev is write for h followed by p.
func (t *npTransport) writev(h, p []byte) (int, error) {
	t.fdMu.RLock()
	defer t.fdMu.RUnlock()
	if t.fdGone {
		return 0, fmt.Errorf("write: %w", mai.ErrClosed)
	}
	return rawWritev(uintptr(t.fd), h, p)
}

// writeAll writes through netpoll's Writer: the bytes are copied or
// referenced into its output buffer and Flush waits until they are sent.
// netpoll closes a connection whose peer hung up, even half way, and fails
// the writes waiting then with ErrConnClosed, or with whatever a write
// meets once it let go of the descriptor (ENOENT from epoll_ctl): that is
// the peer's end, and is reported as the close callback reports it,
// io.EOF. (Had we closed the connection, its cause would be recorded
// already.)
//
// It holds fdMu for reading, as the direct write does: netpoll recycles
// the connection's output buffer when it closes, after our close callback
// (fdClosing) ran, and a WriteBinary meeting that panics inside netpoll.
// A Flush waiting for the socket does not hold fdClosing up for long:
// netpoll wakes it with ErrConnClosed before it runs the close callbacks.
func (t *npTransport) writeAll(p []byte) error {
	t.fdMu.RLock()
	defer t.fdMu.RUnlock()
	if t.fdGone {
		return fmt.Errorf("write: %w", mai.ErrClosed)
	}
	w := t.nc.Writer()
	_, err := w.WriteBinary(p)
	if err == nil {
		err = w.Flush()
	}
	if err != nil && (errors.Is(err, netpoll.ErrConnClosed) || !t.nc.IsActive()) {
		return fmt.Errorf("%w (%w)", io.EOF, err)
	}
	return err
}

func (t *npTransport) waitWritable() error { return nil }

// fdClosing is called from our close callback, before netpoll closes the
// descriptor.
func (t *npTransport) fdClosing() {
	t.fdMu.Lock()
	t.fdGone = true
	t.fdMu.Unlock()
}

// close closes the connection, unless netpoll closed it already: it does
// when the peer hangs up (once OnRequest is set, which attachNetpoll sees
// to), and then goes on handing OnRequest what it read before the
// hang-up, and runs the close callbacks after. Closing it again would stop
// that (netpoll's Close marks it closed by the user, and OnRequest is not
// called again), and the peer's last frames would be lost.
func (t *npTransport) close() {
	if t.nc.IsActive() {
		_ = t.nc.Close()
	}
}

// attachNetpoll moves nc's socket to netpoll: its descriptor is duplicated
// (close-on-exec) and nc is closed, so the Go runtime's poller lets go of it.
// It reports ErrUnsupported for a net.Conn without a descriptor (TLS, pipes);
// the caller then uses the std transport.
func (e *ProtocolEngine[F]) attachNetpoll(c *conn[F], nc net.Conn) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return mai.ErrUnsupported
	}
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return mai.ErrUnsupported
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("%w: %w", mai.ErrUnsupported, err)
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return fmt.Errorf("%w: %w", mai.ErrUnsupported, err)
	}
	if dupErr != nil {
		return fmt.Errorf("mai: duplicate descriptor: %w", dupErr)
	}
	_ = nc.Close()
	npc, err := netpoll.NewFDConnection(fd)
	if err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("mai: netpoll connection: %w", err)
	}
	t := &npTransport{nc: npc, fd: fd}
	c.tr = t
	_ = npc.AddCloseCallback(func(netpoll.Connection) error {
		// The end is recorded first: a write that fails for fdClosing
		// must not become its cause.
		c.transportClosed(nil)
		t.fdClosing()
		return nil
	})
	bound := e.opts.MaxInboundBytes
	ahead := npAheadLimit(bound)
	_ = npc.SetOnRequest(func(_ context.Context, nconn netpoll.Connection) error {
		return npRequest(c, t, nconn.Reader(), bound, ahead)
	})
	// The peer may have hung up before OnRequest was set, when netpoll does
	// not run close callbacks by itself: closing runs ours (t.close would
	// leave it to netpoll).
	if !npc.IsActive() {
		_ = npc.Close()
	}
	return nil
}

// npChunk is the least input npRequest hands over at once.
const npChunk = 64 << 10

// npReadAhead is how many times the inbound bound, and npReadAheadMin the
// least, netpoll may hold unread by the connection while its replies do
// not back up (see npRequest). The floor keeps a pipelining peer that
// reads its replies from being closed where frames are small: the bench's
// s4 keeps 512 KiB in flight, and redis-cli --pipe writes as fast as it
// can.
const (
	npReadAhead    = 8
	npReadAheadMin = 64 << 20
)

// npAheadLimit is npRequest's read-ahead limit for the inbound bound.
func npAheadLimit(bound int) int { return max(npReadAhead*bound, npReadAheadMin) }

// npRequest hands what netpoll read to c. netpoll reads with no bound of
// its own, also while the connection decodes and while a callback runs, so
// a peer that sends faster than the connection takes its input would grow
// netpoll's buffer without end; the connection fails with ErrInboundLimit
// instead when netpoll holds
//   - more than the bound while the connection's replies back up over the
//     high mark (the peer does not read what it is sent), or
//   - more than ahead (npAheadLimit) however the replies go (the handler
//     is slower than its peer, who may read every reply, or the handler
//     sends none).
//
// A peer that reads its replies and sends no faster than the handler takes
// its frames is not stopped: a server answering a pipelining client
// receives what it asked for.
//
// Input over the bound is handed over in pieces of the bound, so that the
// checks run, and the connection's queued events (timeouts) too, between
// them; input within it goes whole, and netpoll calls again for what
// arrived meanwhile.
func npRequest[F any](c *conn[F], t *npTransport, r netpoll.Reader, bound, ahead int) error {
	for n := r.Len(); n > 0; n = r.Len() {
		if n > bound && (n > ahead || !c.Writable()) {
			c.inboundOverrun(n)
			// Consume it all: netpoll calls OnRequest again while input
			// remains on a connection it closed itself.
			_ = r.Skip(n)
			return r.Release()
		}
		k := min(n, max(bound, npChunk))
		buf, err := r.Peek(k)
		if err != nil {
			return err
		}
		t.handing.Store(int64(k))
		c.input(buf)
		_ = r.Skip(k)
		t.handing.Store(0)
		if err := r.Release(); err != nil || k == n {
			return err
		}
	}
	return nil
}

// setPollers sets netpoll's number of pollers, process-wide.
func setPollers(n int) error { return netpoll.Configure(netpoll.Config{PollerNum: n}) }

// lingerDup implements lingerer: input netpoll read ahead and mai did not
// take counts as the kernel's unread input does.
func (t *npTransport) lingerDup(sending bool) (int, bool) {
	t.fdMu.RLock()
	defer t.fdMu.RUnlock()
	// What npRequest is handing to the connection is not unread: a Close
	// from OnFrame comes while the frame's bytes are still counted.
	if t.fdGone || !sending && !lingerDue(t.fd) && t.nc.Reader().Len() <= int(t.handing.Load()) {
		return -1, false
	}
	return dupFD(t.fd)
}

// writeBeforeNetpollCloses is runnerLost's close of a netpoll connection
// whose worker is ending: it records errGoexit as the cause and writes
// what is queued, unless a flusher owns the queue, and leaves the close to
// netpoll. It reports false for another transport.
func (c *conn[F]) writeBeforeNetpollCloses() bool {
	t, ok := c.tr.(*npTransport)
	if !ok {
		return false
	}
	c.outMu.Lock()
	if c.cause == nil {
		c.cause = errGoexit
	}
	var b *bufpool.Buffer
	if !c.flushing && c.state != stateClosed && c.out != nil && len(c.out.B) > 0 {
		b, c.out = c.out, nil
	}
	c.outMu.Unlock()
	if b == nil {
		return true
	}
	if t.writeAll(b.B) == nil {
		c.outMu.Lock()
		c.bytesOut += uint64(len(b.B))
		c.outMu.Unlock()
	}
	c.e.pool.Put(b)
	return true
}
