package engine

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/protocol"
)

// eventKind is what a mailbox event asks the runner to do.
type eventKind uint8

const (
	evReady       eventKind = iota // call OnReady
	evTimeout                      // call OnTimeout
	evDo                           // run a function from Do
	evWritability                  // call OnWritabilityChanged
	evResume                       // decode input held while paused
	evTick                         // call OnConnTick
	evClosed                       // call OnError (if due) and OnClosed; always last
)

// event is one entry of a connection's mailbox.
type event[F any] struct {
	kind    eventKind
	timeout mai.Timeout
	fn      func(mai.Context[F])
	now     time.Time
}

// A connection's callbacks run one at a time. Whoever holds c.serial is the
// runner: it runs what it came for (decoding input, on the read path), then
// drains the mailbox, lets go of serial, flushes what the callbacks queued,
// and checks the mailbox once more so that no posted event is stranded.
// Events posted from other goroutines (timers, Do, writability) try to
// become the runner; if serial is busy, the current runner will see them.

// post queues ev and makes sure a runner will handle it, before OnClosed.
// It reports false, dropping ev, if OnClosed is queued already. It never
// blocks on serial and may be called from any goroutine, including a
// callback, but not with outMu or xmu held.
func (c *conn[F]) post(ev event[F]) bool {
	c.xmu.Lock()
	if c.mboxDone {
		c.xmu.Unlock()
		return false
	}
	if ev.kind == evClosed {
		c.mboxDone = true
	}
	if c.mb == nil {
		c.mb = new(mailbox[F])
	}
	c.mb.evs = append(c.mb.evs, ev)
	c.setFlag(flMail)
	c.xmu.Unlock()
	if c.serial.TryLock() {
		if c.finished {
			// A runner handled ev, and OnClosed after it, since xmu was
			// let go: the engine may be stopping, and there is nothing
			// left to run.
			c.serial.Unlock()
			return true
		}
		c.setFlag(flRunning)
		c.e.goRun(c)
	}
	return true
}

// mailWaiting reports whether events are queued.
func (c *conn[F]) mailWaiting() bool { return c.hasFlag(flMail) }

// drain runs OnReady if it is due, then handles queued events until the
// mailbox is empty. serial is held.
func (c *conn[F]) drain() {
	if c.readyDue {
		c.readyDue = false
		c.handle(&event[F]{kind: evReady})
	}
	for c.hasFlag(flMail) {
		c.drainMail()
	}
}

// drainMail handles the events queued now. If a callback ends the
// goroutine (runtime.Goexit), the events after it go back to the front of
// the mailbox for the runner that takes over (see runnerLost), and so does
// an evClosed whose OnError or OnClosed ended it: closedEvent resumes
// where it stopped. serial is held.
func (c *conn[F]) drainMail() {
	c.xmu.Lock()
	mb := c.mb
	evs := mb.evs
	mb.evs, mb.spare = mb.spare, nil
	c.clearFlag(flMail)
	c.xmu.Unlock()
	next, done := 0, false
	defer onGoexit(&done, func() { c.requeue(evs, next) })
	for next < len(evs) {
		ev := &evs[next]
		next++
		c.handle(ev)
		*ev = event[F]{}
	}
	done = true
	c.xmu.Lock()
	if mb.spare == nil {
		mb.spare = evs[:0]
	}
	c.xmu.Unlock()
}

// requeue puts back the events of evs that a Goexit left unhandled: those
// from next on, and evs[next-1], the one being handled, if it is evClosed.
// serial is held.
func (c *conn[F]) requeue(evs []event[F], next int) {
	if next > 0 && evs[next-1].kind == evClosed {
		next--
	}
	rest := evs[next:]
	if len(rest) == 0 {
		return
	}
	c.xmu.Lock()
	c.mb.evs = append(rest[:len(rest):len(rest)], c.mb.evs...)
	c.setFlag(flMail)
	c.xmu.Unlock()
}

// release ends a run (see releaseRun). It is where a runner that was
// handed the role on its own goroutine begins (goRun, an event loop's
// start), so it guards against a callback that ends the goroutine.
func (c *conn[F]) release() {
	done := false
	defer onGoexit(&done, func() { c.runnerLost(false) })
	c.releaseRun()
	done = true
}

// releaseRun ends a run: it drains the mailbox, unlocks serial, flushes
// what the callbacks sent, and takes serial again if events arrived
// meanwhile.
func (c *conn[F]) releaseRun() {
	for {
		c.drain()
		c.clearFlag(flRunning)
		c.serial.Unlock()
		c.flushOwed()
		if !c.mailWaiting() || !c.serial.TryLock() {
			return
		}
		c.setFlag(flRunning)
	}
}

// handle runs one event. serial is held.
func (c *conn[F]) handle(ev *event[F]) {
	if c.finished {
		return
	}
	switch ev.kind {
	case evReady:
		if err := c.callReady(); err != nil {
			c.fail(err)
		}
	case evTimeout:
		t := ev.timeout
		if t.Kind != mai.TimeoutTimer && c.hasFlag(flClosing) {
			// Already closing: a built-in timeout is not news to the
			// handler, but a write that cannot finish ends the wait.
			if t.Kind == mai.TimeoutWrite {
				c.abortWith(t.Err())
			}
			return
		}
		if err := c.callTimeout(t); err != nil {
			c.fail(err)
		}
	case evDo:
		c.callDo(ev.fn)
	case evWritability:
		c.reportWritability()
	case evResume:
		c.restartReadClock()
		c.decodePending()
	case evTick:
		if c.e.connTicker != nil {
			c.callTick(c.e.connTicker, ev.now)
		}
	case evClosed:
		c.closedEvent()
	}
}

// reportWritability tells the handler of the changes of writability it
// has not heard of. It delivers the state as it is now, and only a
// change: events can be posted in a different order than the flips they
// report. A queue that crossed the high mark and drained again before
// this ran is still told as both flips: a handler that met
// ErrBackpressure waits for OnWritabilityChanged(true). serial is held.
func (c *conn[F]) reportWritability() {
	c.outMu.Lock()
	w, dipped := c.writable, c.hasFlag(flDipped)
	if dipped {
		c.clearFlag(flDipped)
	}
	c.outMu.Unlock()
	if c.e.writability == nil {
		return
	}
	if dipped && w && c.toldWritable {
		c.callWritability(c.e.writability, false)
		c.toldWritable = false
	}
	if w != c.toldWritable {
		c.toldWritable = w
		c.callWritability(c.e.writability, w)
	}
}

// fail reports err to OnError (once) and starts an orderly close with it.
// serial is held: this is the runner reacting to an error it saw.
func (c *conn[F]) fail(err error) {
	c.showError(err)
	c.setFlag(flClosing)
	if errors.Is(err, mai.ErrWriteTimeout) {
		// Queued bytes cannot be written: an orderly close would wait
		// for them for ever.
		c.abortWith(err)
		return
	}
	_ = c.closeWith(err, false)
}

// showError calls OnError once. serial is held.
func (c *conn[F]) showError(err error) {
	if c.errShown || !isFailure(err) {
		return
	}
	c.errShown = true
	c.e.log.Debug("mai: connection error", "conn", c.id, "remote", c.RemoteAddr(), "err", err)
	c.callError(err)
}

// closedEvent delivers the end of the connection. serial is held. It may
// run again after a callback of its own ended the goroutine (see
// drainMail): OnClosed is called at most once, and the connection
// finishes either way.
func (c *conn[F]) closedEvent() {
	cause, peer := c.closeCause()
	if peer {
		c.deliverHeld()
	}
	if errors.Is(cause, io.EOF) && c.pend != nil && c.unread() > 0 && !c.poisoned {
		cause = fmt.Errorf("%w (%d bytes)", mai.ErrPartialFrame, c.unread())
	}
	if !c.hasFlag(flClosedCalled) {
		c.showError(cause)
		c.setFlag(flClosedCalled)
		c.callClosed(cause)
	}
	c.finish()
}

// isFailure tells the causes that OnError sees from orderly ends.
func isFailure(err error) bool {
	return err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, mai.ErrAborted)
}

// The call* methods run one Handler callback with panics recovered: a panic
// becomes an error wrapping mai.ErrPanic that closes this connection only.
// OnFrame and the codec's Decode, the per-frame calls, share one recover
// in decodeFrom instead.

func (c *conn[F]) panicked(r any) error {
	c.e.log.Error("mai: panic in handler", "conn", c.id, "panic", r, "stack", string(debug.Stack()))
	return fmt.Errorf("%w: %v", mai.ErrPanic, r)
}

func (c *conn[F]) callReady() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = c.panicked(r)
		}
	}()
	return c.e.h.OnReady(c)
}

func (c *conn[F]) callTimeout(t mai.Timeout) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = c.panicked(r)
		}
	}()
	return c.e.h.OnTimeout(c, t)
}

func (c *conn[F]) callDo(fn func(mai.Context[F])) {
	defer func() {
		if r := recover(); r != nil {
			c.fail(c.panicked(r))
		}
	}()
	fn(c)
}

func (c *conn[F]) callWritability(wh protocol.WritabilityHandler[F], writable bool) {
	defer func() {
		if r := recover(); r != nil {
			c.fail(c.panicked(r))
		}
	}()
	wh.OnWritabilityChanged(c, writable)
}

func (c *conn[F]) callTick(th protocol.ConnTicker[F], now time.Time) {
	defer func() {
		if r := recover(); r != nil {
			c.fail(c.panicked(r))
		}
	}()
	th.OnConnTick(c, now)
}

func (c *conn[F]) callError(err error) {
	defer func() {
		if r := recover(); r != nil {
			_ = c.panicked(r)
		}
	}()
	c.e.h.OnError(c, err)
}

func (c *conn[F]) callClosed(err error) {
	defer func() {
		if r := recover(); r != nil {
			_ = c.panicked(r)
		}
	}()
	c.e.h.OnClosed(c, err)
}
