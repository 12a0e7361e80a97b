package engine

import (
	"fmt"
	"math"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/internal/timerwheel"
)

// The watchdog: one wheel timer per connection checks the idle, read, write
// and handshake timeouts. The hot paths only store timestamps (an atomic
// store per frame); the watchdog fires at the earliest deadline it knows,
// finds out what really expired, and re-arms itself. So pushing an idle
// timeout forward costs one store, and the wheel sees about one operation
// per timeout period per connection.

func (e *ProtocolEngine[F]) watchdogEnabled() bool {
	o := &e.opts
	return o.IdleTimeout > 0 || o.ReadTimeout > 0 || o.WriteTimeout > 0 || o.HandshakeTimeout > 0
}

// startWatchdog arms the watchdog of a new connection. The watchdog timer
// is made only once a timeout can expire: with the default options (a write
// timeout only) that is when a write has to wait.
func (c *conn[F]) startWatchdog() {
	now := c.e.wheel.Now()
	c.readyAt = now
	c.lastActivity.Store(now)
	if !c.e.watchdogEnabled() {
		return
	}
	if d := c.nextDeadline(); d > 0 {
		c.armBy(d)
	}
}

// idleSpan is the idle timeout plus one tick: activity is stamped with the
// wheel's coarse clock, which lags by up to a tick, so this keeps an idle
// timeout from ever firing early.
func (c *conn[F]) idleSpan() int64 {
	return after(int64(c.e.opts.IdleTimeout), c.e.opts.TimerResolution)
}

// after returns the wheel time d after t, saturated at math.MaxInt64: a
// duration meant as "never" (math.MaxInt64) must not wrap around into the
// past, where it would fire at once. The wheel keeps such a deadline at
// its last tick, about 292 years away.
func after(t int64, d time.Duration) int64 {
	if d > 0 && t > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return t + int64(d)
}

// nextDeadline is the earliest time a timeout could expire, or 0.
func (c *conn[F]) nextDeadline() int64 {
	o := &c.e.opts
	var d int64
	earliest := func(t int64) {
		if d == 0 || t < d {
			d = t
		}
	}
	if o.IdleTimeout > 0 {
		earliest(after(c.lastActivity.Load(), time.Duration(c.idleSpan())))
	}
	if rs := c.readStart.Load(); o.ReadTimeout > 0 && rs != 0 {
		earliest(after(rs, o.ReadTimeout))
	}
	if ws := c.writeStart.Load(); o.WriteTimeout > 0 && ws != 0 {
		earliest(after(ws, o.WriteTimeout))
	}
	if o.HandshakeTimeout > 0 && !c.hasFlag(flGotFrame) && !c.handshakeFired {
		earliest(after(c.readyAt, o.HandshakeTimeout))
	}
	return d
}

// armBy makes sure the watchdog fires no later than deadline.
func (c *conn[F]) armBy(deadline int64) {
	c.xmu.Lock()
	if !c.xDead {
		x := c.extra()
		if x.wdArmed == 0 || deadline < x.wdArmed {
			x.wdArmed = deadline
			c.e.wheel.Schedule(&x.wd, deadline)
		}
	}
	c.xmu.Unlock()
}

// stopTimers disarms the watchdog and cancels every user timer, for good:
// later SetTimer calls fail.
func (c *conn[F]) stopTimers() {
	c.xmu.Lock()
	c.xDead = true
	if x := c.x; x != nil {
		x.wdArmed = 0
		c.e.wheel.Stop(&x.wd)
		for id, ct := range x.timers {
			c.e.wheel.Stop(&ct.t)
			delete(x.timers, id)
		}
		x.timers = nil
	}
	c.xmu.Unlock()
}

// watchdogFired runs on the wheel goroutine; it must not block.
func watchdogFired[F any](t *timerwheel.Timer, now int64) {
	c := t.Arg().(*conn[F])
	o := &c.e.opts
	var fired [4]mai.TimeoutKind
	n := 0
	c.xmu.Lock()
	if c.xDead || c.x == nil {
		c.xmu.Unlock()
		return
	}
	x := c.x
	x.wdArmed = 0
	if o.IdleTimeout > 0 {
		if la := c.lastActivity.Load(); now-la >= c.idleSpan() && c.lastActivity.CompareAndSwap(la, now) {
			fired[n], n = mai.TimeoutIdle, n+1
		}
	}
	if rs := c.readStart.Load(); o.ReadTimeout > 0 && rs != 0 && now-rs >= int64(o.ReadTimeout) && c.readStart.CompareAndSwap(rs, now) {
		// While decoding is paused the connection itself holds the rest
		// of the frame back (it stops reading): the clock restarts
		// instead, and again when the pause ends (restartReadClock).
		if !c.hasFlag(flPaused) {
			fired[n], n = mai.TimeoutRead, n+1
		}
	}
	if ws := c.writeStart.Load(); o.WriteTimeout > 0 && ws != 0 && now-ws >= int64(o.WriteTimeout) && c.writeStart.CompareAndSwap(ws, now) {
		fired[n], n = mai.TimeoutWrite, n+1
	}
	if o.HandshakeTimeout > 0 && !c.handshakeFired && !c.hasFlag(flGotFrame) && now-c.readyAt >= int64(o.HandshakeTimeout) {
		c.handshakeFired = true
		fired[n], n = mai.TimeoutHandshake, n+1
	}
	if d := c.nextDeadline(); d > 0 {
		x.wdArmed = d
		c.e.wheel.Schedule(&x.wd, d)
	}
	c.xmu.Unlock()
	for _, k := range fired[:n] {
		c.post(event[F]{kind: evTimeout, timeout: mai.Timeout{Kind: k}})
	}
}

// connTimer is a user timer of a connection.
type connTimer[F any] struct {
	t       timerwheel.Timer
	c       *conn[F]
	id      mai.TimerID
	payload any
}

// SetTimer implements mai.Context.
func (c *conn[F]) SetTimer(d time.Duration, payload any) (mai.TimerID, error) {
	if d < 0 {
		return 0, fmt.Errorf("%w: negative timer duration %v", mai.ErrInvalidOption, d)
	}
	ct := &connTimer[F]{c: c, id: mai.TimerID(c.e.timerSeq.Add(1)), payload: payload}
	ct.t.Init(connTimerFired[F], ct)
	c.xmu.Lock()
	if c.xDead {
		c.xmu.Unlock()
		return 0, fmt.Errorf("set timer on %v: %w", c.id, mai.ErrClosed)
	}
	x := c.extra()
	if x.timers == nil {
		x.timers = make(map[mai.TimerID]*connTimer[F])
	}
	x.timers[ct.id] = ct
	c.e.wheel.Schedule(&ct.t, after(c.e.wheel.Now(), d))
	c.xmu.Unlock()
	return ct.id, nil
}

// CancelTimer implements mai.Context.
func (c *conn[F]) CancelTimer(id mai.TimerID) bool {
	c.xmu.Lock()
	defer c.xmu.Unlock()
	if c.x == nil {
		return false
	}
	ct, ok := c.x.timers[id]
	if ok {
		delete(c.x.timers, id)
		c.e.wheel.Stop(&ct.t)
	}
	return ok
}

func connTimerFired[F any](t *timerwheel.Timer, _ int64) {
	ct := t.Arg().(*connTimer[F])
	c := ct.c
	ok := false
	c.xmu.Lock()
	if c.x != nil {
		if _, ok = c.x.timers[ct.id]; ok {
			delete(c.x.timers, ct.id)
		}
	}
	c.xmu.Unlock()
	if ok {
		c.post(event[F]{kind: evTimeout, timeout: mai.Timeout{Kind: mai.TimeoutTimer, Timer: ct.id, Payload: ct.payload}})
	}
}

// Engine-wide timers and ticks. Their callbacks run on the engine's
// executor: one at a time, in order, never on the wheel goroutine.

type engineTimer[F any] struct {
	t       timerwheel.Timer
	e       *ProtocolEngine[F]
	id      mai.TimerID
	payload any
}

// SetTimer arranges for the Handler's OnEngineTimer (protocol.EngineTimerHandler)
// to receive payload after d. It fails if the Handler does not implement
// protocol.EngineTimerHandler, or once Shutdown has begun (timers set
// before keep firing until the last connection is gone). Safe for
// concurrent use.
func (e *ProtocolEngine[F]) SetTimer(d time.Duration, payload any) (mai.TimerID, error) {
	if e.timerH == nil {
		return 0, fmt.Errorf("%w: the Handler does not implement protocol.EngineTimerHandler", mai.ErrUnsupported)
	}
	if d < 0 {
		return 0, fmt.Errorf("%w: negative timer duration %v", mai.ErrInvalidOption, d)
	}
	select {
	case <-e.closing:
		return 0, fmt.Errorf("set timer: %w", mai.ErrShutdown)
	default:
	}
	et := &engineTimer[F]{e: e, id: mai.TimerID(e.timerSeq.Add(1)), payload: payload}
	et.t.Init(engineTimerFired[F], et)
	e.timersMu.Lock()
	defer e.timersMu.Unlock()
	if e.timersDead {
		return 0, fmt.Errorf("set timer: %w", mai.ErrShutdown)
	}
	e.timers[et.id] = et
	e.wheel.Schedule(&et.t, after(e.wheel.Now(), d))
	return et.id, nil
}

// CancelTimer cancels an engine-wide timer; it reports whether the timer was
// still pending. Safe for concurrent use.
func (e *ProtocolEngine[F]) CancelTimer(id mai.TimerID) bool {
	e.timersMu.Lock()
	defer e.timersMu.Unlock()
	et, ok := e.timers[id]
	if ok {
		delete(e.timers, id)
		e.wheel.Stop(&et.t)
	}
	return ok
}

func engineTimerFired[F any](t *timerwheel.Timer, _ int64) {
	et := t.Arg().(*engineTimer[F])
	e := et.e
	e.timersMu.Lock()
	_, ok := e.timers[et.id]
	delete(e.timers, et.id)
	e.timersMu.Unlock()
	if !ok {
		return
	}
	if th := e.timerH; th != nil {
		e.exec.submit("OnEngineTimer", func() { th.OnEngineTimer(et.id, et.payload) })
	}
}

// stopEngineTimers cancels every engine-wide timer and the tick.
func (e *ProtocolEngine[F]) stopEngineTimers() {
	e.timersMu.Lock()
	e.timersDead = true
	for id, et := range e.timers {
		e.wheel.Stop(&et.t)
		delete(e.timers, id)
	}
	e.timersMu.Unlock()
	e.wheel.Stop(&e.tick)
}

// startTick arms the periodic tick when the Handler wants one.
func (e *ProtocolEngine[F]) startTick() {
	if e.opts.TickInterval <= 0 || (e.ticker == nil && e.connTicker == nil) {
		return
	}
	e.tick.Init(tickFired[F], e)
	e.wheel.Schedule(&e.tick, after(e.wheel.Now(), e.opts.TickInterval))
}

func tickFired[F any](t *timerwheel.Timer, now int64) {
	e := t.Arg().(*ProtocolEngine[F])
	e.timersMu.Lock()
	dead := e.timersDead
	if !dead {
		e.wheel.Schedule(&e.tick, after(now, e.opts.TickInterval))
	}
	e.timersMu.Unlock()
	if dead {
		return
	}
	wall := time.Now()
	if th := e.ticker; th != nil {
		e.exec.submit("OnTick", func() { th.OnTick(wall) })
	}
	if e.connTicker != nil {
		for _, c := range e.reg.snapshot(nil) {
			c.post(event[F]{kind: evTick, now: wall})
		}
	}
}
