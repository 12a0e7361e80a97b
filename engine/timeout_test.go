package engine

// mai's own timeouts (idle, read, handshake, write), ticks, and engine-wide
// timers.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/protocol"
)

// timedRecorder is an echoing recorder that also reports each timeout it
// sees, with the time, before doing what onKind says (the default: close
// with t.Err()).
type timedRecorder struct {
	*recorder
	fired chan timeoutAt
}

type timeoutAt struct {
	kind mai.TimeoutKind
	at   time.Time
}

func newTimedRecorder(t *testing.T, onKind func(c mai.Context[[]byte], to mai.Timeout) error) *timedRecorder {
	r := &timedRecorder{recorder: newRecorder(t), fired: make(chan timeoutAt, 64)}
	r.onFrame = func(c mai.Context[[]byte], f []byte) error { return c.Send(f) }
	r.onTimeout = func(c mai.Context[[]byte], to mai.Timeout) error {
		select {
		case r.fired <- timeoutAt{to.Kind, time.Now()}:
		default:
		}
		if onKind != nil {
			return onKind(c, to)
		}
		return to.Err()
	}
	return r
}

// checkTimeoutClose checks that connection id was closed by a timeout of
// kind: one OnTimeout, OnError and OnClosed with the timeout's error (a
// net.Error whose Timeout is true), in order, after the frames it echoed.
func checkTimeoutClose(t *testing.T, r *timedRecorder, id mai.ConnID, kind mai.TimeoutKind, frames int) {
	t.Helper()
	want := &mai.TimeoutError{Kind: kind}
	cause := r.causeOf(id)
	var ne net.Error
	if !errors.Is(cause, want) || !errors.As(cause, &ne) || !ne.Timeout() {
		t.Errorf("OnClosed cause %v, want a net.Error timeout matching %v", cause, want)
	}
	if errs := r.errorsOf(id); len(errs) != 1 || !errors.Is(errs[0], want) {
		t.Errorf("OnError got %v, want %v", errs, want)
	}
	ev := []string{"ready"}
	for range frames {
		ev = append(ev, "frame")
	}
	ev = append(ev, "timeout:"+kind.String(), "error", "closed")
	if got := r.events(id); !slices.Equal(got, ev) {
		t.Errorf("events %v, want %v", got, ev)
	}
}

func TestIdleTimeout(t *testing.T) {
	const idle = 50 * time.Millisecond
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newTimedRecorder(t, nil)
		_, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr),
			mai.WithIdleTimeout(idle), mai.WithTimerResolution(time.Millisecond))
		start := time.Now()
		c := dial(t, addr)
		ctx := recv(t, r.ready, "ready")
		fired := recv(t, r.fired, "OnTimeout")
		if fired.kind != mai.TimeoutIdle {
			t.Fatalf("timeout %v, want idle", fired.kind)
		}
		if el := fired.at.Sub(start); el < idle {
			t.Errorf("idle timeout after %v, under %v", el, idle)
		}
		if id := recv(t, r.closed, "OnClosed"); id != ctx.ID() {
			t.Fatalf("closed %v", id)
		}
		expectClosedByPeer(t, c)
		checkTimeoutClose(t, r, ctx.ID(), mai.TimeoutIdle, 0)
	})
}

// TestIdleKeepalive: a handler that answers the idle timeout with a ping and
// returns nil keeps the connection, and gets further idle timeouts.
func TestIdleKeepalive(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newTimedRecorder(t, func(c mai.Context[[]byte], to mai.Timeout) error {
			if to.Kind != mai.TimeoutIdle {
				return to.Err()
			}
			if c.Session() == nil { // until the client says stop
				_ = c.Send([]byte("ping"))
			}
			return nil
		})
		r.onFrame = func(c mai.Context[[]byte], f []byte) error {
			c.SetSession("stopped")
			return c.Send([]byte("stopped"))
		}
		_, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr),
			mai.WithIdleTimeout(30*time.Millisecond), mai.WithTimerResolution(time.Millisecond))
		c := dial(t, addr)
		ctx := recv(t, r.ready, "ready")
		for i := 0; i < 3; i++ {
			if got, err := readFrame(c); err != nil || string(got) != "ping" {
				t.Fatalf("ping %d: %q, %v", i, got, err)
			}
		}
		// Stop the pings and read up to the acknowledgement, so that the
		// client closes with nothing unread (a close with unread data is a
		// reset, not an EOF).
		if _, err := c.Write(frame([]byte("stop"))); err != nil {
			t.Fatal(err)
		}
		for {
			got, err := readFrame(c)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) == "stopped" {
				break
			}
		}
		c.Close()
		id := recv(t, r.closed, "OnClosed")
		if cause := r.causeOf(id); id != ctx.ID() || !errors.Is(cause, io.EOF) {
			t.Errorf("closed %v with %v, want %v with EOF", id, cause, ctx.ID())
		}
		ev := r.events(id)
		idles := 0
		for _, s := range ev[1 : len(ev)-1] {
			switch s {
			case "timeout:idle":
				idles++
			case "frame":
			default:
				t.Errorf("unexpected event %q in %v", s, ev)
			}
		}
		if idles < 3 || ev[0] != "ready" || ev[len(ev)-1] != "closed" {
			t.Errorf("events %v, want ready, 3 or more idle timeouts, closed", ev)
		}
	})
}

func TestReadTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newTimedRecorder(t, nil)
		_, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr),
			mai.WithReadTimeout(timeout), mai.WithTimerResolution(time.Millisecond))
		c := dial(t, addr)
		ctx := recv(t, r.ready, "ready")
		// Whole frames do not start the clock.
		echoRoundTrip(t, c, "whole")
		start := time.Now()
		if _, err := c.Write([]byte{0, 0, 0, 100, 'p', 'a', 'r', 't'}); err != nil {
			t.Fatal(err)
		}
		fired := recv(t, r.fired, "OnTimeout")
		if fired.kind != mai.TimeoutRead {
			t.Fatalf("timeout %v, want read", fired.kind)
		}
		if el := fired.at.Sub(start); el < timeout {
			t.Errorf("read timeout %v after the partial frame, under %v", el, timeout)
		}
		recv(t, r.closed, "OnClosed")
		expectClosedByPeer(t, c)
		checkTimeoutClose(t, r, ctx.ID(), mai.TimeoutRead, 1)
	})
}

// TestHandshakeTimeout: a connection that sends nothing is closed; one that
// sent its first frame in time is not.
func TestHandshakeTimeout(t *testing.T) {
	// Long enough for the good client's first frame to arrive in time on a
	// loaded machine.
	const timeout = 300 * time.Millisecond
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newTimedRecorder(t, nil)
		_, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr),
			mai.WithHandshakeTimeout(timeout), mai.WithTimerResolution(time.Millisecond))
		good := dial(t, addr)
		echoRoundTrip(t, good, "hello")
		recv(t, r.ready, "ready")
		start := time.Now()
		bad := dial(t, addr)
		ctx := recv(t, r.ready, "ready")
		fired := recv(t, r.fired, "OnTimeout")
		if fired.kind != mai.TimeoutHandshake {
			t.Fatalf("timeout %v, want handshake", fired.kind)
		}
		if el := fired.at.Sub(start); el < timeout {
			t.Errorf("handshake timeout after %v, under %v", el, timeout)
		}
		if id := recv(t, r.closed, "OnClosed"); id != ctx.ID() {
			t.Fatalf("closed %v, want the silent %v", id, ctx.ID())
		}
		expectClosedByPeer(t, bad)
		checkTimeoutClose(t, r, ctx.ID(), mai.TimeoutHandshake, 0)
		// The good connection's deadline passed before the bad one's.
		echoRoundTrip(t, good, "still here")
	})
}

// TestWriteTimeout: the server sends far more than a client that does not
// read can take; the blocked write times out and the connection closes.
func TestWriteTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newTimedRecorder(t, nil)
		e, addr := server(t, r, lengthField(t, 64<<10), mai.WithTransport(tr),
			mai.WithWriteTimeout(timeout), mai.WithTimerResolution(time.Millisecond),
			mai.WithWriteBufferWaterMarks(32<<20, 64<<20))
		c := dial(t, addr)
		if err := c.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
			t.Fatal(err)
		}
		ctx := recv(t, r.ready, "ready")
		// 16 MiB, several times what the kernel buffers hold, queued from
		// a callback: one batch, written when the callback returns.
		chunk := bytes.Repeat([]byte{'x'}, 64<<10)
		queued := make(chan error, 1)
		if err := e.Do(ctx.ID(), func(c mai.Context[[]byte]) {
			for i := 0; i < 256; i++ {
				if err := c.Send(chunk); err != nil {
					queued <- err
					return
				}
			}
			queued <- nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, queued, "the frames to be queued"); err != nil {
			t.Fatal(err)
		}
		fired := recv(t, r.fired, "OnTimeout")
		if fired.kind != mai.TimeoutWrite {
			t.Fatalf("timeout %v, want write", fired.kind)
		}
		id := recv(t, r.closed, "OnClosed")
		if id != ctx.ID() {
			t.Fatalf("closed %v", id)
		}
		// Draining what the kernel already holds through a 4 KiB window
		// would take long; the server side is what is under test.
		if n := e.Len(); n != 0 {
			t.Errorf("%d connections still registered after OnClosed", n)
		}
		checkTimeoutClose(t, r, id, mai.TimeoutWrite, 0)
	})
}

// tickHandler implements protocol.Ticker.
type tickHandler struct {
	protocol.Base[[]byte]
	ticks chan time.Time
}

func (h tickHandler) OnTick(now time.Time) {
	select {
	case h.ticks <- now:
	default:
	}
}

func TestTick(t *testing.T) {
	h := tickHandler{ticks: make(chan time.Time, 16)}
	e, err := New(lengthField(t, 1<<10), h, mai.WithTickInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, e)
	prev := recv(t, h.ticks, "a tick")
	for i := 0; i < 3; i++ {
		now := recv(t, h.ticks, "a tick")
		if now.Before(prev) {
			t.Errorf("tick at %v after one at %v", now, prev)
		}
		prev = now
	}
}

// connTicker is a recorder that implements protocol.ConnTicker, through
// the recorder's ordering checks.
type connTicker struct {
	*recorder
	mu     sync.Mutex
	ticks  map[mai.ConnID]int
	enough chan struct{} // closed when every connection had minTicks
	conns  int
}

const minTicks = 3

var _ protocol.ConnTicker[[]byte] = (*connTicker)(nil)

func (h *connTicker) OnConnTick(c mai.Context[[]byte], now time.Time) {
	h.enter(c, "tick")
	defer h.leave(c)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ticks[c.ID()]++
	if len(h.ticks) < h.conns {
		return
	}
	for _, n := range h.ticks {
		if n < minTicks {
			return
		}
	}
	select {
	case <-h.enough:
	default:
		close(h.enough)
	}
}

// TestConnTick: every connection gets OnConnTick, serialized with its other
// callbacks while frames are echoed.
func TestConnTick(t *testing.T) {
	const conns = 3
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		h := &connTicker{recorder: newRecorder(t), ticks: map[mai.ConnID]int{}, enough: make(chan struct{}), conns: conns}
		h.onFrame = func(c mai.Context[[]byte], f []byte) error { return c.Send(f) }
		e, addr := server(t, h, lengthField(t, 1<<10), mai.WithTransport(tr),
			mai.WithTickInterval(10*time.Millisecond))
		var clients []net.Conn
		for i := 0; i < conns; i++ {
			clients = append(clients, dial(t, addr))
			recv(t, h.ready, "ready")
		}
		errs := make(chan error, conns)
		for _, c := range clients {
			go func() {
				for i := 0; ; i++ {
					select {
					case <-h.enough:
						errs <- nil
						return
					default:
					}
					want := fmt.Sprintf("frame %d", i)
					if _, err := c.Write(frame([]byte(want))); err != nil {
						errs <- err
						return
					}
					if got, err := readFrame(c); err != nil || string(got) != want {
						errs <- fmt.Errorf("got %q, %v; want %q", got, err, want)
						return
					}
				}
			}()
		}
		for range conns {
			if err := recv(t, errs, "the echoes"); err != nil {
				t.Fatal(err)
			}
		}
		shutdown(t, e)
		h.check()
	})
}

// engineTimers implements protocol.EngineTimerHandler.
type engineTimers struct {
	protocol.Base[[]byte]
	fired chan engineFire
}

type engineFire struct {
	id      mai.TimerID
	payload any
	at      time.Time
}

func (h engineTimers) OnEngineTimer(id mai.TimerID, payload any) {
	h.fired <- engineFire{id, payload, time.Now()}
}

func TestEngineTimers(t *testing.T) {
	h := engineTimers{fired: make(chan engineFire, 8)}
	e, err := New(lengthField(t, 1<<10), h, mai.WithTimerResolution(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	id1, err1 := e.SetTimer(20*time.Millisecond, "one")
	id2, err2 := e.SetTimer(30*time.Millisecond, "cancelled")
	id3, err3 := e.SetTimer(40*time.Millisecond, "three")
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if id1 == 0 || id1 == id2 || id2 == id3 || id1 == id3 {
		t.Fatalf("timer IDs %v %v %v", id1, id2, id3)
	}
	if !e.CancelTimer(id2) {
		t.Fatal("CancelTimer of a pending timer returned false")
	}
	f := recv(t, h.fired, "the first timer")
	if f.id != id1 || f.payload != "one" {
		t.Fatalf("fired %v with %v, want %v with one", f.id, f.payload, id1)
	}
	if el := f.at.Sub(start); el < 20*time.Millisecond {
		t.Errorf("fired after %v, under 20ms", el)
	}
	// The cancelled timer was due before this one.
	if f := recv(t, h.fired, "the third timer"); f.id != id3 || f.payload != "three" {
		t.Fatalf("fired %v with %v, want %v with three", f.id, f.payload, id3)
	}
	if e.CancelTimer(id1) {
		t.Error("CancelTimer of a fired timer returned true")
	}
	if _, err := e.SetTimer(-time.Second, nil); !errors.Is(err, mai.ErrInvalidOption) {
		t.Errorf("negative duration: %v, want ErrInvalidOption", err)
	}
	pending, err := e.SetTimer(time.Hour, "never")
	if err != nil {
		t.Fatal(err)
	}
	shutdown(t, e)
	if e.CancelTimer(pending) {
		t.Error("a timer survived the shutdown")
	}
	if _, err := e.SetTimer(time.Millisecond, nil); !errors.Is(err, mai.ErrShutdown) {
		t.Errorf("SetTimer after Shutdown: %v, want ErrShutdown", err)
	}
	select {
	case f := <-h.fired:
		t.Errorf("timer %v fired after cancel or shutdown", f.id)
	default:
	}

	// Without the interface there is nowhere to deliver a timer.
	plain, err := New(lengthField(t, 1<<10), echo{})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, plain)
	if _, err := plain.SetTimer(time.Millisecond, nil); !errors.Is(err, mai.ErrUnsupported) {
		t.Errorf("SetTimer without EngineTimerHandler: %v, want ErrUnsupported", err)
	}
}

// forever is the largest time.Duration, a common way to say "never".
const forever = time.Duration(math.MaxInt64)

// tickTimers is a Ticker and an EngineTimerHandler.
type tickTimers struct {
	engineTimers
	tick tickHandler
}

func (h tickTimers) OnTick(now time.Time) { h.tick.OnTick(now) }

// TestForeverDurations: a duration of math.MaxInt64, for every timeout,
// the tick interval and both kinds of timer, means "not in this process's
// lifetime". It once wrapped around into the past and fired at once, so
// the idle or read timeout closed a connection as soon as it was armed.
// A short witness timer set after them must fire first.
func TestForeverDurations(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newRecorder(t)
		timeouts := r.collectTimeouts(8, true)
		_, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr),
			mai.WithIdleTimeout(forever), mai.WithReadTimeout(forever),
			mai.WithWriteTimeout(forever), mai.WithHandshakeTimeout(forever),
			mai.WithWriteBufferWaterMarks(lowWater, highWater), mai.WithListenControl(sockBufs(0, serverSnd)))
		c := dialBufs(t, addr, clientRcv, 0)
		cx := recv(t, r.ready, "OnReady")
		if _, err := c.Write(frame([]byte("abc"))[:5]); err != nil { // a partial frame: the read clock runs
			t.Fatal(err)
		}
		// Output the client never reads, until the socket is full and the
		// write clock runs.
		eventually(t, "the write clock to start", func() bool {
			if err := cx.Send(make([]byte, 1000)); err != nil && !errors.Is(err, mai.ErrBackpressure) {
				t.Fatal(err)
			}
			return cx.(*conn[[]byte]).writeStart.Load() != 0
		})
		// First the timeouts alone, then a timer of the same duration.
		for _, timer := range []bool{false, true} {
			if timer {
				if _, err := cx.SetTimer(forever, "forever"); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := cx.SetTimer(50*time.Millisecond, "witness"); err != nil {
				t.Fatal(err)
			}
			if to := recv(t, timeouts, "a timeout"); to.Kind != mai.TimeoutTimer || to.Payload != "witness" {
				t.Fatalf("first timeout %+v, want the witness timer", to)
			}
			select {
			case id := <-r.closed:
				t.Fatalf("connection %v closed: %v", id, r.errorsOf(id))
			default:
			}
		}
	})

	h := tickTimers{engineTimers{fired: make(chan engineFire, 8)}, tickHandler{ticks: make(chan time.Time, 8)}}
	e, err := New(lengthField(t, 1<<10), h, mai.WithTickInterval(forever))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, e)
	if _, err := e.SetTimer(forever, "forever"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SetTimer(50*time.Millisecond, "witness"); err != nil {
		t.Fatal(err)
	}
	if f := recv(t, h.fired, "an engine timer"); f.payload != "witness" {
		t.Fatalf("engine timer %v fired first, want the witness", f.payload)
	}
	select {
	case <-h.tick.ticks:
		t.Fatal("OnTick with a tick interval of math.MaxInt64")
	default:
	}
}

// panickyTimers panics in every OnTick and in OnEngineTimer for the payload
// "panic", after reporting the call.
type panickyTimers struct {
	engineTimers
	tick tickHandler
}

func (h panickyTimers) OnTick(now time.Time) {
	h.tick.OnTick(now)
	panic("tick")
}

func (h panickyTimers) OnEngineTimer(id mai.TimerID, payload any) {
	h.engineTimers.OnEngineTimer(id, payload)
	if payload == "panic" {
		panic("timer")
	}
}

// logCapture is a slog.Handler that keeps every record's callback and err
// attributes.
type logCapture struct {
	mu   sync.Mutex // guards recs
	recs []loggedPanic
}

type loggedPanic struct {
	msg      string
	callback string
	err      error
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logCapture) WithGroup(string) slog.Handler            { return l }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	p := loggedPanic{msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "callback":
			p.callback = a.Value.String()
		case "err":
			p.err, _ = a.Value.Any().(error)
		}
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, p)
	l.mu.Unlock()
	return nil
}

// panicLogged reports whether a panic in callback was logged with ErrPanic.
func (l *logCapture) panicLogged(callback string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.recs, func(p loggedPanic) bool {
		return p.callback == callback && errors.Is(p.err, mai.ErrPanic)
	})
}

// TestEngineCallbackPanics: a panic in OnTick or OnEngineTimer is logged
// with ErrPanic and the callback's name, and the ticks and the other
// timers go on. Such panics were once swallowed without a trace.
func TestEngineCallbackPanics(t *testing.T) {
	logs := &logCapture{}
	h := panickyTimers{engineTimers{fired: make(chan engineFire, 8)}, tickHandler{ticks: make(chan time.Time, 16)}}
	e, err := New(lengthField(t, 1<<10), h, mai.WithTickInterval(10*time.Millisecond), mai.WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, e)
	recv(t, h.tick.ticks, "a tick")
	recv(t, h.tick.ticks, "a tick after one that panicked")
	for _, payload := range []string{"panic", "after"} {
		if _, err := e.SetTimer(time.Millisecond, payload); err != nil {
			t.Fatal(err)
		}
		if f := recv(t, h.fired, "an engine timer"); f.payload != payload {
			t.Fatalf("timer %v fired, want %q", f.payload, payload)
		}
	}
	for _, cb := range []string{"OnTick", "OnEngineTimer"} {
		eventually(t, "the panic in "+cb+" logged", func() bool { return logs.panicLogged(cb) })
	}
}

// goexitTicker calls runtime.Goexit in its first OnTick (a t.FailNow from
// a handler, say), and reports every tick after it.
type goexitTicker struct {
	protocol.Base[[]byte]
	n     atomic.Int32
	ticks chan struct{}
}

func (g *goexitTicker) OnTick(time.Time) {
	if g.n.Add(1) == 1 {
		runtime.Goexit()
	}
	select {
	case g.ticks <- struct{}{}:
	default:
	}
}

// TestTicksGoOnAfterGoexit: "A panic in it is recovered and logged;
// the ticks go on." A callback that ends its goroutine (runtime.Goexit)
// leaves the executor marked running: no tick or engine timer ever runs
// again, and nothing is logged.
func TestTicksGoOnAfterGoexit(t *testing.T) {
	h := &goexitTicker{ticks: make(chan struct{}, 1)}
	e, err := New(lengthField(t, 1<<10), h, mai.WithTickInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, e)
	recv(t, h.ticks, "a tick after one that called runtime.Goexit")
}
