package engine

import (
	"fmt"
	"unsafe"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/bufpool"
)

// Send implements mai.Context. The frame is encoded at once into the
// connection's pooled outbound buffer, under outMu (so concurrent senders'
// frames never interleave and each sender's frames keep their order). The
// bytes are written by a single flusher per connection: the runner, when the
// Send came from a callback (one write per batch of callbacks), or a
// goroutine the Send starts otherwise. The exception is a large payload of
// a built-in codec with nothing queued: Send writes it at once, as the
// flusher (sendDirect).
func (c *conn[F]) Send(frame F) (err error) {
	// The rare outcomes are in helpers of their own, kept out of line so
	// that Send's frame stays small: it runs deep in the read path's stack.
	c.outMu.Lock()
	if c.state != stateOpen {
		c.outMu.Unlock()
		return c.sendClosed()
	}
	high := c.e.opts.WriteBufferHighWater
	queued := c.queuedLocked()
	if queued >= high {
		c.outMu.Unlock()
		return c.sendRefused(queued)
	}
	if c.out == nil {
		c.out = c.e.pool.Get()
	}
	before := len(c.out.B)
	// A panic in the codec's Encode becomes an error wrapping ErrPanic and
	// ErrEncode, and the queue is left as it was (outMu is let go), as it
	// is when Encode ends the goroutine. The deferred check costs a test
	// of encoded when Encode returned, not a recover.
	encoded := false
	defer func() {
		if !encoded {
			err = c.encodeFailed(before, c.encodePanicked(recover()))
		}
	}()
	var b []byte
	if c.caps&capDirect != 0 && before == 0 && !c.flushing && directLen(&frame) >= directWriteMin {
		// Nothing is queued: a large payload can go out without a copy.
		var payload []byte
		b, payload, err = c.codec.(headerEncoder[F]).EncodeHeader(c.out.B, frame)
		encoded = true
		if err != nil {
			return c.encodeFailed(before, err)
		}
		if len(payload) >= directWriteMin {
			c.out.B = b
			c.sendDirect(payload)
			return nil
		}
		b = append(b, payload...)
	} else {
		b, err = c.codec.Encode(c.out.B, frame)
		encoded = true
		if err != nil {
			return c.encodeFailed(before, err)
		}
	}
	c.out.B = b
	c.framesOut++
	queued = c.queuedLocked()
	startFlush := false
	if !c.flushing && (!c.hasFlag(flRunning) || queued >= high) {
		c.flushing, startFlush = true, true
	}
	crossed := c.crossedHighLocked(queued)
	if startFlush {
		c.e.wg.Add(1) // under outMu: see goFlush
	}
	c.outMu.Unlock()
	if crossed && c.e.writability != nil {
		c.postWritability()
	}
	if startFlush {
		c.e.goFlush(c)
	}
	return nil
}

// crossedHighLocked reports whether queued bytes just reached the high
// water mark, and if so marks the connection unwritable (and pauses its
// reading, unless NoReadPause). outMu is held.
func (c *conn[F]) crossedHighLocked(queued int) bool {
	if !c.writable || queued < c.e.opts.WriteBufferHighWater {
		return false
	}
	c.writable = false
	c.setFlag(flDipped)
	if !c.e.opts.NoReadPause {
		c.setFlag(flPaused)
	}
	return true
}

// directLen returns the length of a frame of a connection with capDirect:
// its codec is a codec.LengthField or a codec.Raw (directCodec), which
// implement codec.Codec[[]byte] only, so F is []byte.
func directLen[F any](frame *F) int { return len(*(*[]byte)(unsafe.Pointer(frame))) }

// directWriteMin is the smallest payload Send writes straight from the
// frame (see sendDirect). A frame this large has a read event to itself,
// so the queue would write it alone anyway: the direct write only saves
// the copy (at 256 KiB: server CPU 140 -> 111 us per frame). Smaller
// frames are better copied: at 64 KiB, two or three of them share one
// write from the queue, and writing each alone cost more kernel time than
// the copy saved (27.8 against 25.9 us per frame). The figures and their
// command are in the README's table of costs.
const directWriteMin = 256 << 10

// sendDirect writes a frame, whose header Send encoded into c.out, and its
// payload with one vectored write before Send returns, so the payload is
// not copied when the socket takes it at once. outMu is held, c.out holds
// only the header and no flusher runs: Send's goroutine is the flusher for
// this write, as the runner is for an inline flush. Only what the socket
// does not take is copied, for a flusher goroutine, since the payload is
// the caller's again once Send returns. It returns with outMu released.
func (c *conn[F]) sendDirect(payload []byte) {
	hdr := c.out
	c.out = nil
	c.flushing = true
	total := len(hdr.B) + len(payload)
	c.inflight = total
	c.framesOut++
	c.outMu.Unlock()

	n, err := c.tr.(vectorWriter).writev(hdr.B, payload)
	switch {
	case err != nil:
		c.writeFailed(err)
	case n == total:
		c.batchWritten(hdr, total)
		// Write what other senders queued meanwhile, or end the turn.
		c.flushLocked(true)
	case n < len(hdr.B):
		hdr.B = append(hdr.B, payload...)
		c.handOff(hdr, n, 0)
	default:
		hdr.B = append(hdr.B[:0], payload[n-len(hdr.B):]...)
		c.handOff(hdr, 0, n)
	}
}

// queuedLocked returns the outbound bytes not yet written: the batch in
// flight and the queue. outMu is held.
func (c *conn[F]) queuedLocked() int {
	queued := c.inflight
	if c.out != nil {
		queued += len(c.out.B)
	}
	return queued
}

// handOff gives a batch the socket did not take at once to a new flusher
// goroutine, with the write clock running: the runner, or a Send, never
// waits for the socket. off is how much of buf.B is written; written
// counts bytes that went out and are no longer in buf.B. The caller owns
// the flush loop; outMu is not held. A connection that closed meanwhile
// ends the flusher's turn instead: nothing more is written, and the
// engine may be stopping.
func (c *conn[F]) handOff(buf *bufpool.Buffer, off, written int) {
	c.outMu.Lock()
	c.bytesOut += uint64(written)
	if c.state == stateClosed {
		c.inflight = 0
		c.endTurnLocked() // buf is dropped: the transport may refer to it
		c.outMu.Unlock()
		return
	}
	c.rest, c.restOff = buf, off
	c.inflight = len(buf.B)
	crossed := c.crossedHighLocked(c.queuedLocked())
	c.e.wg.Add(1) // under outMu: see goFlush
	c.outMu.Unlock()
	if crossed && c.e.writability != nil {
		c.postWritability()
	}
	c.startWriteClock()
	c.e.goFlush(c)
}

// batchWritten settles a batch the transport took whole: its written
// bytes are counted (a direct write's payload with its header), buf goes
// back to the pool, and a queue drained to the low mark makes the
// connection writable again. It returns with outMu held, for the
// flusher's next round.
func (c *conn[F]) batchWritten(buf *bufpool.Buffer, written int) {
	opts := &c.e.opts
	if opts.IdleTimeout > 0 {
		c.lastActivity.Store(c.e.wheel.CoarseNow())
	}
	c.e.pool.Put(buf)
	c.outMu.Lock()
	c.inflight = 0
	c.bytesOut += uint64(written)
	if !c.writable && (c.out == nil || len(c.out.B) <= opts.WriteBufferLowWater) {
		c.writable = true
		c.clearFlag(flPaused)
		c.outMu.Unlock()
		// Tell the handler first, then decode what was held back.
		if c.e.writability != nil {
			c.postWritability()
		}
		c.postResume()
		if rp, ok := c.tr.(readPauser); ok {
			rp.resumeReading()
		}
		c.outMu.Lock()
	}
}

// writeFailed ends the flusher's turn after a failed write and aborts the
// connection. outMu is not held. The transport may still refer to the
// batch: it is left to the GC, not put back in the pool.
func (c *conn[F]) writeFailed(err error) {
	c.outMu.Lock()
	c.inflight = 0
	c.endTurnLocked()
	c.outMu.Unlock()
	c.abort(fmt.Errorf("mai: write to %v: %w", c.id, err), byPeer)
}

//go:noinline
func (c *conn[F]) sendClosed() error {
	return fmt.Errorf("send to %v: %w", c.id, mai.ErrClosed)
}

// sendRefused applies the backpressure policy to a Send over the high
// water mark.
//
//go:noinline
func (c *conn[F]) sendRefused(queued int) error {
	err := fmt.Errorf("send to %v: %w (%d bytes queued)", c.id, mai.ErrBackpressure, queued)
	if c.e.opts.Backpressure == mai.BackpressureClose {
		c.abortWith(err)
	}
	return err
}

// encodeFailed undoes a failed encode (the queue is as it was before) and
// releases outMu, which is held.
//
//go:noinline
func (c *conn[F]) encodeFailed(before int, err error) error {
	c.out.B = c.out.B[:before]
	if before == 0 && !c.flushing {
		c.e.pool.Put(c.out)
		c.out = nil
	}
	c.outMu.Unlock()
	return fmt.Errorf("send to %v: %w: %w", c.id, mai.ErrEncode, err)
}

// encodePanicked is the error of an Encode that panicked with r, or,
// when r is nil, ended the goroutine (runtime.Goexit).
func (c *conn[F]) encodePanicked(r any) error {
	if r == nil {
		c.e.log.Error("mai: codec Encode ended its goroutine (runtime.Goexit)", "conn", c.id, "err", errGoexit)
		return fmt.Errorf("codec Encode: %w", errGoexit)
	}
	return fmt.Errorf("codec Encode: %w", c.panicked(r))
}

//go:noinline
func (c *conn[F]) postWritability() { c.post(event[F]{kind: evWritability}) }

//go:noinline
func (c *conn[F]) postResume() { c.post(event[F]{kind: evResume}) }

// flushOwed writes what callbacks queued during a run. Called by the runner
// after it let go of serial, so no lock is held across the write. The write
// is attempted inline (one write per batch of callbacks); if the transport
// cannot take it all without waiting, the rest goes to a flusher goroutine,
// so a runner on an event loop never waits for its own loop.
func (c *conn[F]) flushOwed() {
	c.outMu.Lock()
	if c.flushing || c.state == stateClosed || c.out == nil || len(c.out.B) == 0 {
		c.outMu.Unlock()
		return
	}
	c.flushing = true
	c.flushLocked(true)
}

// flushLoop writes queued bytes until the queue is empty. Exactly one
// goroutine runs it for a connection at a time: the one that set flushing.
func (c *conn[F]) flushLoop(inline bool) {
	c.outMu.Lock()
	c.flushLocked(inline)
}

// flushLocked is the flush loop; it is called with outMu held and returns
// with it released. Each round takes the whole queue as one batch (one
// write); taking the next batch and settling the last one share a critical
// section, so a batch costs two round trips of outMu. A buffer goes back to
// the pool only after its write finished, since the transport may keep
// references to it until then. inline is true on a runner, which must not
// wait for the socket: a short write hands the rest (c.rest) to a new
// flusher goroutine.
func (c *conn[F]) flushLocked(inline bool) {
	for {
		buf, off, closeNow := c.nextBatchLocked()
		c.outMu.Unlock()
		if buf == nil {
			if closeNow {
				c.closeOrderly()
			}
			return
		}

		if !inline {
			c.startWriteClock()
		}
		var err error
		bw, blocking := c.tr.(blockingWriter)
		switch {
		case inline:
			// The runner never waits for the socket: one attempt, and
			// what the socket does not take goes to a flusher goroutine.
			// A write that is done at once needs no write timeout: the
			// clock starts only when the rest is handed on.
			var n int
			n, err = c.tr.write(buf.B[off:])
			off += n
			if err == nil && off < len(buf.B) {
				c.handOff(buf, off, 0)
				return
			}
		case blocking:
			err = bw.writeAll(buf.B[off:])
		default:
			for off < len(buf.B) && err == nil {
				var n int
				if n, err = c.tr.write(buf.B[off:]); err == nil {
					off += n
					if off < len(buf.B) {
						err = c.tr.waitWritable()
					}
				}
			}
		}
		if err != nil {
			c.writeFailed(err)
			return
		}
		c.batchWritten(buf, len(buf.B))
	}
}

// nextBatchLocked takes the next batch to write: a partly written one
// first, else the whole queue. When there is none, or the connection is
// closed, it ends the flusher's turn: flushing is cleared, and a closing
// connection becomes closed, which closeNow reports (the caller closes the
// transport). outMu is held.
func (c *conn[F]) nextBatchLocked() (buf *bufpool.Buffer, off int, closeNow bool) {
	if c.state == stateClosed {
		c.endTurnLocked()
		c.dropRestLocked()
		return nil, 0, false
	}
	if c.rest != nil {
		buf, off = c.rest, c.restOff
		c.rest, c.restOff = nil, 0
		return buf, off, false
	}
	if c.out == nil || len(c.out.B) == 0 {
		c.endTurnLocked()
		if c.state == stateClosing {
			c.state = stateClosed
			closeNow = true
		}
		return nil, 0, closeNow
	}
	buf, c.out = c.out, nil
	c.inflight = len(buf.B)
	return buf, 0, false
}

// endTurnLocked ends the flusher's turn: flushing is cleared, and so is
// the write clock, in the same critical section, since a flusher started
// right after may start the clock again (cleared after outMu was let go,
// it once erased the next flusher's clock, and a peer that did not read
// was never closed). outMu is held.
func (c *conn[F]) endTurnLocked() {
	c.flushing = false
	if c.writeStart.Load() != 0 {
		c.writeStart.Store(0)
	}
}

// startWriteClock starts the write timeout (if any) of a write that may
// have to wait for the socket.
func (c *conn[F]) startWriteClock() {
	if wt := c.e.opts.WriteTimeout; wt > 0 {
		now := c.e.wheel.Now()
		c.writeStart.Store(now)
		c.armBy(after(now, wt))
	}
}

// dropRestLocked forgets a partly written batch. outMu is held.
func (c *conn[F]) dropRestLocked() {
	c.rest, c.restOff = nil, 0 // the transport may refer to it: no pool
}
