// Package engine is mai's event machinery: ProtocolEngine drives
// connections (accepted, dialed, or handed over) through a per-connection
// codec.Codec and calls the user's protocol.Handler.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/bufpool"
	"github.com/mai-go/mai/codec"
	"github.com/mai-go/mai/internal/timerwheel"
	"github.com/mai-go/mai/protocol"
)

// ProtocolEngine runs connections speaking frames of type F. Create it with
// New; give it connections with Listen, Serve, Dial or Manage (or the
// command channel); stop it with Shutdown. All methods are safe for
// concurrent use.
type ProtocolEngine[F any] struct {
	newCodec codec.Factory[F]
	h        protocol.Handler[F]
	// The Handler's optional interfaces, resolved once by New (nil when
	// not implemented).
	writability protocol.WritabilityHandler[F]
	admitter    protocol.Admitter // the handler as an Admitter, or nil
	connTicker  protocol.ConnTicker[F]
	ticker      protocol.Ticker
	timerH      protocol.EngineTimerHandler
	opts        mai.Options
	log         *slog.Logger
	pool        *bufpool.Pool
	wheel       *timerwheel.Wheel
	reg         registry[F]
	exec        executor
	useNP       bool
	ep          *epollGroup // TransportEpoll's loops, or nil

	baseCtx    context.Context // parent of every connection's context
	baseCancel context.CancelFunc

	cmds chan Command[F]

	lifeMu       sync.Mutex // guards the fields in this block
	shutting     bool
	live         int                   // connections taken and not finished
	lingering    map[net.Conn]struct{} // lingering sockets (see linger): the stop waits for them, WithMaxConns does not count them
	allDone      chan struct{}         // closed when shutting, live is 0 and nothing lingers
	listeners    map[string]*listener
	closing      chan struct{} // closed when Shutdown starts
	done         chan struct{} // closed when the engine has stopped
	stopWheel    chan struct{}
	shutdownOnce sync.Once
	// aborting is set when a Shutdown's ctx ended: connections are
	// aborted from then on, also one adopted after (see adopt).
	aborting atomic.Bool

	wg sync.WaitGroup // every goroutine the engine started

	timerSeq   atomic.Uint64
	timersMu   sync.Mutex // guards timers and timersDead
	timers     map[mai.TimerID]*engineTimer[F]
	timersDead bool
	tick       timerwheel.Timer
	wdFired    func(*timerwheel.Timer, int64) // watchdogFired[F], made once

	accepted atomic.Uint64
	rejected [3]atomic.Uint64 // by mai.RejectReason
}

// New returns an engine whose connections use a Codec from newCodec and the
// Handler h, configured by opts (see package mai's WithX options). It
// reports an error wrapping mai.ErrInvalidOption for an invalid
// configuration. New calls newCodec once, to learn the codec's frame limit
// (codec.MaxSizer) when WithMaxFrameSize is not given. The engine starts its timer goroutine and command loop at
// once; it has no connection until given one.
func New[F any](newCodec codec.Factory[F], h protocol.Handler[F], opts ...mai.Option) (*ProtocolEngine[F], error) {
	if newCodec == nil {
		return nil, fmt.Errorf("%w: nil codec factory", mai.ErrInvalidOption)
	}
	if h == nil {
		return nil, fmt.Errorf("%w: nil handler", mai.ErrInvalidOption)
	}
	o, err := mai.Apply(opts...)
	if err != nil {
		return nil, err
	}
	// One codec, made now, tells the codec's frame limit (and shows a
	// factory that panics or returns nil before any connection depends on
	// it).
	probe, err := makeCodec(newCodec)
	if err != nil {
		return nil, err
	}
	codecMax := 0
	if ms, ok := probe.(codec.MaxSizer); ok {
		codecMax = ms.MaxFrameSize()
	}
	if o, err = o.Resolve(codecMax); err != nil {
		return nil, err
	}
	useNP := false
	switch o.Transport {
	case mai.TransportAuto:
		useNP = netpollSupported
	case mai.TransportNetpoll:
		if !netpollSupported {
			return nil, fmt.Errorf("%w: netpoll transport on this platform", mai.ErrUnsupported)
		}
		useNP = true
	}
	if o.Pollers > 0 && useNP {
		if err := setPollers(o.Pollers); err != nil {
			return nil, fmt.Errorf("%w: WithPollers(%d): %w", mai.ErrInvalidOption, o.Pollers, err)
		}
	}
	pool, err := bufpool.New(bufpool.Config{
		InitialSize:  o.InitialBufferSize,
		Preallocate:  o.InitialBufferPoolSize,
		MaxIdle:      o.MaxBufferPoolSize,
		MaxSize:      o.MaxPooledBufferSize,
		MaxIdleBytes: o.MaxPooledBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", mai.ErrInvalidOption, err)
	}
	e := &ProtocolEngine[F]{
		newCodec:  newCodec,
		h:         h,
		opts:      o,
		log:       o.Logger,
		pool:      pool,
		wheel:     timerwheel.New(o.TimerResolution, 512),
		wdFired:   watchdogFired[F],
		useNP:     useNP,
		cmds:      make(chan Command[F]), // unbuffered: a command sent is a command taken (see Commands)
		allDone:   make(chan struct{}),
		listeners: make(map[string]*listener),
		closing:   make(chan struct{}),
		done:      make(chan struct{}),
		stopWheel: make(chan struct{}),
		timers:    make(map[mai.TimerID]*engineTimer[F]),
	}
	if o.Transport == mai.TransportEpoll {
		n := o.EventLoops
		if n == 0 {
			n = runtime.GOMAXPROCS(0)
		}
		if e.ep, err = newEpollGroup(n, e.spawn); err != nil {
			return nil, err
		}
	}
	e.writability, _ = h.(protocol.WritabilityHandler[F])
	e.admitter, _ = h.(protocol.Admitter)
	e.connTicker, _ = h.(protocol.ConnTicker[F])
	e.ticker, _ = h.(protocol.Ticker)
	e.timerH, _ = h.(protocol.EngineTimerHandler)
	e.baseCtx, e.baseCancel = context.WithCancel(context.Background())
	e.reg.init(o.ConnCapacity)
	e.exec.spawn, e.exec.log = e.spawn, e.log
	e.spawn(func() { e.wheel.Run(e.stopWheel) })
	// The command loop serves until the engine has stopped, so it cannot
	// be one of the goroutines the stop waits for: it ends on done.
	go e.commandLoop()
	e.startTick()
	return e, nil
}

// Options returns the engine's configuration, defaults filled in.
func (e *ProtocolEngine[F]) Options() mai.Options { return e.opts }

// spawn runs fn on a new goroutine the engine waits for when it stops.
func (e *ProtocolEngine[F]) spawn(fn func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		fn()
	}()
}

// goRun runs c's mailbox on a new goroutine; the caller holds c.serial and
// hands it over.
func (e *ProtocolEngine[F]) goRun(c *conn[F]) { e.spawn(c.release) }

// goFlush runs c's flush loop on a new goroutine. The caller set flushing
// and counted the goroutine (e.wg.Add(1)) while it held outMu and the
// connection was not closed. Counted after it let go of outMu, as spawn
// does, the goroutine of a Send from outside the callbacks could be
// counted after the connection closed and Shutdown's wait for e.wg began,
// which panics ("WaitGroup is reused"): the move to closed
// (transportClosed, abort) takes outMu, and the connection's OnClosed,
// which the engine's stop waits for, comes after it.
func (e *ProtocolEngine[F]) goFlush(c *conn[F]) {
	go func() {
		defer e.wg.Done()
		c.flushLoop(false)
	}()
}

// source is a connection being adopted: a net.Conn, or a descriptor that
// an engine listener accepted itself (TransportEpoll, see accept_linux.go)
// with its TCP endpoints (in ends, or where ends cannot hold them, as
// net.Addr values).
type source struct {
	nc           net.Conn
	fd           int
	ends         tcpEnds
	laddr, raddr net.Addr
}

func (s *source) close() {
	if s.nc != nil {
		_ = s.nc.Close()
	} else {
		closeFD(s.fd)
	}
}

func (s *source) addrs() (local, remote net.Addr) {
	if s.nc != nil {
		return s.nc.LocalAddr(), s.nc.RemoteAddr()
	}
	if !s.ends.valid() {
		return s.laddr, s.raddr
	}
	return net.TCPAddrFromAddrPort(s.ends.local()), net.TCPAddrFromAddrPort(s.ends.remote())
}

// adopt takes a connected net.Conn: admission, registration, transport,
// then OnReady on the connection's runner. On error nc is closed.
func (e *ProtocolEngine[F]) adopt(nc net.Conn, origin mai.Origin, lis *listener, copts ...ConnOption) (mai.ConnID, error) {
	return e.adoptFrom(&source{nc: nc, fd: -1}, origin, lis, copts...)
}

// adoptFrom is adopt for any source; on error the source is closed.
func (e *ProtocolEngine[F]) adoptFrom(src *source, origin mai.Origin, lis *listener, copts ...ConnOption) (mai.ConnID, error) {
	// The net.Addr values of a descriptor are made only if something
	// wants them (an Admitter, a rejection).
	info := func() mai.ConnInfo {
		in := mai.ConnInfo{Origin: origin, Since: time.Now(), Writable: true}
		if lis != nil {
			in.Listener = lis.name
		}
		in.LocalAddr, in.RemoteAddr = src.addrs()
		return in
	}
	// Take a place first (WithMaxConns counts it), then ask the handler.
	e.lifeMu.Lock()
	if e.shutting {
		e.lifeMu.Unlock()
		src.close()
		return 0, fmt.Errorf("take connection: %w", mai.ErrShutdown)
	}
	if max := e.opts.MaxConns; max > 0 && e.live >= max {
		live := e.live
		e.lifeMu.Unlock()
		// Counted before the close: the peer sees the close, and Stats
		// must show the rejection by then.
		err := e.rejected1(mai.Reject(mai.RejectLimit, fmt.Errorf("%d connections, WithMaxConns %d", live, max)), info())
		src.close()
		return 0, err
	}
	e.live++
	e.lifeMu.Unlock()
	// Admit, the codec factory and the ConnOptions are the handler's code:
	// one that ends the goroutine (runtime.Goexit) must not keep the place
	// taken above, or the source open.
	prepared := false
	defer onGoexit(&prepared, func() {
		e.log.Error("mai: Admit, the codec factory or a ConnOption ended its goroutine (runtime.Goexit)", "err", errGoexit)
		e.connDone()
		src.close()
	})
	if e.admitter != nil {
		if err := e.admit(info()); err != nil {
			prepared = true
			e.connDone()
			src.close()
			return 0, err
		}
	}
	cd, err := makeCodec(e.newCodec)
	if err != nil {
		prepared = true
		e.connDone()
		src.close()
		return 0, err
	}

	c := &conn[F]{
		e:            e,
		codec:        cd,
		lis:          lis,
		origin:       origin,
		writable:     true,
		toldWritable: true,
		readyDue:     true,
	}
	if src.nc == nil && src.ends.valid() {
		c.ends = src.ends
	} else {
		c.setAddrs(src.addrs())
	}
	var setup ConnSetup
	for _, o := range copts {
		if o != nil {
			o(&setup)
		}
	}
	prepared = true
	if setup.session != nil {
		c.SetSession(setup.session)
	}
	// The runner role is ours until the connection (OnReady first) is
	// handed to its own goroutine below: input that arrives meanwhile waits.
	c.serial.Lock()
	c.setFlag(flRunning)
	// The ID is reserved now and the connection published only once its
	// mailbox and transport are in place, so nothing that walks the
	// registry (ticks, Broadcast, Shutdown) can meet it half made.
	c.id = e.reg.reserve()
	c.startWatchdog()
	attached := false
	var attachErr error
	switch {
	case src.nc == nil:
		e.ep.attachFD(c, src.fd)
		attached = true
	case e.ep != nil:
		attachErr = e.ep.attach(c, src.nc)
		attached = attachErr == nil
	case e.useNP:
		attachErr = e.attachNetpoll(c, src.nc)
		attached = attachErr == nil
	}
	if !attached && attachErr != nil && !isUnsupported(attachErr) {
		c.stopTimers()
		e.reg.remove(c.id)
		c.serial.Unlock()
		e.connDone()
		src.close()
		return 0, attachErr
	}
	if !attached {
		e.attachStd(c, src.nc)
	}
	// Before the connection is published: every Send and input comes after.
	c.caps = capsOf(cd, c.tr)
	// false: the connection closed already; its OnClosed is queued.
	e.reg.publish(c.id, c)
	e.accepted.Add(1)
	id := c.id
	// OnReady runs on the transport's own goroutine where it has one
	// (TransportEpoll: the connection's event loop), else on a new one.
	if st, ok := c.tr.(starter); !ok || !st.start(c) {
		e.goRun(c)
	}
	// Shutdown may have started after the check above and missed c in its
	// snapshot of the registry: close it here then, or abort it if a
	// Shutdown's ctx has ended already, as that Shutdown did the others.
	select {
	case <-e.closing:
		if e.aborting.Load() {
			_ = c.Abort()
		} else {
			_ = c.closeWith(nil, true)
		}
	default:
	}
	return id, nil
}

// capsOf returns the cap* bits of a connection with codec cd over tr.
func capsOf[F any](cd codec.Codec[F], tr transport) uint8 {
	var caps uint8
	if _, ok := cd.(codec.Sizer); ok {
		caps |= capSizer
	}
	if _, ok := tr.(vectorWriter); ok && directCodec(cd) {
		caps |= capDirect
	}
	return caps
}

// starter is a transport that starts delivering input only when told, and
// then runs the connection's first callbacks itself (see epConn.start).
type starter interface {
	start(lc loopConn) bool
}

func isUnsupported(err error) bool { return errors.Is(err, mai.ErrUnsupported) }

func makeCodec[F any](newCodec codec.Factory[F]) (cd codec.Codec[F], err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: codec factory: %v", mai.ErrPanic, r)
		}
	}()
	cd = newCodec()
	if cd == nil {
		return nil, fmt.Errorf("%w: codec factory returned nil", mai.ErrInvalidOption)
	}
	return cd, nil
}

// admit asks the Handler's Admitter, if it has one.
func (e *ProtocolEngine[F]) admit(info mai.ConnInfo) error {
	a := e.admitter
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%w: Admit: %v", mai.ErrPanic, r)
			}
		}()
		return a.Admit(info)
	}()
	if err == nil {
		return nil
	}
	re, ok := err.(*mai.RejectError)
	if !ok {
		re = mai.Reject(mai.RejectCustom, err)
	}
	return e.rejected1(re, info)
}

func (e *ProtocolEngine[F]) rejected1(re *mai.RejectError, info mai.ConnInfo) error {
	if int(re.Reason) < len(e.rejected) {
		e.rejected[re.Reason].Add(1)
	}
	e.log.Info("mai: connection rejected", "origin", info.Origin, "listener", info.Listener, "remote", info.RemoteAddr, "reason", re.Reason, "err", re.Err)
	return re
}

// connDone counts a finished connection.
func (e *ProtocolEngine[F]) connDone() {
	e.lifeMu.Lock()
	e.live--
	e.allDoneLocked()
	e.lifeMu.Unlock()
}

// allDoneLocked closes allDone when a shutdown has nothing left to wait
// for; lifeMu is held, and it is called once per decrement that can reach
// the end, so it closes it once.
func (e *ProtocolEngine[F]) allDoneLocked() {
	if e.stoppingLocked() {
		close(e.allDone)
	}
}

// stoppingLocked reports whether a shutdown has nothing left to wait for.
// lifeMu is held.
func (e *ProtocolEngine[F]) stoppingLocked() bool {
	return e.shutting && e.live == 0 && len(e.lingering) == 0
}

// ConnOption configures one connection given to Dial or Manage.
type ConnOption func(*ConnSetup)

// ConnSetup is what a ConnOption may set on a connection before its first
// callback.
type ConnSetup struct {
	session any
}

// WithSession stores v as the connection's session (Context.Session) before
// OnReady runs, so state made by the caller of Dial or Manage is there for
// every callback, however early the first one comes.
func WithSession(v any) ConnOption { return func(s *ConnSetup) { s.session = v } }

// Dial connects to address (see net.Dialer.DialContext; ctx bounds the
// connect, not the connection) and hands the connection to the engine. A
// failed dial or a rejected connection is returned as an error and no
// callback runs; otherwise OnReady follows on the engine's goroutines,
// possibly before Dial returns (use WithSession to hand state to the
// callbacks). A client that pipelines requests wants
// mai.WithReadPause(false) on its engine: its replies are what drain its
// queue, and a pause would stop reading them. A nil ctx is an error
// matching mai.ErrInvalidOption.
func (e *ProtocolEngine[F]) Dial(ctx context.Context, network, address string, opts ...ConnOption) (mai.ConnID, error) {
	if ctx == nil {
		return 0, fmt.Errorf("dial %s: %w: nil context", address, mai.ErrInvalidOption)
	}
	select {
	case <-e.closing:
		return 0, fmt.Errorf("dial %s: %w", address, mai.ErrShutdown)
	default:
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return 0, fmt.Errorf("mai: dial %s %s: %w", network, address, err)
	}
	return e.adopt(nc, mai.OriginDialed, nil, opts...)
}

// Manage hands a connection accepted or dialed elsewhere to the engine,
// which owns it from then on (the engine may close nc and continue on a
// duplicate of its descriptor). On error nc is closed. OnReady may run
// before Manage returns (use WithSession to hand state to the callbacks).
// A connection already closed on this side is an error that matches
// mai.ErrClosed and net.ErrClosed, where nc has a descriptor to tell it
// by (TCP, Unix); one whose peer has gone is taken, and OnClosed follows
// OnReady.
func (e *ProtocolEngine[F]) Manage(nc net.Conn, opts ...ConnOption) (mai.ConnID, error) {
	if nc == nil {
		return 0, fmt.Errorf("%w: nil net.Conn", mai.ErrInvalidOption)
	}
	if err := closedConn(nc); err != nil {
		return 0, fmt.Errorf("manage: %w: %w", mai.ErrClosed, err)
	}
	return e.adopt(nc, mai.OriginManaged, nil, opts...)
}

// closedConn returns the error of a net.Conn closed on this side, when
// its descriptor can tell.
func closedConn(nc net.Conn) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err == nil {
		err = raw.Control(func(uintptr) {})
	}
	if errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// Shutdown stops the engine in order: it stops accepting, closes every
// connection after writing what is queued for it, calls OnClosed exactly
// once for each, and returns when every callback has returned and every
// engine goroutine has ended, lingering sockets included (a peer still
// sending as its connection closed: see mai.WithCloseLinger). If ctx ends
// first, the remaining connections are aborted (queued frames dropped),
// lingering ends, and ctx's error is returned; Wait then
// reports when the engine has stopped. Calling Shutdown again waits again.
// Do not call Shutdown from a Handler callback: it would wait for itself.
// A nil ctx is an error matching mai.ErrInvalidOption, and nothing stops.
func (e *ProtocolEngine[F]) Shutdown(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("shutdown: %w: nil context", mai.ErrInvalidOption)
	}
	e.shutdownOnce.Do(e.beginShutdown)
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
	}
	// Set before the snapshot: a connection published after it sees
	// the flag (adopt), one published before is in it.
	e.aborting.Store(true)
	for _, c := range e.reg.snapshot(nil) {
		_ = c.Abort()
	}
	e.cutLingering()
	return ctx.Err()
}

// beginShutdown closes listeners and connections and starts the goroutine
// that finishes the shutdown once the last connection is gone.
func (e *ProtocolEngine[F]) beginShutdown() {
	e.lifeMu.Lock()
	e.shutting = true
	close(e.closing)
	e.allDoneLocked()
	lns := make([]*listener, 0, len(e.listeners))
	for name, l := range e.listeners {
		lns = append(lns, l)
		delete(e.listeners, name)
	}
	e.lifeMu.Unlock()
	// The sockets close now; an accept loop may still be in Admit, which
	// Shutdown does not wait for (the engine's stop does: wg). What it
	// accepted is refused, since shutting is set.
	for _, l := range lns {
		l.close()
	}
	for _, c := range e.reg.snapshot(nil) {
		_ = c.closeWith(nil, true)
	}
	go func() {
		<-e.allDone
		e.stopEngineTimers()
		e.exec.close()
		if e.ep != nil {
			e.ep.stop()
		}
		close(e.stopWheel)
		e.baseCancel()
		e.wg.Wait()
		close(e.done)
	}()
}

// Wait blocks until the engine has stopped (after Shutdown).
func (e *ProtocolEngine[F]) Wait() { <-e.done }

// Done returns a channel closed when the engine has stopped.
func (e *ProtocolEngine[F]) Done() <-chan struct{} { return e.done }

// executor runs engine-wide callbacks (ticks, engine timers) one at a time,
// in order, on an engine goroutine. A callback's panic is recovered and
// logged at level Error, with mai.ErrPanic, the callback's name and the
// stack; the callbacks after it still run.
type executor struct {
	spawn   func(func())
	log     *slog.Logger
	mu      sync.Mutex // guards q, running, closed
	q       []execFunc
	running bool
	closed  bool
}

// execFunc is a callback the executor runs, with the name it is logged
// under when it panics.
type execFunc struct {
	name string
	fn   func()
}

func (x *executor) submit(name string, fn func()) {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return
	}
	x.q = append(x.q, execFunc{name, fn})
	start := !x.running
	x.running = true
	x.mu.Unlock()
	if start {
		x.spawn(x.run)
	}
}

func (x *executor) run() {
	// A callback that ends the goroutine (runtime.Goexit) leaves running
	// set: the rest of the queue runs on another one.
	ended := false
	defer onGoexit(&ended, func() {
		x.log.Error("mai: handler ended its goroutine (runtime.Goexit)", "err", errGoexit)
		x.spawn(x.run)
	})
	for {
		x.mu.Lock()
		if len(x.q) == 0 {
			x.running = false
			x.mu.Unlock()
			ended = true
			return
		}
		f := x.q[0]
		x.q[0] = execFunc{}
		x.q = x.q[1:]
		x.mu.Unlock()
		x.call(f)
	}
}

func (x *executor) call(f execFunc) {
	defer func() {
		if r := recover(); r != nil {
			x.log.Error("mai: panic in handler", "callback", f.name, "err", fmt.Errorf("%w: %v", mai.ErrPanic, r), "stack", string(debug.Stack()))
		}
	}()
	f.fn()
}

func (x *executor) close() {
	x.mu.Lock()
	x.closed = true
	x.mu.Unlock()
}
