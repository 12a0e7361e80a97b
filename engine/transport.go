package engine

import (
	"errors"
	"io"
	"net"
	"sync"
)

// transport is the I/O layer under a connection. It delivers input by
// calling conn.input (never concurrently for one connection), and calls
// conn.transportClosed exactly once after the last input.
type transport interface {
	// write writes p and returns how much it wrote. Only the connection's
	// flush loop calls it, so never concurrently. A blocking transport
	// writes all of p or fails; a non-blocking one may return a short count
	// with a nil error when the socket is full, and the flush loop then
	// calls waitWritable (or hands the rest to a goroutine that does).
	write(p []byte) (int, error)
	// waitWritable blocks until the socket can take more bytes, or fails
	// once the connection is closed.
	waitWritable() error
	// close closes the connection now. It is idempotent, safe from any
	// goroutine, and wakes a blocked write.
	close()
}

// stdTransport drives a net.Conn with one reading goroutine.
type stdTransport struct {
	nc        net.Conn
	closeOnce sync.Once
}

func (t *stdTransport) write(p []byte) (int, error) { return t.nc.Write(p) }

func (t *stdTransport) waitWritable() error { return nil }

func (t *stdTransport) close() {
	t.closeOnce.Do(func() { _ = t.nc.Close() })
}

// attachStd starts the reading goroutine of c over nc.
func (e *ProtocolEngine[F]) attachStd(c *conn[F], nc net.Conn) {
	t := &stdTransport{nc: nc}
	c.tr = t
	e.spawn(func() { readLoop(c, t) })
}

// readLoop reads into a pooled buffer and hands what arrives to the
// connection until the connection fails or closes.
func readLoop[F any](c *conn[F], t *stdTransport) {
	buf := c.e.pool.Get()
	var err error
	for {
		var n int
		n, err = t.nc.Read(buf.B[:cap(buf.B)])
		if n > 0 {
			c.input(buf.B[:n])
		}
		if err != nil {
			break
		}
	}
	c.e.pool.Put(buf)
	t.close()
	if errors.Is(err, net.ErrClosed) {
		err = nil // we closed it: the cause is already recorded
	} else if errors.Is(err, io.EOF) {
		err = io.EOF
	}
	c.transportClosed(err)
}

// loopConn is what an event-loop transport needs from a connection; it
// keeps the loop code free of the frame type.
type loopConn interface {
	// setTransport installs the transport; called by attach before the
	// descriptor can produce any event.
	setTransport(t transport)
	// input hands over bytes that arrived (see conn.input).
	input(data []byte)
	// transportClosed reports the end of the connection, exactly once.
	transportClosed(err error)
}

func (c *conn[F]) setTransport(t transport) { c.tr = t }

var _ loopConn = (*conn[[]byte])(nil)
