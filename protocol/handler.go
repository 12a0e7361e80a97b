// Package protocol defines the Handler a user of mai writes: the callbacks a
// connection's life goes through, an embeddable no-op Base, and optional
// interfaces that add admission control, ticks, writability changes and
// engine-wide timers.
package protocol

import (
	"time"

	"github.com/mai-go/mai"
)

// Handler reacts to the events of the engine's connections. One Handler
// serves every connection of an engine; keep per-connection state in the
// Context's Session.
//
// Ordering and goroutines: the callbacks of one connection never run
// concurrently and each one happens before the next. OnReady runs once,
// first; then OnFrame and OnTimeout (and the optional per-connection
// callbacks) in the order their events occurred; then OnClosed, exactly once,
// whatever ended the connection. The callbacks of different connections run
// concurrently, so a Handler's own shared state must be safe for concurrent
// use. Callbacks run on goroutines the engine owns (netpoll's workers, a
// connection's reader, an event loop, the timer goroutine); a callback that
// blocks holds up its own connection only, except on mai.TransportEpoll,
// where it holds up every connection of its event loop.
//
// A panic in a callback is recovered: the engine reports it to OnError
// (wrapped in mai.ErrPanic) and closes that connection only. A callback
// that ends its goroutine (runtime.Goexit, and so t.FailNow or t.Fatal in
// a test) is handled the same way, though it cannot be stopped: the
// engine logs it (mai.WithLogger, level Error, with the stack), reports
// an error wrapping mai.ErrPanic to OnError (unless it was OnClosed that
// ended), closes the connection (dropping the rest of what it had read)
// and carries on with the events still due, OnClosed included, on a new
// goroutine; an event loop, reader, accept loop or command loop that ran
// the callback is replaced. The same holds for the codec's methods.
type Handler[F any] interface {
	// OnReady is called once when the connection is established and
	// admitted. Returning an error closes the connection with it.
	OnReady(c mai.Context[F]) error

	// OnFrame is called for each decoded frame, in order. frame may alias
	// the engine's input buffer and is valid until OnFrame returns: copy
	// what you keep (see codec.Codec). Returning an error closes the
	// connection with it, after queued frames are written.
	//
	// With the netpoll transport, netpoll keeps reading a connection while
	// its OnFrame runs (it cannot pause reading: netpoll#422), so a
	// callback that blocks for long lets a flooding peer fill netpoll's
	// buffer beyond mai's bounds until it returns (the connection then
	// fails with mai.ErrInboundLimit if netpoll holds more than 8 times
	// mai.WithMaxInboundBytes, 64 MiB at least); keep callbacks short, or
	// use the std or epoll transport, where a blocked callback stops
	// reading.
	//
	// When the peer ends the connection (EOF, a reset) before this side
	// began a close, the whole frames the engine had read from it are all
	// delivered, also those a pause held back (mai.WithReadPause): they
	// come after the close, before OnClosed, and Send from them returns an
	// error wrapping mai.ErrClosed. Any other error from one of them, or a
	// panic, drops the rest. Bytes the engine never read (beyond
	// mai.WithMaxInboundBytes while paused) are not delivered; nor is any
	// input once this side began a close (Close, Abort, a timeout, a
	// bound, an error).
	//
	// An error wrapping mai.ErrClosed returned once the connection is
	// closing (say, Send's after Close, or after the peer left) is the
	// close's consequence: OnError does not hear of it, and OnClosed gets
	// the close's own cause. So `return c.Send(reply)` is always fine.
	OnFrame(c mai.Context[F], frame F) error

	// OnTimeout is called when a timer of the connection fires: an idle,
	// read, write or handshake timeout, or a timer set with SetTimer.
	// Returning nil keeps the connection open; returning an error closes it
	// with that error. For the built-in timeouts, return t.Err() to close
	// (what Base does) or nil to keep the connection (say after sending a
	// keepalive on idle).
	OnTimeout(c mai.Context[F], t mai.Timeout) error

	// OnError is called once with the error that is about to close the
	// connection: a protocol error (mai.ErrProtocol), an oversized frame
	// (mai.ErrFrameTooLarge), an inbound or outbound bound, an I/O error, a
	// recovered panic (mai.ErrPanic), or an error a callback returned.
	// OnClosed follows. For protocol errors, oversized frames, panics and
	// errors a callback returned, OnError runs before the close starts:
	// frames it sends (a "-ERR Protocol error" reply, say) are written
	// before the connection closes. After I/O errors, bounds and aborts the
	// connection is already closed and Send returns mai.ErrClosed.
	OnError(c mai.Context[F], err error)

	// OnClosed is called exactly once when the connection has closed, also
	// when the engine shuts down. err is nil for a close the application
	// asked for (Close, Shutdown), io.EOF when the peer closed, mai.ErrAborted
	// after Abort, or the error that OnError saw (the peer's end stays the
	// cause when OnError saw an error of a frame delivered after it). After
	// OnClosed, the Context's methods return mai.ErrClosed. The end of the
	// peer's stream closes the connection, also a half close: frames still
	// queued then are dropped.
	OnClosed(c mai.Context[F], err error)
}

// Base is a Handler that does nothing; embed it and override what you need.
// Its OnTimeout returns t.Err(): built-in timeouts close the connection and
// user timers are ignored.
type Base[F any] struct{}

// OnReady does nothing.
func (Base[F]) OnReady(mai.Context[F]) error { return nil }

// OnFrame drops the frame.
func (Base[F]) OnFrame(mai.Context[F], F) error { return nil }

// OnTimeout returns t.Err().
func (Base[F]) OnTimeout(_ mai.Context[F], t mai.Timeout) error { return t.Err() }

// OnError does nothing.
func (Base[F]) OnError(mai.Context[F], error) {}

// OnClosed does nothing.
func (Base[F]) OnClosed(mai.Context[F], error) {}

// Admitter is implemented by a Handler that decides whether to take a
// connection, before OnReady and before the connection gets a Context.
// Return nil to admit; return a *mai.RejectError (see mai.Reject), or any
// error (counted as mai.RejectCustom), to refuse: the connection is closed,
// the rejection is logged and counted per reason, and no other callback runs
// for it. Admit is called for accepted, dialed and managed connections alike
// (info.Origin tells which), concurrently for different connections. A
// panic in Admit refuses the connection with an error wrapping
// mai.ErrPanic; an Admit that ends its goroutine (runtime.Goexit) has the
// connection closed and dropped, and the accept or command loop that
// called it goes on.
type Admitter interface {
	Admit(info mai.ConnInfo) error
}

// Ticker is implemented by a Handler that wants an engine-wide tick every
// mai.WithTickInterval. OnTick runs on an engine goroutine, never
// concurrently with itself; it must not block. A panic in it is recovered
// and logged (mai.WithLogger, level Error, with mai.ErrPanic and the
// stack); the ticks go on.
type Ticker interface {
	OnTick(now time.Time)
}

// ConnTicker is implemented by a Handler that wants a tick on every
// connection every mai.WithTickInterval. OnConnTick is serialized with the
// connection's other callbacks.
type ConnTicker[F any] interface {
	OnConnTick(c mai.Context[F], now time.Time)
}

// WritabilityHandler is implemented by a Handler that wants to know when a
// connection's outbound queue crosses the high water mark (writable false)
// and drains back to the low water mark (writable true). Serialized with the
// connection's other callbacks. The calls alternate, starting with false,
// and a crossing is never swallowed: when the queue drained again before
// the callback could run, false and true come one after the other (several
// such round trips before it runs are told as one). So after
// Send returned ErrBackpressure, OnWritabilityChanged(true) follows once the
// queue drains, unless the connection closes first. When a pause ends
// (mai.WithReadPause), OnWritabilityChanged(true) comes before the
// OnFrame of the frames it held back and of any input after it. Within
// the frames of one input, a change that one OnFrame's Send causes is told
// after the input's last frame (Send's ErrBackpressure tells it at once),
// and frames delivered after the peer's end (see OnFrame) come with no
// change told.
type WritabilityHandler[F any] interface {
	OnWritabilityChanged(c mai.Context[F], writable bool)
}

// EngineTimerHandler is implemented by a Handler that uses the engine-wide
// timers (ProtocolEngine.SetTimer). OnEngineTimer runs on an engine
// goroutine, never concurrently with itself. A panic in it is recovered
// and logged (mai.WithLogger, level Error, with mai.ErrPanic and the
// stack); the other timers still fire.
type EngineTimerHandler interface {
	OnEngineTimer(id mai.TimerID, payload any)
}
