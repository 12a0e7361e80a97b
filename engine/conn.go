package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/bufpool"
	"github.com/mai-go/mai/codec"
	"github.com/mai-go/mai/internal/timerwheel"
)

// connState is a connection's life, guarded by conn.outMu.
type connState uint8

const (
	stateOpen    connState = iota // frames may be sent
	stateClosing                  // Close called: queued frames are written, then the transport closes
	stateClosed                   // transport closed or closing now; nothing more is written
)

// conn is one connection of an engine. It is also the mai.Context handed to
// the Handler: the object is never reused for another connection, so a
// Context kept after close can only ever report ErrClosed.
//
// Its layout is kept small, because an idle connection costs little else
// (on TransportEpoll, a conn is most of it): what most connections never
// use (a context.Context, user timers, an armed watchdog, net.Addr values)
// lives in a connExtra made on first use, and the flags sit together.
type conn[F any] struct {
	e     *ProtocolEngine[F]
	id    mai.ConnID
	codec codec.Codec[F]
	tr    transport // set before the first callback; never changes
	lis   *listener // the listener that accepted it, or nil
	// readyAt is when the connection was taken, in wheel time.
	readyAt int64

	// serial is held while a callback of this connection runs (and while
	// its input is decoded): it serializes the callbacks, and guards pend,
	// pendOff, need and the flags marked "serial" below. It is the one lock
	// held across user callbacks; no other lock is ever taken while waiting
	// for it, and the read path is the only place that blocks on it.
	serial sync.Mutex
	pend   *bufpool.Buffer // undecoded input; nil when empty
	// pendOff is where the undecoded bytes start in pend.B; need is the
	// total size of the partial frame there (Sizer), 0 if unknown. Both
	// stay under 2 GiB because MaxInboundBytes <= mai.MaxInboundLimit:
	// the undecoded bytes never exceed it, and pend.B is compacted once
	// the decoded prefix outgrows them.
	pendOff int32
	need    int32

	outMu    sync.Mutex      // guards out, inflight, rest, restOff, cause, the out counters and the flags marked "outMu"
	out      *bufpool.Buffer // encoded frames waiting for the flusher; nil when empty
	inflight int             // bytes handed to the transport and not yet written
	rest     *bufpool.Buffer // a batch partly written by an inline flush
	restOff  int             // how much of rest is written
	cause    error           // why the connection closes; nil for a local Close

	session atomic.Pointer[any] // SetSession's value

	// xmu guards x, mb and the flags marked "xmu". It is never held
	// across a callback or I/O; Context takes outMu under it, so outMu is
	// never held while taking xmu (post, which takes it, is never called
	// with outMu held).
	xmu sync.Mutex
	x   *connExtra[F] // nil until first needed
	mb  *mailbox[F]   // events waiting for the runner; nil until the first

	bytesIn, framesIn   atomic.Uint64 // written by the runner, read by Info
	bytesOut, framesOut uint64        // outMu

	// Watchdog timestamps, in wheel time (ns); 0 means "not running".
	lastActivity atomic.Int64 // last complete frame in or batch out
	readStart    atomic.Int64 // a partial frame started arriving
	writeStart   atomic.Int64 // a write started and has not finished

	flags atomic.Uint32 // the fl* bits, read without a lock

	origin mai.Origin // fixed
	caps   uint8      // fixed: the cap* bits

	finished     bool // serial: OnClosed ran; the connection is gone
	errShown     bool // serial: OnError ran
	poisoned     bool // serial: a decode error happened: input is dropped from now on
	toldWritable bool // serial: the writability OnWritabilityChanged last reported
	readyDue     bool // serial: OnReady has not run yet

	mboxDone bool // xmu: OnClosed has been queued; later events are dropped

	flushing bool      // outMu: a goroutine owns the flush loop
	state    connState // outMu
	localEnd bool      // outMu: the application asked for the close (Close, Abort, Shutdown)
	writable bool      // outMu

	xDead          bool // xmu: the connection closed: no timer or watchdog is armed again
	handshakeFired bool // xmu

	// ends are the TCP endpoints (fixed); for other kinds of connection
	// the addresses are kept in x.
	ends tcpEnds
}

// The bits of conn.flags: state that the read path checks between frames
// without taking a lock, and flDipped and flPeerEnd, which live here only
// because the word has room and a conn has none. One word instead of
// seven atomics keeps a conn in a smaller size class and lets decodeFrom
// test two flags with one load.
const (
	// flRunning is set while serial is held by a runner; Sends made then
	// are flushed by the runner when it lets go, as one batch.
	flRunning      uint32 = 1 << iota
	flPaused              // decoding stops while the outbound queue is over the high mark
	flClosing             // decoding stops once the connection is closing for any reason
	flGotFrame            // a first frame arrived (handshake timeout)
	flMail                // events wait in the mailbox (set and cleared under xmu)
	flDipped              // writable went false since the runner last reported writability (set and cleared under outMu)
	flPeerEnd             // the peer ended the connection (EOF, a reset, a refused write) before anything else did (set under outMu)
	flPeerSending         // the peer was still sending as this side closed: input after decoding stopped, or a pause at Close (see closeOrderly)
	flClosedCalled        // serial: OnClosed was called (closedEvent may run again after a Goexit)
)

// The bits of conn.caps: what the codec and the transport can do, fixed
// before the connection is published.
const (
	capSizer  uint8 = 1 << iota // the codec is a codec.Sizer
	capDirect                   // the codec is a directCodec and the transport a vectorWriter (see sendDirect)
)

func (c *conn[F]) hasFlag(f uint32) bool { return c.flags.Load()&f != 0 }
func (c *conn[F]) setFlag(f uint32)      { c.flags.Or(f) }
func (c *conn[F]) clearFlag(f uint32)    { c.flags.And(^f) }

// connExtra is the part of a connection that most connections never need.
type connExtra[F any] struct {
	ctx       context.Context
	ctxCancel context.CancelFunc
	timers    map[mai.TimerID]*connTimer[F]
	// wd is the watchdog timer; wdArmed the deadline it is armed for, 0 if
	// it is not armed.
	wd      timerwheel.Timer
	wdArmed int64
	// The addresses of a connection that ends cannot hold.
	laddr, raddr net.Addr
}

// extra returns c.x, made if needed. xmu is held.
func (c *conn[F]) extra() *connExtra[F] {
	if c.x == nil {
		c.x = &connExtra[F]{}
		c.x.wd.Init(c.e.wdFired, c)
	}
	return c.x
}

// mailbox holds the events waiting for a connection's runner; spare is the
// drained slice kept for reuse.
type mailbox[F any] struct {
	evs, spare []event[F]
}

var _ mai.Context[[]byte] = (*conn[[]byte])(nil)

// setAddrs records the connection's addresses: TCP ones compactly, others
// as they are.
func (c *conn[F]) setAddrs(local, remote net.Addr) {
	lt, lok := local.(*net.TCPAddr)
	rt, rok := remote.(*net.TCPAddr)
	if lok && rok && lt != nil && rt != nil && c.ends.set(lt.AddrPort(), rt.AddrPort()) {
		return
	}
	c.xmu.Lock()
	x := c.extra()
	x.laddr, x.raddr = local, remote
	c.xmu.Unlock()
}

// ID implements mai.Context.
func (c *conn[F]) ID() mai.ConnID { return c.id }

// LocalAddr implements mai.Context. A TCP address is made on each call
// from the compact form the connection keeps, so that asking costs no
// memory for the connection's lifetime.
func (c *conn[F]) LocalAddr() net.Addr {
	if c.ends.valid() {
		return net.TCPAddrFromAddrPort(c.ends.local())
	}
	l, _ := c.otherAddrs()
	return l
}

// RemoteAddr implements mai.Context, as LocalAddr.
func (c *conn[F]) RemoteAddr() net.Addr {
	if c.ends.valid() {
		return net.TCPAddrFromAddrPort(c.ends.remote())
	}
	_, r := c.otherAddrs()
	return r
}

// otherAddrs returns the addresses of a connection that ends cannot hold
// (not TCP, or an IPv6 zone), kept as the net.Conn gave them.
func (c *conn[F]) otherAddrs() (local, remote net.Addr) {
	c.xmu.Lock()
	defer c.xmu.Unlock()
	if c.x == nil {
		return nil, nil
	}
	return c.x.laddr, c.x.raddr
}

// Listener implements mai.Context.
func (c *conn[F]) Listener() string {
	if c.lis == nil {
		return ""
	}
	return c.lis.name
}

// Session implements mai.Context.
func (c *conn[F]) Session() any {
	if p := c.session.Load(); p != nil {
		return *p
	}
	return nil
}

// SetSession implements mai.Context.
func (c *conn[F]) SetSession(v any) {
	if v == nil {
		c.session.Store(nil)
		return
	}
	c.session.Store(&v)
}

// Context implements mai.Context. The context.Context is made on first use,
// so connections that never ask for one do not pay for it.
func (c *conn[F]) Context() context.Context {
	c.xmu.Lock()
	defer c.xmu.Unlock()
	x := c.extra()
	if x.ctx == nil {
		x.ctx, x.ctxCancel = context.WithCancel(c.e.baseCtx)
		c.outMu.Lock()
		closed := c.state == stateClosed
		c.outMu.Unlock()
		if closed {
			x.ctxCancel()
		}
	}
	return x.ctx
}

func (c *conn[F]) cancelContext() {
	c.xmu.Lock()
	if c.x != nil && c.x.ctxCancel != nil {
		c.x.ctxCancel()
	}
	c.xmu.Unlock()
}

// Writable implements mai.Context.
func (c *conn[F]) Writable() bool {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.writable && c.state == stateOpen
}

// Info implements mai.Context.
func (c *conn[F]) Info() mai.ConnInfo {
	c.outMu.Lock()
	queued := c.queuedLocked()
	writable := c.writable && c.state == stateOpen
	bytesOut, framesOut := c.bytesOut, c.framesOut
	c.outMu.Unlock()
	return mai.ConnInfo{
		ID:         c.id,
		Origin:     c.origin,
		Listener:   c.Listener(),
		LocalAddr:  c.LocalAddr(),
		RemoteAddr: c.RemoteAddr(),
		Since:      c.e.wheel.Time(c.readyAt),
		BytesIn:    c.bytesIn.Load(),
		BytesOut:   bytesOut,
		FramesIn:   c.framesIn.Load(),
		FramesOut:  framesOut,
		Queued:     queued,
		Writable:   writable,
	}
}

// Close implements mai.Context: queued frames are written, then the
// connection closes.
func (c *conn[F]) Close() error {
	return c.closeWith(nil, true)
}

// Abort implements mai.Context.
func (c *conn[F]) Abort() error {
	if !c.abort(mai.ErrAborted, byApp) {
		return fmt.Errorf("abort %v: %w", c.id, mai.ErrClosed)
	}
	return nil
}

// closeWith starts an orderly close: no more Sends, queued frames are
// written, then the transport closes. cause is what OnError (if not nil) and
// OnClosed will see; local tells whether the application asked for it.
// A second call only records a cause if none was recorded.
func (c *conn[F]) closeWith(cause error, local bool) error {
	c.outMu.Lock()
	if c.state != stateOpen {
		if c.cause == nil && cause != nil && c.state == stateClosing {
			c.cause = cause
		}
		c.outMu.Unlock()
		return fmt.Errorf("close %v: %w", c.id, mai.ErrClosed)
	}
	c.state = stateClosing
	fl := flClosing
	if c.hasFlag(flPaused) {
		fl |= flPeerSending // the peer was ahead of the replies
	}
	c.setFlag(fl)
	c.localEnd = c.localEnd || local
	if c.cause == nil {
		c.cause = cause
	}
	closeNow, startFlush := false, false
	switch {
	case c.flushing:
		// the flush loop closes the transport when the queue is empty
	case c.out != nil && len(c.out.B) > 0:
		if c.hasFlag(flRunning) {
			// the runner flushes when it lets go of serial
		} else {
			c.flushing, startFlush = true, true
			c.e.wg.Add(1) // under outMu: see goFlush
		}
	default:
		c.state = stateClosed
		c.setFlag(flClosing)
		closeNow = true
	}
	c.outMu.Unlock()
	if closeNow {
		c.closeOrderly()
	}
	if startFlush {
		c.e.goFlush(c)
	}
	return nil
}

// ender tells abort who ends a connection.
type ender uint8

const (
	byEngine ender = iota // a bound, a timeout, a failed callback or codec
	byApp                 // Close, Abort, Shutdown
	byPeer                // the socket failed: the peer is gone
)

// abortWith closes the connection now with cause (bounds, timeouts).
func (c *conn[F]) abortWith(cause error) { c.abort(cause, byEngine) }

// abort closes the connection now, dropping what is queued, and records
// cause unless one is known. It reports false if the connection was closed
// already (the cause is still recorded if there was none).
func (c *conn[F]) abort(cause error, by ender) bool {
	c.outMu.Lock()
	if c.cause == nil {
		c.cause = cause
	}
	if by == byPeer && c.state == stateOpen {
		c.setFlag(flPeerEnd) // nobody on this side began a close
	}
	if c.state == stateClosed {
		c.outMu.Unlock()
		return false
	}
	c.state = stateClosed
	c.localEnd = c.localEnd || by == byApp
	c.setFlag(flClosing)
	c.dropQueueLocked()
	c.outMu.Unlock()
	c.tr.close()
	return true
}

// dropQueueLocked releases the queued, unwritten frames. outMu is held.
func (c *conn[F]) dropQueueLocked() {
	if c.out != nil {
		c.e.pool.Put(c.out)
		c.out = nil
	}
}

// peerEnded records why the peer's side ended (io.EOF, a reset), before
// the transport closes the socket, unless a cause is already known.
func (c *conn[F]) peerEnded(err error) {
	c.outMu.Lock()
	c.peerCauseLocked(err)
	c.outMu.Unlock()
}

// peerCauseLocked records err (io.EOF for nil) as the cause when the
// application did not end the connection and no cause is known. outMu is
// held.
func (c *conn[F]) peerCauseLocked(err error) {
	if c.cause == nil && !c.localEnd {
		if err == nil {
			err = io.EOF
		}
		c.cause = err
	}
}

// transportClosed is called exactly once by the transport when the
// connection is closed, by either side, and no more input will arrive. err is
// the transport's reason (nil or io.EOF for an orderly end).
func (c *conn[F]) transportClosed(err error) {
	c.outMu.Lock()
	c.peerCauseLocked(err)
	if c.state == stateOpen {
		// Nobody on this side began a close (which moves the state on
		// before it closes the transport): the peer ended it.
		c.setFlag(flPeerEnd)
	}
	c.state = stateClosed
	c.setFlag(flClosing)
	c.dropQueueLocked()
	c.outMu.Unlock()
	c.cancelContext()
	c.stopTimers()
	// A closed connection leaves the registry now: Len, IDs and Conns stop
	// counting it before OnClosed runs.
	c.e.reg.remove(c.id)
	c.post(event[F]{kind: evClosed})
}

// closeCause returns the recorded cause, and whether the peer ended the
// connection.
func (c *conn[F]) closeCause() (cause error, peer bool) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.cause, c.hasFlag(flPeerEnd)
}

// finish runs after OnClosed: the connection leaves the registry and gives
// its buffers back. serial is held.
func (c *conn[F]) finish() {
	c.finished = true
	if c.pend != nil {
		c.e.pool.Put(c.pend)
		c.pend, c.pendOff, c.need = nil, 0, 0
	}
	c.e.connDone()
}
