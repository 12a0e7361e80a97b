//go:build (linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le || s390x)) || ((darwin || freebsd || netbsd || openbsd || dragonfly) && (amd64 || arm64))

package engine

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/cloudwego/netpoll"
	"golang.org/x/sys/unix"

	"github.com/mai-go/mai"
)

const netpollSupported = true

// npTransport drives a connection with netpoll: input arrives in OnRequest
// on netpoll's goroutine pool, and the flush loop writes through the
// connection's Writer (WriteBinary, then one Flush per batch).
//
// The runner's non-blocking write goes straight to the descriptor: netpoll's
// output buffer is empty then, since the one flush loop of the connection
// only starts a write once the previous Flush returned. fdMu keeps that
// write from meeting the descriptor's close (and a reuse of its number):
// our close callback runs before netpoll's own, which closes the
// descriptor, and takes fdMu for writing.
//
// It lends its input (lend.go): while OnRequest hands a read event's input
// to the connection, lendR and lendN are the reader and its length, and a
// hold on the input is a netpoll Slice of it (npHeld).
type npTransport struct {
	nc     netpoll.Connection
	fd     int
	fdMu   sync.RWMutex // guards fdGone against direct writes
	fdGone bool
	held   *atomic.Int64 // the engine's count of live holds

	// lendR and lendN are set by OnRequest's goroutine around input, and
	// used by hold during input (under the connection's outMu); sliced
	// tells that hold moved the reader past the input.
	lendR  netpoll.Reader
	lendN  int
	sliced bool
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
func (t *npTransport) writeAll(p []byte) error {
	w := t.nc.Writer()
	if _, err := w.WriteBinary(p); err != nil {
		return err
	}
	return w.Flush()
}

// writeBatch is write for the batch b with lent inserted, from byte off on.
func (t *npTransport) writeBatch(b []byte, lent []seg, off int) (int, error) {
	t.fdMu.RLock()
	defer t.fdMu.RUnlock()
	if t.fdGone {
		return 0, fmt.Errorf("write: %w", mai.ErrClosed)
	}
	return rawWriteBatch(uintptr(t.fd), b, lent, off)
}

// writeBatchAll is writeAll for the batch b with lent inserted, from byte
// off on: netpoll's Writer references the lent payloads (they are over
// its copy threshold) rather than copying them, and Flush waits until
// everything is sent.
func (t *npTransport) writeBatchAll(b []byte, lent []seg, off int) error {
	w := t.nc.Writer()
	for i, n := 0, 2*len(lent)+1; i < n; i++ {
		p := piece(b, lent, i)
		if off >= len(p) {
			off -= len(p)
			continue
		}
		if _, err := w.WriteBinary(p[off:]); err != nil {
			return err
		}
		off = 0
	}
	return w.Flush()
}

func (t *npTransport) waitWritable() error { return nil }

// hold implements lendSource: the input being handled becomes a netpoll
// Slice, which moves the reader past it and keeps its buffer node alive
// until released. OnRequest only lends an input held in one node, so the
// Slice aliases the bytes the connection decodes; if it does not, nothing
// is lent.
func (t *npTransport) hold() heldInput {
	r, n := t.lendR, t.lendN
	t.lendR = nil // at most one Slice per input
	if r == nil {
		return nil
	}
	want, _ := r.Peek(1)
	s, err := r.Slice(n)
	if err != nil {
		return nil
	}
	t.sliced = true
	h := npHeldPool.Get().(*npHeld)
	h.s, h.count = s, t.held
	h.refs.Store(1)
	h.leak.Store(false)
	t.held.Add(1)
	if got, _ := s.Peek(1); len(got) == 0 || unsafe.SliceData(got) != unsafe.SliceData(want) {
		h.release()
		return nil
	}
	return h
}

// npHeld is a hold on a netpoll input: a Slice of it, released by the
// last holder.
type npHeld struct {
	refs  atomic.Int32
	leak  atomic.Bool // a holder abandoned it: the Slice is never released
	s     netpoll.Reader
	count *atomic.Int64
}

var npHeldPool = sync.Pool{New: func() any { return new(npHeld) }}

func (h *npHeld) retain() { h.refs.Add(1) }

func (h *npHeld) release() {
	if h.refs.Add(-1) != 0 {
		return
	}
	if !h.leak.Load() {
		_ = h.s.Skip(h.s.Len())
		_ = h.s.Release()
	}
	h.count.Add(-1)
	h.s, h.count = nil, nil
	npHeldPool.Put(h)
}

func (h *npHeld) abandon() {
	h.leak.Store(true)
	h.release()
}

// fdClosing is called from our close callback, before netpoll closes the
// descriptor.
func (t *npTransport) fdClosing() {
	t.fdMu.Lock()
	t.fdGone = true
	t.fdMu.Unlock()
}

func (t *npTransport) close() { _ = t.nc.Close() }

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
	t := &npTransport{nc: npc, fd: fd, held: &e.lentHeld}
	c.tr = t
	_ = npc.AddCloseCallback(func(netpoll.Connection) error {
		t.fdClosing()
		c.transportClosed(nil)
		return nil
	})
	_ = npc.SetOnRequest(func(_ context.Context, nconn netpoll.Connection) error {
		r := nconn.Reader()
		n := r.Len()
		if n == 0 {
			return nil
		}
		buf, err := r.Peek(n)
		if err != nil {
			return err
		}
		// Payloads decoded from an input in one buffer node may be lent
		// to the write queue (lend.go); a Peek over several nodes is a
		// copy that Release frees, which must not be lent.
		lend := n >= lendMin && c.caps&capDirect != 0
		if lend {
			p1, _ := r.Peek(1)
			lend = unsafe.SliceData(p1) == unsafe.SliceData(buf)
		}
		if !lend {
			c.input(buf)
			_ = r.Skip(n)
			return r.Release()
		}
		t.lendR, t.lendN, t.sliced = r, n, false
		c.lendFrom(t, buf)
		c.input(buf)
		c.lendEnd()
		if !t.sliced {
			_ = r.Skip(n) // else the hold's Slice moved past the input
		}
		t.lendR = nil
		return r.Release()
	})
	// The peer may have hung up before OnRequest was set, when netpoll does
	// not run close callbacks by itself: closing runs ours.
	if !npc.IsActive() {
		t.close()
	}
	return nil
}

// setPollers sets netpoll's number of pollers, process-wide.
func setPollers(n int) error { return netpoll.Configure(netpoll.Config{PollerNum: n}) }
