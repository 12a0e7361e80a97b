package mai

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"syscall"
	"time"
)

// Option configures an engine. Options are applied in order by the engine's
// constructor, which then validates the result as a whole (see Build): an
// invalid value is reported as an error wrapping ErrInvalidOption, never
// silently corrected.
type Option func(*Options)

// Transport selects the I/O layer under the engine.
type Transport uint8

const (
	// TransportAuto uses netpoll where it is supported (linux and the BSDs
	// on 64-bit), and the standard library elsewhere.
	TransportAuto Transport = iota
	// TransportNetpoll uses github.com/cloudwego/netpoll: non-blocking I/O
	// on epoll/kqueue with callbacks on a goroutine pool.
	TransportNetpoll
	// TransportStd uses package net with one reading goroutine per
	// connection.
	TransportStd
	// TransportEpoll (linux only) uses mai's own event loops on epoll:
	// input is read into a buffer shared by each loop, so an idle
	// connection holds no buffer and no goroutine (about 0.5 KiB in all).
	// The engine's own TCP listeners (Listen) accept with accept4 straight
	// into a loop. OnReady, OnFrame and the callbacks the read path runs
	// are called on the connection's loop goroutine: a callback that
	// blocks holds up every connection of its loop. See WithEventLoops.
	TransportEpoll
)

func (t Transport) String() string {
	switch t {
	case TransportNetpoll:
		return "netpoll"
	case TransportStd:
		return "std"
	case TransportEpoll:
		return "epoll"
	default:
		return "auto"
	}
}

// BackpressurePolicy says what Send does when a connection's outbound queue
// is at or over the high water mark.
type BackpressurePolicy uint8

const (
	// BackpressureReject makes Send return ErrBackpressure; the frame is not
	// queued and the connection stays open.
	BackpressureReject BackpressurePolicy = iota
	// BackpressureClose closes the connection with ErrBackpressure (a peer
	// that does not read is dropped).
	BackpressureClose
)

// Options is the engine configuration. Build it with Option functions; the
// zero value is not meaningful, use DefaultOptions.
type Options struct {
	InitialBufferSize     int
	InitialBufferPoolSize int
	MaxBufferPoolSize     int
	MaxPooledBufferSize   int
	MaxPooledBytes        int

	MaxFrameSize    int
	MaxInboundBytes int

	WriteBufferLowWater  int
	WriteBufferHighWater int
	Backpressure         BackpressurePolicy
	NoReadPause          bool

	IdleTimeout      time.Duration
	ReadTimeout      time.Duration
	WriteTimeout     time.Duration
	HandshakeTimeout time.Duration
	CloseLinger      time.Duration
	TimerResolution  time.Duration
	TickInterval     time.Duration

	MaxConns     int
	ConnCapacity int
	Pollers      int
	EventLoops   int

	Transport     Transport
	Logger        *slog.Logger
	ListenControl func(network, address string, c syscall.RawConn) error
}

// Defaults, as documented on each WithX.
const (
	DefaultInitialBufferSize     = 4 << 10
	DefaultInitialBufferPoolSize = 16
	DefaultMaxBufferPoolSize     = 1024
	DefaultMaxPooledBufferSize   = 2 << 20
	DefaultMaxPooledBytes        = 4 << 20
	DefaultMaxFrameSize          = 1 << 20 // when neither WithMaxFrameSize nor the codec sets one
	DefaultWriteBufferLowWater   = 512 << 10
	DefaultWriteBufferHighWater  = 1 << 20
	DefaultWriteTimeout          = 30 * time.Second
	DefaultCloseLinger           = 2 * time.Second
	DefaultTimerResolution       = 10 * time.Millisecond

	// MaxInboundLimit is the largest MaxInboundBytes, and so the largest
	// MaxFrameSize, an engine accepts: 1 GiB. It keeps a connection's
	// input offsets in 32 bits (a smaller connection); a single frame over
	// it is better streamed than buffered.
	MaxInboundLimit = 1 << 30

	// MaxCountLimit is the largest count an engine accepts for what it
	// allocates up front or keeps by number (ConnCapacity,
	// MaxBufferPoolSize, Pollers, EventLoops): 1<<20, so that a mistyped
	// value is an error from the constructor rather than a slice that
	// cannot be made. It does not bound memory by itself: the pool's
	// up-front allocation is InitialBufferPoolSize buffers of
	// InitialBufferSize bytes, as given.
	MaxCountLimit = 1 << 20
)

// DefaultOptions returns the configuration used when no Option is given.
func DefaultOptions() Options {
	return Options{
		InitialBufferSize:     DefaultInitialBufferSize,
		InitialBufferPoolSize: DefaultInitialBufferPoolSize,
		MaxBufferPoolSize:     DefaultMaxBufferPoolSize,
		WriteBufferLowWater:   DefaultWriteBufferLowWater,
		WriteBufferHighWater:  DefaultWriteBufferHighWater,
		WriteTimeout:          DefaultWriteTimeout,
		CloseLinger:           DefaultCloseLinger,
		TimerResolution:       DefaultTimerResolution,
	}
}

// Build applies opts over DefaultOptions and validates the result, as the
// engine's constructor does. MaxFrameSize left at 0 means "from the codec"
// and is settled by Resolve, which the engine calls with its codec's limit;
// Build resolves it without a codec (to DefaultMaxFrameSize). Fields derived
// from others (MaxInboundBytes, MaxPooledBufferSize) are filled in when left
// zero.
func Build(opts ...Option) (Options, error) {
	o, err := Apply(opts...)
	if err != nil {
		return o, err
	}
	return o.Resolve(0)
}

// Apply applies opts over DefaultOptions without settling MaxFrameSize. It
// rejects a nil Option.
func Apply(opts ...Option) (Options, error) {
	o := DefaultOptions()
	for _, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: nil Option", ErrInvalidOption)
		}
		opt(&o)
	}
	return o, nil
}

// Resolve settles the derived fields and validates the configuration.
// codecMaxFrame is the codec's own largest encoded frame (codec.MaxSizer),
// or 0 if unknown: it becomes MaxFrameSize when WithMaxFrameSize was not
// given, so the engine's limit and the codec's never disagree (a codec
// limit over MaxInboundLimit, such as an "unlimited" one, is lowered to
// it: no frame larger can be buffered); without either, MaxFrameSize is
// DefaultMaxFrameSize.
func (o Options) Resolve(codecMaxFrame int) (Options, error) {
	if o.MaxFrameSize == 0 {
		o.MaxFrameSize = DefaultMaxFrameSize
		if codecMaxFrame > 0 {
			o.MaxFrameSize = min(codecMaxFrame, MaxInboundLimit)
		}
	}
	if o.MaxInboundBytes == 0 && o.MaxFrameSize > 0 {
		o.MaxInboundBytes = min(o.MaxFrameSize+64<<10, MaxInboundLimit)
	}
	if o.MaxPooledBufferSize == 0 {
		o.MaxPooledBufferSize = max(DefaultMaxPooledBufferSize, o.InitialBufferSize)
	}
	if o.MaxPooledBytes == 0 {
		o.MaxPooledBytes = max(DefaultMaxPooledBytes, o.InitialBufferSize*o.InitialBufferPoolSize)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o, o.validate()
}

func (o *Options) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidOption, fmt.Sprintf(format, args...))
	}
	switch {
	case o.InitialBufferSize <= 0:
		return bad("InitialBufferSize %d must be positive", o.InitialBufferSize)
	case o.InitialBufferSize > MaxInboundLimit:
		return bad("InitialBufferSize %d is over MaxInboundLimit %d", o.InitialBufferSize, MaxInboundLimit)
	case o.MaxBufferPoolSize > MaxCountLimit:
		return bad("MaxBufferPoolSize %d is over MaxCountLimit %d", o.MaxBufferPoolSize, MaxCountLimit)
	case o.InitialBufferPoolSize > 0 && o.InitialBufferSize > math.MaxInt/o.InitialBufferPoolSize:
		return bad("InitialBufferPoolSize %d buffers of InitialBufferSize %d bytes overflow an int", o.InitialBufferPoolSize, o.InitialBufferSize)
	case o.InitialBufferPoolSize < 0:
		return bad("InitialBufferPoolSize %d must not be negative", o.InitialBufferPoolSize)
	case o.MaxBufferPoolSize < 0:
		return bad("MaxBufferPoolSize %d must not be negative", o.MaxBufferPoolSize)
	case o.InitialBufferPoolSize > o.MaxBufferPoolSize:
		return bad("InitialBufferPoolSize %d is over MaxBufferPoolSize %d", o.InitialBufferPoolSize, o.MaxBufferPoolSize)
	case o.MaxPooledBytes < 0:
		return bad("MaxPooledBytes %d must not be negative", o.MaxPooledBytes)
	case o.MaxPooledBufferSize < o.InitialBufferSize:
		return bad("MaxPooledBufferSize %d is under InitialBufferSize %d", o.MaxPooledBufferSize, o.InitialBufferSize)
	case o.MaxFrameSize <= 0:
		return bad("MaxFrameSize %d must be positive", o.MaxFrameSize)
	case o.MaxFrameSize > MaxInboundLimit:
		return bad("MaxFrameSize %d is over MaxInboundLimit %d", o.MaxFrameSize, MaxInboundLimit)
	case o.MaxInboundBytes > MaxInboundLimit:
		return bad("MaxInboundBytes %d is over MaxInboundLimit %d", o.MaxInboundBytes, MaxInboundLimit)
	case o.MaxInboundBytes < o.MaxFrameSize:
		return bad("MaxInboundBytes %d is under MaxFrameSize %d: a largest frame could never be buffered", o.MaxInboundBytes, o.MaxFrameSize)
	case o.WriteBufferHighWater <= 0:
		return bad("WriteBufferHighWater %d must be positive", o.WriteBufferHighWater)
	case o.WriteBufferLowWater < 0 || o.WriteBufferLowWater > o.WriteBufferHighWater:
		return bad("WriteBufferLowWater %d must be in [0, WriteBufferHighWater %d]", o.WriteBufferLowWater, o.WriteBufferHighWater)
	case o.Backpressure > BackpressureClose:
		return bad("unknown BackpressurePolicy %d", o.Backpressure)
	case o.IdleTimeout < 0, o.ReadTimeout < 0, o.WriteTimeout < 0, o.HandshakeTimeout < 0, o.TickInterval < 0, o.CloseLinger < 0:
		return bad("timeouts and intervals must not be negative")
	case o.TimerResolution < time.Millisecond:
		return bad("TimerResolution %v must be at least 1ms", o.TimerResolution)
	case o.TickInterval > 0 && o.TickInterval < o.TimerResolution:
		return bad("TickInterval %v is under TimerResolution %v", o.TickInterval, o.TimerResolution)
	case o.MaxConns < 0:
		return bad("MaxConns %d must not be negative", o.MaxConns)
	case o.Pollers < 0 || o.Pollers > MaxCountLimit:
		return bad("Pollers %d must be in [0, MaxCountLimit %d]", o.Pollers, MaxCountLimit)
	case o.ConnCapacity < 0 || o.ConnCapacity > MaxCountLimit:
		return bad("ConnCapacity %d must be in [0, MaxCountLimit %d]", o.ConnCapacity, MaxCountLimit)
	case o.EventLoops < 0 || o.EventLoops > MaxCountLimit:
		return bad("EventLoops %d must be in [0, MaxCountLimit %d]", o.EventLoops, MaxCountLimit)
	case o.Transport > TransportEpoll:
		return bad("unknown Transport %d", o.Transport)
	}
	return nil
}

// WithInitialBufferSize sets the capacity of a freshly allocated pooled
// buffer (partial inbound frames, encoded outbound frames). Default 4 KiB;
// at most MaxInboundLimit. Servers and clients.
func WithInitialBufferSize(n int) Option { return func(o *Options) { o.InitialBufferSize = n } }

// WithInitialBufferPoolSize sets how many buffers are allocated when the
// engine starts. Default 16. Must not exceed WithMaxBufferPoolSize. Servers
// and clients.
func WithInitialBufferPoolSize(n int) Option {
	return func(o *Options) { o.InitialBufferPoolSize = n }
}

// WithMaxBufferPoolSize sets the most idle buffers the pool keeps; buffers
// returned beyond it are left to the garbage collector. Default 1024; at
// most MaxCountLimit. Servers and clients.
func WithMaxBufferPoolSize(n int) Option { return func(o *Options) { o.MaxBufferPoolSize = n } }

// WithMaxPooledBufferSize sets the largest buffer capacity the pool keeps; a
// buffer that grew beyond it (for one large frame) is dropped on return.
// Default 2 MiB (at least the initial buffer size): above the default high
// water mark plus a frame, so that a full outbound queue's buffer is kept.
// A queue that outgrows it is grown again from a small buffer at its next
// fill: with a 1 MiB limit, refilling a queue of 17 frames of 64 KiB
// allocated 5.2 MB and took 1.2-1.8 ms against 24-25 us
// (BenchmarkQueueFill in package engine). Servers and clients.
func WithMaxPooledBufferSize(n int) Option { return func(o *Options) { o.MaxPooledBufferSize = n } }

// WithMaxPooledBytes bounds the total capacity of the pool's idle buffers,
// so buffers that grew for large frames are reused without the pool ever
// holding more than n bytes. Default 4 MiB (at least the initial pool).
// Servers and clients.
func WithMaxPooledBytes(n int) Option { return func(o *Options) { o.MaxPooledBytes = n } }

// WithMaxFrameSize sets the largest frame, in encoded bytes (header and
// delimiter included), the engine takes from a connection: a frame over it,
// whole or still partial, closes the connection with ErrFrameTooLarge,
// however it arrived. Default:
// the codec's own limit when it implements codec.MaxSizer (every built-in
// codec does, so their MaxLength is the one number to set), else 1 MiB.
// At most MaxInboundLimit (1 GiB): a larger WithMaxFrameSize is rejected,
// a larger codec limit is lowered to it. Servers and clients.
func WithMaxFrameSize(n int) Option { return func(o *Options) { o.MaxFrameSize = n } }

// WithMaxInboundBytes bounds the input a connection may hold un-decoded or
// un-handled (a partial frame plus input that arrived while decoding was
// paused by backpressure). On the std and epoll transports the connection
// stops reading when it holds that much (see WithReadPause); on netpoll,
// which cannot stop reading, it closes with ErrInboundLimit when it would
// hold more, when netpoll holds more than this unread by it while the
// connection's replies back up (also with the pause off), and when netpoll
// holds more than 8 times this, and at least 64 MiB, however the replies
// go (a handler slower than its peer, or a callback that blocks while the
// peer sends).
// Default MaxFrameSize + 64 KiB (at most
// MaxInboundLimit); must be at least MaxFrameSize and at most
// MaxInboundLimit (1 GiB). With frames within 64 KiB of the limit the
// default leaves less than 64 KiB of room beyond a largest frame, for input
// that arrives behind it while decoding is paused. Servers and clients.
func WithMaxInboundBytes(n int) Option { return func(o *Options) { o.MaxInboundBytes = n } }

// WithWriteBufferWaterMarks sets the outbound queue's low and high water
// marks in bytes. At or over high the connection is not writable: Send
// applies the backpressure policy and the engine stops decoding the
// connection's input; it becomes writable again when the queue drains to low.
// Defaults 512 KiB and 1 MiB. The high mark should be above what a
// pipelining peer keeps in flight, since one read event can carry all of
// it and the replies to one read are queued together; under that, most
// bursts pause the connection, and resuming it costs a copy of the input
// held meanwhile and a hand-off to another goroutine. In bench/ scenario
// s4 (64 KiB frames, 512 KiB in flight per connection) a 256 KiB high mark
// cost 6-10% more server CPU per frame, and Netty's 32/64 KiB paused at
// every reply. The price is memory: a connection whose peer does not read
// can hold the high mark plus one frame of output, so a server with many
// connections may want lower marks; a high mark over
// WithMaxPooledBufferSize (default 2 MiB) also wants that raised, or a
// full queue's buffer is not kept for the next fill.
// 0 <= low <= high, high > 0. Servers and clients.
func WithWriteBufferWaterMarks(low, high int) Option {
	return func(o *Options) { o.WriteBufferLowWater, o.WriteBufferHighWater = low, high }
}

// WithReadPause sets whether a connection's input stops being decoded while
// its outbound queue is over the high water mark. Default true: a peer that
// does not read its replies cannot make an echo-style handler queue without
// bound. While paused, the connection reads ahead until the input it holds
// fills WithMaxInboundBytes, and then, on the std and epoll transports,
// stops reading until the queue drains to the low mark: TCP slows the peer
// down, and a peer that pipelines far ahead of the replies it reads is
// served at the pace it reads them. A peer that never reads is closed by
// WithWriteTimeout. netpoll cannot stop reading (netpoll#422): there a
// peer that goes on sending fills the bound and is closed with
// ErrInboundLimit. When the peer ends the connection (EOF, a reset) while
// paused, the whole frames held are still delivered to OnFrame before
// OnClosed; when the application or the engine ends it (Close, a timeout,
// a bound), they are dropped.
//
// Turn it off in clients whose input is the replies that drain their own
// pipeline: two peers that both stop reading while their queues are full
// wait for each other until the write timeout closes them. Servers and
// clients.
func WithReadPause(on bool) Option { return func(o *Options) { o.NoReadPause = !on } }

// WithBackpressure sets what Send does over the high water mark. Default
// BackpressureReject. Servers and clients.
func WithBackpressure(p BackpressurePolicy) Option { return func(o *Options) { o.Backpressure = p } }

// WithIdleTimeout closes a connection (after OnTimeout, which may keep it)
// when no complete frame was received or sent for d. Default 0: off. Servers
// and clients.
func WithIdleTimeout(d time.Duration) Option { return func(o *Options) { o.IdleTimeout = d } }

// WithReadTimeout closes a connection (after OnTimeout) when a frame started
// arriving and was not complete within d: the slowloris defence. Default 0:
// off. Servers and clients.
func WithReadTimeout(d time.Duration) Option { return func(o *Options) { o.ReadTimeout = d } }

// WithWriteTimeout closes a connection (after OnTimeout) when queued bytes
// could not all be written within d. Default 30 s; 0 turns it off. It is
// what closes a peer that stops reading: with it off, on the std and epoll
// transports such a peer keeps its connection, and what it holds (the
// high water mark of output, WithMaxInboundBytes of input, and on std a
// goroutine), until it goes away or WithIdleTimeout closes it. Servers
// and clients.
func WithWriteTimeout(d time.Duration) Option { return func(o *Options) { o.WriteTimeout = d } }

// WithCloseLinger bounds how long an orderly close keeps reading and
// dropping a peer's input after the last write, when closing at once could
// lose replies: the peer has not acknowledged all of them yet, or it was
// still sending as the connection closed (its input was waiting, arrived
// while the queue was written, or the connection was paused). Closing a
// socket that holds unread input, or receives more, makes the kernel
// answer with a reset that drops what it had not yet delivered of the last
// writes, and the peer would miss the replies Close promised. Lingering,
// the engine shuts the sending side (the peer reads every reply, then the
// end of the stream) and waits for the peer to end its side, an error, or
// d. A peer that sends again after it has every reply may still meet a
// reset where it expected the end of the stream, and one that neither
// reads nor closes is reset after d. OnClosed
// does not wait for it; the engine's stop does (Shutdown, Wait), unless
// Shutdown's ctx ends first. Orderly closes are Close, Shutdown, and the
// engine's closes after an error or a timeout (OnError, OnTimeout); Abort
// and the closes that drop the queue (the write timeout,
// BackpressureClose, ErrInboundLimit, an expired Shutdown) do not linger.
// Linux only. Default 2 s; 0 turns it off. Servers and clients.
func WithCloseLinger(d time.Duration) Option { return func(o *Options) { o.CloseLinger = d } }

// WithHandshakeTimeout closes a connection (after OnTimeout) that has not
// received its first complete frame within d of being ready. Default 0: off.
// Servers and clients.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(o *Options) { o.HandshakeTimeout = d }
}

// WithTimerResolution sets the tick of the engine's timer wheel: timeouts and
// timers fire up to one tick late, never early. Default 10 ms; at least 1 ms.
// Servers and clients.
func WithTimerResolution(d time.Duration) Option { return func(o *Options) { o.TimerResolution = d } }

// WithTickInterval makes the engine call a Handler that implements
// protocol.Ticker every d. Default 0: off. Servers and clients.
func WithTickInterval(d time.Duration) Option { return func(o *Options) { o.TickInterval = d } }

// WithMaxConns rejects connections beyond n live ones (with RejectLimit),
// before the handler's admission check. Default 0: no limit. Servers and
// clients (Dial and Manage count too).
func WithMaxConns(n int) Option { return func(o *Options) { o.MaxConns = n } }

// WithConnCapacity pre-allocates the connection table for n connections.
// Default 0: it grows on demand (beyond n too). At most MaxCountLimit.
// Servers and clients.
func WithConnCapacity(n int) Option { return func(o *Options) { o.ConnCapacity = n } }

// WithTransport selects the I/O layer. Default TransportAuto. Servers and
// clients.
func WithTransport(t Transport) Option { return func(o *Options) { o.Transport = t } }

// WithLogger sets the logger for engine events (connection errors,
// rejections, recovered panics). Default: a logger that discards everything.
// Servers and clients.
func WithLogger(l *slog.Logger) Option { return func(o *Options) { o.Logger = l } }

// WithListenControl sets a function run on each listening socket the engine
// creates (Listen, ListenNamed) after it is created and before it is bound,
// as net.ListenConfig.Control: the place for SO_REUSEPORT, buffer sizes and
// other socket options. Default nil. Servers.
func WithListenControl(fn func(network, address string, c syscall.RawConn) error) Option {
	return func(o *Options) { o.ListenControl = fn }
}

// WithPollers sets the number of netpoll pollers (epoll/kqueue loops) by
// calling netpoll.SetNumLoops(n) when the engine is created. This is a
// process-wide setting shared with every other netpoll user in the process,
// which is why mai never changes it unless asked. Default 0: netpoll's own
// configuration is left as it is (one poller per 20 CPUs, at least one).
// At most MaxCountLimit.
// How netpoll runs callbacks (its goroutine pool, or a goroutine per event
// with netpoll.DisableGopool) is likewise left to the application. Do not
// give netpoll a Runner that calls the callback inline on the poller: with
// netpoll v0.7.5 a connection closed during its callback then makes the
// poller wait for itself, and every connection on it stops. Servers and
// clients on the netpoll transport.
func WithPollers(n int) Option { return func(o *Options) { o.Pollers = n } }

// WithEventLoops sets the number of event loops of the epoll transport.
// Default 0: one per GOMAXPROCS. At most MaxCountLimit. Servers and clients
// on TransportEpoll.
func WithEventLoops(n int) Option { return func(o *Options) { o.EventLoops = n } }
