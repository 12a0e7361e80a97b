// Package client is a pipelining Redis (RESP2) client on mai's engine.
//
// A Client owns one mai engine and dials any number of connections with it.
// Commands sent on a Conn are written in order without waiting for replies
// (pipelining); each reply completes the oldest pending call, since Redis
// answers in order. An error reply ("-ERR ...") is returned as a *RedisError;
// when the connection closes, every pending call fails with an error
// matching ErrClosed and wrapping the cause.
//
//	cl, _ := client.New(client.Config{})
//	defer cl.Close()
//	conn, _ := cl.Dial(ctx, "127.0.0.1:6379")
//	_, err := conn.Do(ctx, "SET", "k", "v")
//	v, err := conn.Do(ctx, "GET", "k") // v.Text() == "v"
package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/engine"
	"github.com/mai-go/mai/examples/resp/resp"
	"github.com/mai-go/mai/protocol"
)

// ErrClosed is matched (errors.Is) by the error of every call that could not
// complete because its connection closed; the error also wraps the cause
// (io.EOF when the server closed, for instance).
var ErrClosed = errors.New("resp client: connection closed")

// ErrUnexpectedReply reports a reply that arrived with no call pending; the
// connection is closed, as the stream can no longer be matched to calls.
var ErrUnexpectedReply = errors.New("resp client: reply with no pending call")

// ErrInvalidCommand is the error of a Send whose command is not a non-empty
// array of bulk strings; nothing is sent.
var ErrInvalidCommand = errors.New("resp client: a command is a non-empty array of bulk strings")

func isCommand(v resp.Value) bool {
	if v.Kind != resp.KindArray || v.Null || len(v.Array) == 0 {
		return false
	}
	for _, a := range v.Array {
		if a.Kind != resp.KindBulk || a.Null {
			return false
		}
	}
	return true
}

// RedisError is an error reply from the server, such as "ERR syntax error"
// or "WRONGTYPE Operation against a key holding the wrong kind of value".
// Match it with errors.As.
type RedisError struct {
	Msg string
}

func (e *RedisError) Error() string { return e.Msg }

// Prefix returns the error code: the first word of the message ("ERR",
// "WRONGTYPE", "NOSCRIPT", ...).
func (e *RedisError) Prefix() string {
	p, _, _ := strings.Cut(e.Msg, " ")
	return p
}

// Config configures a Client.
type Config struct {
	// Codec bounds the replies accepted (largest bulk string, array length,
	// nesting, whole reply). Zero fields take the resp package's defaults,
	// except MaxFrameSize: 16 MiB more than MaxBulkLen. The engine takes its
	// frame limit from it.
	Codec resp.Config
	// MaxPendingBytes bounds the encoded size of the commands sent on a
	// connection and not answered yet; Send waits while it is reached (a
	// single larger command is sent when nothing is pending). Default
	// 1 MiB. It keeps the engine's outbound queue under its high water
	// mark, which the client sets above it.
	MaxPendingBytes int
	// Options are passed to the engine after the client's own (the
	// outbound water marks, see MaxPendingBytes).
	Options []mai.Option
}

// DefaultMaxPendingBytes is Config.MaxPendingBytes's default.
const DefaultMaxPendingBytes = 1 << 20

// Client dials connections on one mai engine. It is safe for concurrent use.
type Client struct {
	e          *engine.ProtocolEngine[resp.Value]
	conns      sync.Map // mai.ConnID -> *Conn
	maxPending int
}

// New starts a Client's engine.
func New(cfg Config) (*Client, error) {
	c := &Client{maxPending: cfg.MaxPendingBytes}
	if c.maxPending <= 0 {
		c.maxPending = DefaultMaxPendingBytes
	}
	if cfg.Codec.MaxFrameSize <= 0 {
		// Replies can be far larger than one value (MGET, LRANGE).
		cfg.Codec.MaxFrameSize = max(cfg.Codec.MaxBulkLen, resp.DefaultMaxBulkLen) + 16<<20
	}
	// The outbound queue holds at most the pending commands: at most
	// maxPending bytes, or one larger command. The high water mark is above
	// that, so the engine never refuses a Send (ErrBackpressure) nor pauses
	// the replies (it stops decoding input while a connection is over it).
	high := 2*c.maxPending + 1
	opts := append([]mai.Option{mai.WithWriteBufferWaterMarks(high/2, high)}, cfg.Options...)
	e, err := engine.New(resp.ClientFactory(cfg.Codec), &handler{c: c}, opts...)
	if err != nil {
		return nil, err
	}
	c.e = e
	return c, nil
}

// Close closes every connection (pending calls fail with ErrClosed) and
// stops the engine, waiting up to 10 seconds for it. It must not be called
// from a goroutine the engine runs (it would wait for itself).
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.e.Shutdown(ctx)
}

// Dial connects to a Redis server at addr ("host:port").
func (c *Client) Dial(ctx context.Context, addr string) (*Conn, error) {
	id, err := c.e.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The engine may have run OnReady, or even OnClosed, before Dial
	// returned: whichever side comes first creates the Conn.
	conn := c.conn(id)
	conn.mu.Lock()
	conn.claimed = true
	if conn.closed {
		c.conns.Delete(id)
	}
	conn.mu.Unlock()
	return conn, nil
}

func (c *Client) conn(id mai.ConnID) *Conn {
	if v, ok := c.conns.Load(id); ok {
		return v.(*Conn)
	}
	v, _ := c.conns.LoadOrStore(id, &Conn{c: c, id: id, done: make(chan struct{})})
	return v.(*Conn)
}

// Conn is one connection to a server. It is safe for concurrent use; calls
// made from one goroutine are sent, and answered, in the order made.
type Conn struct {
	c    *Client
	id   mai.ConnID
	done chan struct{} // closed when the connection has closed

	mu           sync.Mutex // guards the fields below, and orders sends with pending
	pending      []*Call    // FIFO of calls sent and not answered
	head         int        // pending[head] is the oldest
	pendingBytes int        // encoded size of the pending commands
	closed       bool
	cause        error
	claimed      bool          // Dial returned it: OnClosed may forget it
	wake         chan struct{} // closed when pendingBytes falls or the connection closes
}

// Call is one command in flight.
type Call struct {
	done chan struct{}
	size int // encoded size of the command
	val  resp.Value
	err  error
}

// Done is closed when the call has completed.
func (k *Call) Done() <-chan struct{} { return k.done }

// Result waits for the reply, or for ctx to end. An error reply is returned
// as a *RedisError (with the reply as the Value); a closed connection as an
// error matching ErrClosed. If ctx ends first, the call stays pending (its
// reply will be discarded) and ctx's error is returned; a call already
// complete returns its reply, whatever ctx.
func (k *Call) Result(ctx context.Context) (resp.Value, error) {
	select {
	case <-k.done:
		return k.val, k.err
	case <-ctx.Done():
	}
	select {
	case <-k.done: // the reply came as well: it wins
		return k.val, k.err
	default:
		return resp.Value{}, ctx.Err()
	}
}

// Send sends a command without waiting for its reply: pipelining. cmd is
// usually resp.Command(args...); it is encoded before Send returns. A cmd
// that is not a non-empty array of bulk strings fails the call with
// ErrInvalidCommand and nothing is sent. While the commands pending on the
// connection reach Config.MaxPendingBytes, Send waits for replies, or for
// ctx to end, which fails the call with ctx's error.
func (c *Conn) Send(ctx context.Context, cmd resp.Value) *Call {
	k := &Call{done: make(chan struct{}), size: resp.EncodedLen(cmd)}
	if !isCommand(cmd) {
		// Anything else gets no reply (an empty command) or several (a
		// bulk string read as inline lines): the FIFO would go out of step.
		k.complete(resp.Value{}, ErrInvalidCommand)
		return k
	}
	c.mu.Lock()
	for !c.closed && c.pendingBytes > 0 && c.pendingBytes+k.size > c.c.maxPending {
		wake := c.wakeChan()
		c.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			k.complete(resp.Value{}, ctx.Err())
			return k
		}
		c.mu.Lock()
	}
	if c.closed {
		err := c.closedErr()
		c.mu.Unlock()
		k.complete(resp.Value{}, err)
		return k
	}
	// Appending and sending under one lock keeps the FIFO in the order the
	// server sees the commands, whatever goroutines send.
	if err := c.c.e.Send(c.id, cmd); err != nil {
		c.mu.Unlock()
		if errors.Is(err, mai.ErrClosed) {
			err = fmt.Errorf("%w: %w", ErrClosed, err)
		}
		k.complete(resp.Value{}, err)
		return k
	}
	c.pending = append(c.pending, k)
	c.pendingBytes += k.size
	c.mu.Unlock()
	return k
}

// wakeChan returns the channel closed when pending bytes fall or the
// connection closes. mu is held.
func (c *Conn) wakeChan() chan struct{} {
	if c.wake == nil {
		c.wake = make(chan struct{})
	}
	return c.wake
}

// wakeSenders releases the Sends waiting for room. mu is held.
func (c *Conn) wakeSenders() {
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
}

// Do sends a command made of args and waits for its reply.
func (c *Conn) Do(ctx context.Context, args ...string) (resp.Value, error) {
	return c.Send(ctx, resp.Command(args...)).Result(ctx)
}

// Pipeline sends every command at once and then waits for all the replies,
// returned in order with their errors.
func (c *Conn) Pipeline(ctx context.Context, cmds ...[]string) ([]resp.Value, []error) {
	calls := make([]*Call, len(cmds))
	for i, args := range cmds {
		calls[i] = c.Send(ctx, resp.Command(args...))
	}
	vals := make([]resp.Value, len(cmds))
	errs := make([]error, len(cmds))
	for i, k := range calls {
		vals[i], errs[i] = k.Result(ctx)
	}
	return vals, errs
}

// Close closes the connection after the commands already sent are written;
// calls still waiting for replies fail with ErrClosed.
func (c *Conn) Close() error { return c.c.e.Close(c.id) }

// Done returns a channel closed when the connection has closed, for any
// reason; Err then tells why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is open, then an error matching
// ErrClosed that wraps the cause of the close (io.EOF when the server
// closed, ErrUnexpectedReply, ...).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		return nil
	}
	return c.closedErr()
}

// Pending returns the number of calls waiting for a reply.
func (c *Conn) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) - c.head
}

func (c *Conn) closedErr() error {
	if c.cause == nil {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrClosed, c.cause)
}

func (k *Call) complete(v resp.Value, err error) {
	k.val, k.err = v, err
	close(k.done)
}

// reply completes the oldest pending call with v, which aliases the
// engine's input: it is cloned first.
func (c *Conn) reply(v resp.Value) error {
	c.mu.Lock()
	if c.head == len(c.pending) {
		c.mu.Unlock()
		return fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	k := c.pending[c.head]
	c.pending[c.head] = nil
	c.head++
	c.pendingBytes -= k.size
	c.wakeSenders()
	if c.head == len(c.pending) {
		c.pending, c.head = c.pending[:0], 0
	} else if c.head >= 1024 && c.head*2 >= len(c.pending) {
		n := copy(c.pending, c.pending[c.head:])
		clear(c.pending[n:])
		c.pending, c.head = c.pending[:n], 0
	}
	c.mu.Unlock()
	v = v.Clone()
	var err error
	if v.Kind == resp.KindError {
		err = &RedisError{Msg: string(v.Str)}
	}
	k.complete(v, err)
	return nil
}

// fail completes every pending call with the connection's end.
func (c *Conn) fail(cause error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed, c.cause = true, cause
	close(c.done)
	calls := c.pending[c.head:]
	c.pending, c.head, c.pendingBytes = nil, 0, 0
	err := c.closedErr()
	c.wakeSenders()
	if c.claimed {
		c.c.conns.Delete(c.id)
	}
	c.mu.Unlock()
	for _, k := range calls {
		k.complete(resp.Value{}, err)
	}
}

// handler routes the engine's events to the Conns.
type handler struct {
	protocol.Base[resp.Value]
	c *Client
}

func (h *handler) OnReady(ctx mai.Context[resp.Value]) error {
	ctx.SetSession(h.c.conn(ctx.ID()))
	return nil
}

func (h *handler) OnFrame(ctx mai.Context[resp.Value], v resp.Value) error {
	return ctx.Session().(*Conn).reply(v)
}

func (h *handler) OnClosed(ctx mai.Context[resp.Value], err error) {
	conn, _ := ctx.Session().(*Conn)
	if conn == nil { // OnReady failed or never ran
		conn = h.c.conn(ctx.ID())
	}
	conn.fail(err)
}
