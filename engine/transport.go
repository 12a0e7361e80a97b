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
	// write writes all of p, blocking until done or failed. Only the
	// connection's flush loop calls it, so never concurrently.
	write(p []byte) error
	// close closes the connection now. It is idempotent, safe from any
	// goroutine, and wakes a blocked write.
	close()
}

// stdTransport drives a net.Conn with one reading goroutine.
type stdTransport struct {
	nc        net.Conn
	closeOnce sync.Once
}

func (t *stdTransport) write(p []byte) error {
	_, err := t.nc.Write(p)
	return err
}

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
