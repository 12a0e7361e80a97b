// Package prototest provides a fake mai.Context for unit tests of a
// protocol.Handler: no engine, no sockets. Drive the handler's callbacks
// yourself and inspect what it sent, closed and scheduled.
package prototest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/mai-go/mai"
)

// Context is a fake mai.Context[F]. The zero value is not usable; call
// NewContext. It is safe for concurrent use, as the real one is.
type Context[F any] struct {
	id       mai.ConnID
	listener string
	laddr    net.Addr
	raddr    net.Addr
	ctx      context.Context
	cancel   context.CancelFunc

	mu        sync.Mutex // guards the fields below
	sent      []F
	sendErr   error
	closed    bool
	aborted   bool
	writable  bool
	session   any
	timers    map[mai.TimerID]Timer
	nextTimer mai.TimerID
}

// Timer is a timer a handler set on the fake Context.
type Timer struct {
	ID      mai.TimerID
	After   time.Duration
	Payload any
}

// NewContext returns a fake Context for connection id with loopback
// addresses.
func NewContext[F any](id mai.ConnID) *Context[F] {
	ctx, cancel := context.WithCancel(context.Background())
	return &Context[F]{
		id:       id,
		laddr:    &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7777},
		raddr:    &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000},
		ctx:      ctx,
		cancel:   cancel,
		writable: true,
		timers:   map[mai.TimerID]Timer{},
	}
}

// SetListener sets what Listener reports.
func (c *Context[F]) SetListener(name string) { c.listener = name }

// SetSendError makes every later Send fail with err (nil restores success),
// to test how a handler copes with mai.ErrBackpressure, say.
func (c *Context[F]) SetSendError(err error) {
	c.mu.Lock()
	c.sendErr = err
	c.mu.Unlock()
}

// SetWritable sets what Writable reports.
func (c *Context[F]) SetWritable(w bool) {
	c.mu.Lock()
	c.writable = w
	c.mu.Unlock()
}

// Sent returns the frames sent so far, in order.
func (c *Context[F]) Sent() []F {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]F(nil), c.sent...)
}

// Closed reports whether Close or Abort was called.
func (c *Context[F]) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Aborted reports whether Abort was called.
func (c *Context[F]) Aborted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.aborted
}

// Timers returns the pending timers.
func (c *Context[F]) Timers() []Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Timer, 0, len(c.timers))
	for _, t := range c.timers {
		out = append(out, t)
	}
	return out
}

// Fire removes the pending timer id and returns the Timeout the engine
// would hand to OnTimeout for it; ok is false if no such timer is pending.
func (c *Context[F]) Fire(id mai.TimerID) (t mai.Timeout, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tm, ok := c.timers[id]
	if !ok {
		return mai.Timeout{}, false
	}
	delete(c.timers, id)
	return mai.Timeout{Kind: mai.TimeoutTimer, Timer: id, Payload: tm.Payload}, true
}

// ID implements mai.Context.
func (c *Context[F]) ID() mai.ConnID { return c.id }

// Send implements mai.Context: it records frame.
func (c *Context[F]) Send(frame F) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("send to %v: %w", c.id, mai.ErrClosed)
	}
	if c.sendErr != nil {
		return c.sendErr
	}
	c.sent = append(c.sent, frame)
	return nil
}

// Close implements mai.Context.
func (c *Context[F]) Close() error { return c.end(false) }

// Abort implements mai.Context.
func (c *Context[F]) Abort() error { return c.end(true) }

func (c *Context[F]) end(abort bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("close %v: %w", c.id, mai.ErrClosed)
	}
	c.closed, c.aborted = true, abort
	c.timers = map[mai.TimerID]Timer{}
	c.cancel()
	return nil
}

// LocalAddr implements mai.Context.
func (c *Context[F]) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr implements mai.Context.
func (c *Context[F]) RemoteAddr() net.Addr { return c.raddr }

// Listener implements mai.Context.
func (c *Context[F]) Listener() string { return c.listener }

// Session implements mai.Context.
func (c *Context[F]) Session() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// SetSession implements mai.Context.
func (c *Context[F]) SetSession(v any) {
	c.mu.Lock()
	c.session = v
	c.mu.Unlock()
}

// SetTimer implements mai.Context: it records the timer; call Fire to get
// the Timeout to pass to OnTimeout.
func (c *Context[F]) SetTimer(d time.Duration, payload any) (mai.TimerID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, fmt.Errorf("set timer on %v: %w", c.id, mai.ErrClosed)
	}
	c.nextTimer++
	c.timers[c.nextTimer] = Timer{ID: c.nextTimer, After: d, Payload: payload}
	return c.nextTimer, nil
}

// CancelTimer implements mai.Context.
func (c *Context[F]) CancelTimer(id mai.TimerID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.timers[id]
	delete(c.timers, id)
	return ok
}

// Context implements mai.Context; it is cancelled by Close or Abort.
func (c *Context[F]) Context() context.Context { return c.ctx }

// Writable implements mai.Context.
func (c *Context[F]) Writable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writable && !c.closed
}

// Info implements mai.Context.
func (c *Context[F]) Info() mai.ConnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return mai.ConnInfo{
		ID: c.id, Listener: c.listener, LocalAddr: c.laddr, RemoteAddr: c.raddr,
		FramesOut: uint64(len(c.sent)), Writable: c.writable && !c.closed,
	}
}

var _ mai.Context[[]byte] = (*Context[[]byte])(nil)
