package mai

import (
	"context"
	"net"
	"strconv"
	"time"
)

// ConnID identifies one connection of an engine. It combines a slot in the
// engine's connection table with a generation that changes each time the slot
// is reused, so an ID kept after its connection closed never reaches a newer
// connection: operations on it fail with ErrClosed. The zero ConnID is never
// assigned.
type ConnID uint64

// NewConnID returns the ID for a slot and generation.
func NewConnID(slot, generation uint32) ConnID {
	return ConnID(uint64(generation)<<32 | uint64(slot))
}

// Slot returns the slot part of the ID.
func (id ConnID) Slot() uint32 { return uint32(id) }

// Generation returns the generation part of the ID.
func (id ConnID) Generation() uint32 { return uint32(id >> 32) }

// String formats the ID as "conn-SLOT.GEN".
func (id ConnID) String() string {
	return "conn-" + strconv.FormatUint(uint64(id.Slot()), 10) + "." + strconv.FormatUint(uint64(id.Generation()), 10)
}

// TimerID identifies a timer set with Context.SetTimer or the engine's
// SetTimer. The zero TimerID is never assigned.
type TimerID uint64

// TimeoutKind says which timer expired.
type TimeoutKind uint8

const (
	// TimeoutTimer is a timer the user set, with its payload.
	TimeoutTimer TimeoutKind = iota
	// TimeoutIdle: no complete frame in either direction for the idle timeout.
	TimeoutIdle
	// TimeoutRead: a frame started arriving and did not finish in time.
	TimeoutRead
	// TimeoutWrite: queued bytes could not be written in time.
	TimeoutWrite
	// TimeoutHandshake: connected, but no first frame in time.
	TimeoutHandshake
)

func (k TimeoutKind) String() string {
	switch k {
	case TimeoutIdle:
		return "idle"
	case TimeoutRead:
		return "read"
	case TimeoutWrite:
		return "write"
	case TimeoutHandshake:
		return "handshake"
	default:
		return "timer"
	}
}

// Timeout is what OnTimeout receives.
type Timeout struct {
	Kind    TimeoutKind
	Timer   TimerID // the timer that fired, for TimeoutTimer
	Payload any     // the payload given to SetTimer, for TimeoutTimer
}

// Err returns the error that closes the connection when the handler does not
// keep it open: a *TimeoutError for idle, read, write and handshake
// timeouts, and nil for user timers. A handler's OnTimeout typically ends with
// "return t.Err()".
func (t Timeout) Err() error {
	switch t.Kind {
	case TimeoutIdle:
		return ErrIdleTimeout
	case TimeoutRead:
		return ErrReadTimeout
	case TimeoutWrite:
		return ErrWriteTimeout
	case TimeoutHandshake:
		return ErrHandshakeTimeout
	default:
		return nil
	}
}

// Origin says how a connection came to the engine.
type Origin uint8

const (
	// OriginAccepted: accepted by one of the engine's listeners.
	OriginAccepted Origin = iota
	// OriginDialed: dialed by the engine's Dial.
	OriginDialed
	// OriginManaged: handed to the engine with Manage.
	OriginManaged
)

func (o Origin) String() string {
	switch o {
	case OriginDialed:
		return "dialed"
	case OriginManaged:
		return "managed"
	default:
		return "accepted"
	}
}

// ConnInfo describes a connection. Counters are a snapshot.
type ConnInfo struct {
	ID         ConnID
	Origin     Origin
	Listener   string // name of the listener that accepted it; "" otherwise
	LocalAddr  net.Addr
	RemoteAddr net.Addr
	Since      time.Time // when the engine took the connection
	BytesIn    uint64
	BytesOut   uint64
	FramesIn   uint64
	FramesOut  uint64
	Queued     int  // outbound bytes queued and not yet written
	Writable   bool // Queued is under the high water mark
}

// Context is the handle a Handler callback gets for its connection.
//
// A Context stays usable after the callback returns: a handler may keep it
// and call Send from another goroutine. Once the connection has closed, its
// methods return ErrClosed (or do nothing) and never affect another
// connection. Unless a method says otherwise it is safe for concurrent use.
//
// Context is an interface so that a Handler can be unit-tested with a fake
// (see the protocol/prototest package).
type Context[F any] interface {
	// ID returns the connection's ID.
	ID() ConnID

	// Send encodes frame and queues it for writing; it does not wait for the
	// write. Frames sent from one goroutine are written in the order sent.
	// Send never blocks on the network. It returns ErrClosed once the
	// connection is closing, ErrBackpressure when the outbound queue is over
	// its high water mark (with BackpressureReject), or an error wrapping
	// ErrEncode. The frame is not used after Send returns.
	//
	// Large frames of the built-in codec.LengthField and codec.Raw skip the
	// copy into the queue: when nothing is queued and the payload is at
	// least 256 KiB, Send writes the header and the payload itself with one
	// non-blocking vectored write, and copies only what the socket did not
	// take. A codec that embeds one of them does not get this: its Encode
	// is always called.
	Send(frame F) error

	// Close writes what is queued, then closes the connection. It does not
	// wait. Frames sent after Close fail with ErrClosed. If the peer is
	// still sending, the socket lingers after the last write, so that the
	// peer gets every reply (see WithCloseLinger).
	Close() error

	// Abort closes the connection now, dropping queued frames. OnClosed sees
	// ErrAborted.
	Abort() error

	// LocalAddr and RemoteAddr return the connection's addresses; they
	// stay available after the connection closed. The engine keeps them in
	// a compact form and may return a new net.Addr on each call: keep the
	// value if a callback needs it often.
	LocalAddr() net.Addr
	RemoteAddr() net.Addr

	// Listener returns the name of the listener that accepted the
	// connection, or "" for dialed and managed connections.
	Listener() string

	// Session returns the value stored with SetSession (nil at first).
	Session() any
	// SetSession stores a per-connection value for the handler.
	SetSession(v any)

	// SetTimer arranges for OnTimeout to receive a Timeout of kind
	// TimeoutTimer with payload after d. Timers are cancelled when the
	// connection closes. The resolution is the engine's timer tick.
	SetTimer(d time.Duration, payload any) (TimerID, error)
	// CancelTimer cancels a timer of this connection; it reports whether
	// the timer was still pending.
	CancelTimer(id TimerID) bool

	// Context returns a context.Context cancelled when the connection
	// closes.
	Context() context.Context

	// Writable reports whether queued outbound bytes are under the high
	// water mark.
	Writable() bool

	// Info returns a snapshot of the connection's description and counters.
	Info() ConnInfo
}
