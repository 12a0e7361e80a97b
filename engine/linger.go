package engine

import (
	"net"
	"os"
	"time"
)

// Lingering after an orderly close. Close and Shutdown write everything
// queued and then close the socket. Closing a socket that holds input the
// application has not read, or that receives input afterwards, makes the
// kernel answer with a reset and drop what it had not yet delivered of the
// last writes: a peer that was still sending when the server closed would
// lose the replies Close promised to write. So when closing at once could
// lose replies (the peer has not acknowledged them all, or it is still
// sending), the engine shuts the socket's sending side (the
// peer reads every reply, then the end of the stream), keeps a duplicate
// of its descriptor, and reads and drops what still arrives until the peer
// ends its side, an error, or WithCloseLinger's bound. The connection
// itself closes as before: OnClosed does not wait for the linger; the
// engine's stop does (Shutdown, Wait), unless Shutdown's ctx ends first.

// lingerer is a transport that can hand over a duplicate of its socket for
// the linger.
type lingerer interface {
	// lingerDup returns a duplicate of the socket's descriptor when
	// sending is true, lingerDue holds, or input the transport read ahead
	// is waiting, and ok false otherwise or when it cannot.
	lingerDup(sending bool) (fd int, ok bool)
}

// lingerDue reports whether closing fd's socket now could reset it and
// lose what was written: input waits unread, or output is not yet
// acknowledged by the peer (input that arrives after the close would
// reset the socket and drop it). With every byte acknowledged, a reset
// loses no reply: the peer may see it instead of the end of the stream,
// after the last reply.
func lingerDue(fd int) bool { return sockUnread(fd) > 0 || sockUnsent(fd) > 0 }

// closeOrderly closes the transport at the end of an orderly close, when
// everything queued has been written, lingering first if closing could
// lose replies: the peer has not acknowledged them all, or it may still be
// sending (its input is waiting, or it arrived while the queue
// was written (a closing connection reads on, and drops it, so the
// kernel may hold none at this moment with more on the way), or the
// connection was paused when the close began (the peer was ahead of the
// replies). outMu is not held; the connection is not closed yet, so the
// linger goroutine is counted before the engine's stop can wait.
func (c *conn[F]) closeOrderly() {
	if c.e.opts.CloseLinger > 0 {
		if l, ok := c.tr.(lingerer); ok {
			if fd, ok := l.lingerDup(c.hasFlag(flPeerSending)); ok {
				c.e.linger(fd)
			}
		}
	}
	c.tr.close()
}

// linger takes fd, a duplicate of a connection's socket, shuts its sending
// side and reads and drops its input until the peer ends, an error, the
// bound, or an expired Shutdown.
func (e *ProtocolEngine[F]) linger(fd int) {
	f := os.NewFile(uintptr(fd), "mai-linger")
	nc, err := net.FileConn(f) // its own duplicate, in the runtime's poller
	_ = f.Close()
	if err != nil {
		return
	}
	if cw, ok := nc.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
		_ = nc.Close()
		return
	}
	now := time.Now()
	if end := now.Add(e.opts.CloseLinger); end.After(now) { // else "for ever"
		_ = nc.SetReadDeadline(end)
	}
	// A linger is counted (lingering) so that the engine's stop waits for
	// it (allDone), and its goroutine is counted while it is, before that
	// stop can wait for the engine's goroutines; WithMaxConns does not count
	// it. The connection it comes from may have finished already (the peer
	// reset it meanwhile): if that was the last one of a shutdown, the stop
	// has begun, and there is no linger. Nor is there once Shutdown's ctx
	// ended (aborting, set before cutLingering takes lifeMu).
	e.lifeMu.Lock()
	if e.stoppingLocked() || e.aborting.Load() {
		e.lifeMu.Unlock()
		_ = nc.Close()
		return
	}
	if e.lingering == nil {
		e.lingering = make(map[net.Conn]struct{})
	}
	e.lingering[nc] = struct{}{}
	e.lifeMu.Unlock()
	e.spawn(func() {
		var buf [4 << 10]byte
		for {
			if _, err := nc.Read(buf[:]); err != nil {
				break
			}
		}
		_ = nc.Close()
		e.lifeMu.Lock()
		delete(e.lingering, nc)
		e.allDoneLocked()
		e.lifeMu.Unlock()
	})
}

// cutLingering ends every linger now: Shutdown's ctx ended (aborting is
// set, so none starts after).
func (e *ProtocolEngine[F]) cutLingering() {
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	now := time.Now()
	for nc := range e.lingering {
		_ = nc.SetReadDeadline(now)
	}
}
