package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

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
type conn[F any] struct {
	e     *ProtocolEngine[F]
	id    mai.ConnID
	codec codec.Codec[F]
	sizer codec.Sizer // codec as a Sizer, or nil
	tr    transport   // set before the first callback; never changes

	origin   mai.Origin
	listener string
	laddr    net.Addr
	raddr    net.Addr
	since    time.Time

	// serial is held while a callback of this connection runs (and while
	// its input is decoded): it serializes the callbacks, and guards the
	// fields in this block. It is the one lock held across user callbacks;
	// no other lock is ever taken while waiting for it, and the read path is
	// the only place that blocks on it.
	serial   sync.Mutex
	pend     *bufpool.Buffer // undecoded input; nil when empty
	pendOff  int             // start of the undecoded bytes in pend.B
	need     int             // total size of the partial frame at pendOff (Sizer), 0 if unknown
	finished bool            // OnClosed ran; the connection is gone
	errShown bool            // OnError ran
	poisoned bool            // a decode error happened: input is dropped from now on

	toldWritable bool // the writability OnWritabilityChanged last reported

	// running is true while serial is held by a runner; Sends made then are
	// flushed by the runner when it lets go, as one batch.
	running atomic.Bool
	// paused stops decoding while the outbound queue is over the high mark.
	paused atomic.Bool
	// closing stops decoding once the connection is closing for any reason.
	closing atomic.Bool

	mailN  atomic.Int32 // len(mbox), readable without mboxMu
	mboxMu sync.Mutex   // guards mbox, spare and mboxDone
	mbox   []event[F]
	spare  []event[F]
	// mboxDone is set when OnClosed has been queued; later events are dropped.
	mboxDone bool

	outMu     sync.Mutex      // guards the fields in this block
	out       *bufpool.Buffer // encoded frames waiting for the flusher; nil when empty
	inflight  int             // bytes handed to the transport and not yet written
	rest      *bufpool.Buffer // a batch partly written by an inline flush
	restOff   int             // how much of rest is written
	flushing  bool            // a goroutine owns the flush loop
	state     connState
	cause     error // why the connection closes; nil for a local Close
	localEnd  bool  // the application asked for the close (Close, Abort, Shutdown)
	writable  bool
	sessionMu sync.Mutex // guards session and ctx
	session   any
	ctx       context.Context
	ctxCancel context.CancelFunc

	bytesIn, bytesOut, framesIn, framesOut atomic.Uint64

	// Watchdog timestamps, in wheel time (ns); 0 means "not running".
	lastActivity atomic.Int64 // last complete frame in or batch out
	readStart    atomic.Int64 // a partial frame started arriving
	writeStart   atomic.Int64 // a write started and has not finished
	readyAt      int64        // when the connection was taken
	gotFrame     atomic.Bool  // a first frame arrived (handshake)

	wd             timerwheel.Timer
	wdMu           sync.Mutex // guards wdArmed, wdDead, handshakeFired
	wdArmed        int64      // deadline the watchdog is armed for, 0 if not armed
	wdDead         bool       // the connection closed: never re-arm
	handshakeFired bool

	timersMu   sync.Mutex // guards timers and timersDead
	timers     map[mai.TimerID]*connTimer[F]
	timersDead bool
}

var _ mai.Context[[]byte] = (*conn[[]byte])(nil)

// ID implements mai.Context.
func (c *conn[F]) ID() mai.ConnID { return c.id }

// LocalAddr implements mai.Context.
func (c *conn[F]) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr implements mai.Context.
func (c *conn[F]) RemoteAddr() net.Addr { return c.raddr }

// Listener implements mai.Context.
func (c *conn[F]) Listener() string { return c.listener }

// Session implements mai.Context.
func (c *conn[F]) Session() any {
	c.sessionMu.Lock()
	defer c.sessionMu.Unlock()
	return c.session
}

// SetSession implements mai.Context.
func (c *conn[F]) SetSession(v any) {
	c.sessionMu.Lock()
	c.session = v
	c.sessionMu.Unlock()
}

// Context implements mai.Context. The context.Context is made on first use,
// so connections that never ask for one do not pay for it.
func (c *conn[F]) Context() context.Context {
	c.sessionMu.Lock()
	defer c.sessionMu.Unlock()
	if c.ctx == nil {
		c.ctx, c.ctxCancel = context.WithCancel(c.e.baseCtx)
		c.outMu.Lock()
		closed := c.state == stateClosed
		c.outMu.Unlock()
		if closed {
			c.ctxCancel()
		}
	}
	return c.ctx
}

func (c *conn[F]) cancelContext() {
	c.sessionMu.Lock()
	if c.ctxCancel != nil {
		c.ctxCancel()
	}
	c.sessionMu.Unlock()
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
	queued := c.inflight
	if c.out != nil {
		queued += len(c.out.B)
	}
	writable := c.writable && c.state == stateOpen
	c.outMu.Unlock()
	return mai.ConnInfo{
		ID:         c.id,
		Origin:     c.origin,
		Listener:   c.listener,
		LocalAddr:  c.laddr,
		RemoteAddr: c.raddr,
		Since:      c.since,
		BytesIn:    c.bytesIn.Load(),
		BytesOut:   c.bytesOut.Load(),
		FramesIn:   c.framesIn.Load(),
		FramesOut:  c.framesOut.Load(),
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
	if !c.abort(mai.ErrAborted, true) {
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
	c.closing.Store(true)
	c.localEnd = c.localEnd || local
	if c.cause == nil {
		c.cause = cause
	}
	closeNow, startFlush := false, false
	switch {
	case c.flushing:
		// the flush loop closes the transport when the queue is empty
	case c.out != nil && len(c.out.B) > 0:
		if c.running.Load() {
			// the runner flushes when it lets go of serial
		} else {
			c.flushing, startFlush = true, true
		}
	default:
		c.state = stateClosed
		c.closing.Store(true)
		closeNow = true
	}
	c.outMu.Unlock()
	if closeNow {
		c.tr.close()
	}
	if startFlush {
		c.e.goFlush(c)
	}
	return nil
}

// abortWith closes the connection now with cause (I/O errors, bounds).
func (c *conn[F]) abortWith(cause error) { c.abort(cause, false) }

// abort closes the connection now, dropping what is queued, and records
// cause unless one is known. It reports false if the connection was closed
// already (the cause is still recorded if there was none).
func (c *conn[F]) abort(cause error, local bool) bool {
	c.outMu.Lock()
	if c.cause == nil {
		c.cause = cause
	}
	if c.state == stateClosed {
		c.outMu.Unlock()
		return false
	}
	c.state = stateClosed
	c.localEnd = c.localEnd || local
	c.closing.Store(true)
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
	c.state = stateClosed
	c.closing.Store(true)
	c.dropQueueLocked()
	c.outMu.Unlock()
	c.cancelContext()
	c.stopWatchdog()
	c.stopTimers()
	// A closed connection leaves the registry now: Len, IDs and Conns stop
	// counting it before OnClosed runs.
	c.e.reg.remove(c.id)
	c.post(event[F]{kind: evClosed})
}

// closeCause returns the recorded cause.
func (c *conn[F]) closeCause() error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.cause
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
