package engine

import (
	"errors"
	"fmt"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/codec"
)

// input is called by the transport with bytes that just arrived. It is never
// called concurrently for one connection, and data is valid only during the
// call: every byte is either decoded into frames (delivered to OnFrame while
// data is still valid, so frames may alias it) or copied into the pending
// buffer. input never waits for more bytes; it may wait for serial while a
// timer or Do callback of the same connection runs.
//
// It returns the most the transport may read for the next input (see
// roomLocked). A transport that reads no more than that never makes the
// connection fail with ErrInboundLimit, and one that stops reading at 0
// (until resumeReading) lets TCP slow down a peer that sends while the
// connection is paused.
func (c *conn[F]) input(data []byte) (room int) {
	c.bytesIn.Add(uint64(len(data)))
	c.serial.Lock()
	c.setFlag(flRunning)
	done := false
	defer onGoexit(&done, func() { c.runnerLost(true) })
	// Events queued before this input (OnReady first of all) go first.
	c.drain()
	if c.decoding() {
		c.consume(data)
	} else {
		// netpoll hands over what it read before the peer's hang-up
		// after it closed the connection.
		c.keepLast(data)
	}
	room = c.roomLocked()
	c.releaseRun()
	done = true
	return room
}

// readRoom is input's result without an input: what the transport may
// read now. A transport that stopped at 0 asks it after the pause ended,
// since the connection may have paused again meanwhile. Like input, it
// takes the runner role, so it may run queued events.
func (c *conn[F]) readRoom() int { return c.input(nil) }

// decoding reports whether input is still decoded: the connection has not
// finished, failed its input, or begun to close. serial is held.
func (c *conn[F]) decoding() bool { return !c.finished && !c.poisoned && !c.hasFlag(flClosing) }

// roomLocked returns how much input the connection can take now without
// going over WithMaxInboundBytes: the bound less the undecoded bytes held.
// That is 0 only while decoding is paused and the held input fills the
// bound. Unpaused, the held bytes are a partial frame, so at least one
// more byte is allowed, which completes it or fails it for its size; or
// they are input held by a pause that just ended, whose resume event has
// not run yet, which is decoded here first if it fills the bound. A
// connection that decodes nothing more allows the whole bound, as its
// input is dropped; one that never pauses (WithReadPause(false)) needs no
// bound on its reads. serial is held.
func (c *conn[F]) roomLocked() int {
	bound := c.e.opts.MaxInboundBytes
	if c.e.opts.NoReadPause {
		// Only a partial frame is ever held, and consume takes no more
		// of a read than completes it.
		return mai.MaxInboundLimit
	}
	if c.pend == nil || !c.decoding() {
		return bound
	}
	paused := c.hasFlag(flPaused)
	if !paused && c.unread() >= bound {
		// The events that ended the pause go first (OnWritabilityChanged,
		// then the resume), if they are queued already.
		c.drain()
		if c.pend != nil && c.decoding() && c.unread() >= bound {
			c.decodePending()
		}
		if c.pend == nil || !c.decoding() {
			return bound
		}
		paused = c.hasFlag(flPaused)
	}
	room := bound - c.unread()
	if !paused {
		room = max(room, 1)
	}
	return max(room, 0)
}

// consume decodes data, or keeps it for later. serial is held.
func (c *conn[F]) consume(data []byte) {
	c.catchUpWritability()
	// A partial frame is pending: feed it only what it needs (the size
	// Sizer told, or geometrically growing pieces), so a large read is not
	// copied whole and counted against the inbound bound; the rest is
	// decoded in place below.
	for c.pend != nil && len(data) > 0 && !c.hasFlag(flPaused) {
		unread := c.unread()
		k := len(data)
		if need := int(c.need); need > unread {
			k = min(k, need-unread)
		} else {
			k = min(k, max(unread, c.e.opts.InitialBufferSize))
		}
		if !c.appendPending(data[:k]) {
			return
		}
		data = data[k:]
		c.decodePending()
		if c.hasFlag(flClosing) {
			c.keepLast(data)
			return
		}
	}
	if len(data) == 0 {
		return
	}
	if c.pend != nil || c.hasFlag(flPaused) {
		// Decoding is paused: keep the input, within the inbound bound.
		c.appendPending(data)
		return
	}
	off := c.decodeFrom(data)
	if c.hasFlag(flClosing) {
		c.keepLast(data[off:])
		return
	}
	if off < len(data) {
		c.appendPending(data[off:])
	}
	c.markPartial(off > 0)
}

// keepLast keeps data, input that arrived or was left undecoded after the
// connection began to close, when the peer ended it (see deliverHeld),
// within the inbound bound; otherwise the input is dropped. serial is held.
func (c *conn[F]) keepLast(data []byte) {
	if len(data) == 0 {
		return
	}
	if !c.hasFlag(flPeerEnd) {
		c.setFlag(flPeerSending)
		return
	}
	if !c.poisoned && !c.finished {
		c.appendPending(data)
	}
}

// decodePending decodes what the pending buffer holds, as far as it can.
// serial is held.
func (c *conn[F]) decodePending() {
	if c.pend == nil || c.poisoned {
		return
	}
	c.catchUpWritability()
	off := c.decodeFrom(c.pendBytes())
	if c.pend == nil { // released by an error path
		return
	}
	c.pendOff += int32(off)
	unread := c.unread()
	switch {
	case unread == 0:
		c.e.pool.Put(c.pend)
		c.pend, c.pendOff = nil, 0
	case c.pendOff > 0 && int(c.pendOff) >= unread:
		// Compact when the consumed prefix is at least as large as what
		// remains: each byte moves O(1) times overall. This also keeps
		// pendOff in 32 bits: after it, pendOff < unread <= MaxInboundBytes
		// <= 2^30, so pendOff+off above stays under 2^31. Loosening the rule
		// needs another bound.
		n := copy(c.pend.B, c.pendBytes())
		c.pend.B = c.pend.B[:n]
		c.pendOff = 0
	}
	c.markPartial(off > 0)
}

// catchUpWritability tells the handler of a change of writability that
// its event has not told yet, before frames are decoded: the flusher that
// ends a pause clears it before it posts the event, so input arriving in
// between would otherwise reach OnFrame first. A handler without
// OnWritabilityChanged, or one up to date, costs a load and a test.
// serial is held.
func (c *conn[F]) catchUpWritability() {
	if c.e.writability != nil && (!c.toldWritable || c.hasFlag(flDipped)) {
		c.reportWritability()
	}
}

// appendPending copies data after the unread pending bytes, enforcing the
// inbound bound. It reports false if the connection was failed for it.
// serial is held.
func (c *conn[F]) appendPending(data []byte) bool {
	unread := 0
	if c.pend != nil {
		unread = c.unread()
	}
	if unread+len(data) > c.e.opts.MaxInboundBytes {
		c.failInbound(fmt.Errorf("%w: %d bytes held, limit %d", mai.ErrInboundLimit, unread+len(data), c.e.opts.MaxInboundBytes))
		return false
	}
	if c.pend == nil {
		c.pend = c.e.pool.Get()
		c.pendOff = 0
	}
	// When the frame's size is known, room for it is reserved ahead, so a
	// large frame is not copied through many small growths; but no more
	// than four times what arrived of it (pendReserve at least), so that a
	// header alone cannot make the connection hold the size it declares:
	// the peer pays for what it makes mai hold. The growth is geometric,
	// so the bytes are copied about 1.33 times in all. (For a 16 MiB frame
	// arriving 64 KiB at a time, reserving it whole took 2.3 ms, doubling
	// 6.7 ms, fourfold 2.9 ms (BenchmarkLargeFrameInput, 5 alternating
	// rounds): each step above the pool's largest buffer is a new
	// allocation, zeroed. Frames up to 1 MiB cost the same.)
	// It is reserved with the frame's first bytes, and again each time
	// what arrived outgrows it.
	if want, have := int(c.need), unread+len(data); want >= have {
		room := cap(c.pend.B) - int(c.pendOff)
		if size := min(want, max(4*have, pendReserve)); room < have || unread == 0 && room < size {
			c.reservePending(size)
		}
	}
	c.pend.B = append(c.pend.B, data...)
	return true
}

// reservePending moves the unread pending bytes into a buffer with room
// for size bytes. serial is held.
func (c *conn[F]) reservePending(size int) {
	nb := c.e.pool.Get()
	if cap(nb.B) < size {
		nb.B = make([]byte, 0, size) // kept by the pool afterwards, within its bounds
	}
	nb.B = append(nb.B, c.pendBytes()...)
	c.e.pool.Put(c.pend)
	c.pend, c.pendOff = nb, 0
}

// pendReserve is the least room appendPending reserves for a frame whose
// size it knows: a 64 KiB frame (the largest read of the epoll transport)
// and its header fit, so frames up to that size are copied once.
const pendReserve = 64<<10 + 64

// failInbound fails the connection for input over WithMaxInboundBytes:
// what it holds is dropped, and nothing more is decoded. serial is held.
func (c *conn[F]) failInbound(err error) {
	c.dropPending()
	c.poisoned = true
	c.showError(err)
	c.abortWith(err)
}

// inboundOverrun fails the connection with ErrInboundLimit because its
// transport holds more input than it may that the connection was not
// handed yet (netpoll, which reads ahead without a bound of its own). It
// takes the runner role, as input does.
func (c *conn[F]) inboundOverrun(buffered int) {
	c.serial.Lock()
	c.setFlag(flRunning)
	done := false
	defer onGoexit(&done, func() { c.runnerLost(true) })
	c.drain()
	if c.decoding() {
		c.failInbound(fmt.Errorf("%w: %d bytes read ahead and not decoded, limit %d", mai.ErrInboundLimit, buffered, c.e.opts.MaxInboundBytes))
	}
	c.releaseRun()
	done = true
}

// unread is the number of undecoded bytes in pend, which is not nil.
func (c *conn[F]) unread() int { return len(c.pend.B) - int(c.pendOff) }

// pendBytes returns the undecoded bytes of pend, which is not nil.
func (c *conn[F]) pendBytes() []byte { return c.pend.B[c.pendOff:] }

func (c *conn[F]) dropPending() {
	if c.pend != nil {
		c.e.pool.Put(c.pend)
		c.pend, c.pendOff, c.need = nil, 0, 0
	}
}

// markPartial keeps the read-timeout clock: it runs while a partial frame is
// buffered, and restarts when a frame completed. serial is held.
func (c *conn[F]) markPartial(progress bool) {
	if c.e.opts.ReadTimeout <= 0 {
		return
	}
	if c.pend == nil {
		c.readStart.Store(0)
		return
	}
	if progress || c.readStart.Load() == 0 {
		c.startReadClock()
	}
}

// restartReadClock restarts a running read clock when a pause ends: while
// paused, the connection stopped reading, so the time does not count
// against the peer.
func (c *conn[F]) restartReadClock() {
	if c.e.opts.ReadTimeout > 0 && c.readStart.Load() != 0 {
		c.startReadClock()
	}
}

// startReadClock starts the read timeout from now.
func (c *conn[F]) startReadClock() {
	now := c.e.wheel.Now()
	c.readStart.Store(now)
	c.armBy(after(now, c.e.opts.ReadTimeout))
}

// decodeFrom decodes frames from buf and delivers them, stopping at a
// partial frame, a pause, or a close. It returns how many bytes were
// consumed. Frames alias buf. serial is held. Its rare paths are helpers
// kept out of line, so that its frame stays small: the read path runs on
// netpoll's fresh goroutines, whose stacks start at 2 KiB.
//
// One deferred recover covers the codec's Decode and OnFrame for the whole
// buffer, instead of one per call: inFrame tells which of them panicked.
func (c *conn[F]) decodeFrom(buf []byte) (off int) {
	inFrame := false
	defer c.decodePanicked(&off, &inFrame, len(buf))
	first := true
	for off < len(buf) && !c.hasFlag(flClosing|flPaused) {
		rest := buf[off:]
		if c.need > 0 && len(rest) < int(c.need) {
			break
		}
		frame, n, err := c.codec.Decode(rest)
		switch {
		case err != nil:
			if err == codec.ErrSkip && n > 0 && n <= len(rest) {
				off += n
				c.need = 0
				continue
			}
			c.decodeFailed(err, n, len(rest))
			return len(buf)
		case n == 0: // need more bytes
			if !c.partialFrame(rest) {
				return len(buf)
			}
			return off
		case n < 0 || n > len(rest):
			c.badCount(n, len(rest))
			return len(buf)
		case n > c.e.opts.MaxFrameSize:
			// A whole frame over the limit, which a partial one would
			// have met in partialFrame: the same, however it arrived.
			c.frameTooLarge(n)
			return len(buf)
		}
		off += n
		c.need = 0
		c.framesIn.Add(1)
		if first {
			// Once per buffer, before its first OnFrame: its frames all
			// arrived together, and the idle clock is coarse.
			first = false
			if !c.hasFlag(flGotFrame) {
				c.setFlag(flGotFrame)
			}
			if c.e.opts.IdleTimeout > 0 {
				c.lastActivity.Store(c.e.wheel.CoarseNow())
			}
		}
		inFrame = true
		err = c.e.h.OnFrame(c, frame)
		inFrame = false
		if err != nil {
			c.frameFailed(err)
		}
	}
	return off
}

// frameFailed fails the connection for an error from OnFrame, which sets
// flClosing. An error wrapping ErrClosed (a Send's, most likely) on a
// connection that is closing already is that close's consequence, not a
// failure: OnError does not hear of it, and it does not replace the
// close's cause. That happens when the peer's end races with an OnFrame,
// and for every frame deliverHeld delivers. serial is held.
//
//go:noinline
func (c *conn[F]) frameFailed(err error) {
	if errors.Is(err, mai.ErrClosed) && c.closing() {
		return
	}
	c.poisoned = true // no frame is delivered after the handler's error
	c.fail(err)
}

// closing reports whether the connection is closing or closed.
func (c *conn[F]) closing() bool {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.state != stateOpen
}

// deliverHeld delivers the whole frames in the input held when the peer
// ended the connection (EOF, a reset, a write it refused) before this
// side began a close: bytes read from the socket before the peer went,
// kept back by a pause or not decoded yet. Their OnFrame calls run before
// OnClosed, with the connection closed, so a Send from them returns an
// error wrapping mai.ErrClosed. Another error from OnFrame, or a panic,
// ends the delivery and drops the rest; else what stays held is a partial
// frame. serial is held.
//
// decodeFrom stops at flClosing and flPaused, which are set: they are
// cleared for the delivery. After stateClosed only this runner sets
// flClosing (fail, for an error from OnFrame). flPaused can still be set
// by a flusher that was writing when the connection closed (handOff,
// crossing the high mark again): the delivery goes on past it.
func (c *conn[F]) deliverHeld() {
	for c.pend != nil && !c.poisoned && c.unread() > 0 {
		c.clearFlag(flClosing | flPaused)
		off := c.decodeFrom(c.pendBytes())
		failed := c.hasFlag(flClosing)
		c.setFlag(flClosing)
		switch {
		case c.pend == nil: // dropped by a protocol error
			return
		case failed:
			c.poisoned = true // the rest is not decoded
			return
		}
		c.pendOff += int32(off)
		if !c.hasFlag(flPaused) {
			return // at a partial frame, or all delivered
		}
	}
}

// decodePanicked is decodeFrom's deferred call. A panic in OnFrame fails
// the connection as an error from OnFrame would (the frame was consumed:
// *off stands); one in the codec is a protocol error, and the input is
// dropped (*off becomes size). serial is held.
func (c *conn[F]) decodePanicked(off *int, inFrame *bool, size int) {
	r := recover()
	if r == nil {
		return
	}
	err := c.panicked(r)
	if *inFrame {
		c.poisoned = true // as for an error from OnFrame
		c.fail(err)
		return
	}
	c.protocolError(fmt.Errorf("codec Decode: %w", err))
	*off = size
}

// partialFrame checks the partial frame at the start of rest against the
// frame size limit, and records its size when the codec can tell it. It
// reports false if the connection was failed for it. serial is held.
//
//go:noinline
func (c *conn[F]) partialFrame(rest []byte) bool {
	maxFrame := c.e.opts.MaxFrameSize
	if c.caps&capSizer != 0 {
		size, err := c.frameSize(rest)
		if err != nil {
			c.protocolError(err)
			return false
		}
		if size > maxFrame {
			c.protocolError(fmt.Errorf("%w: frame of %d bytes, limit %d", mai.ErrFrameTooLarge, size, maxFrame))
			return false
		}
		if size > len(rest) {
			c.need = int32(size) // size <= maxFrame <= mai.MaxInboundLimit
		}
	}
	if len(rest) > maxFrame {
		c.protocolError(fmt.Errorf("%w: partial frame of %d bytes, limit %d", mai.ErrFrameTooLarge, len(rest), maxFrame))
		return false
	}
	return true
}

//go:noinline
func (c *conn[F]) badCount(n, size int) {
	c.protocolError(fmt.Errorf("codec consumed %d bytes of %d", n, size))
}

//go:noinline
func (c *conn[F]) frameTooLarge(n int) {
	c.protocolError(fmt.Errorf("%w: frame of %d bytes, limit %d", mai.ErrFrameTooLarge, n, c.e.opts.MaxFrameSize))
}

// decodeFailed fails the connection for an error from Decode; an ErrSkip
// with a count it cannot skip says so. serial is held.
//
//go:noinline
func (c *conn[F]) decodeFailed(err error, n, size int) {
	if err == codec.ErrSkip {
		err = fmt.Errorf("%w: codec skipped %d bytes of %d", err, n, size)
	}
	c.protocolError(err)
}

// protocolError fails the connection for a decode error: nothing it
// received is decoded again. serial is held.
//
//go:noinline
func (c *conn[F]) protocolError(err error) {
	c.poisoned = true
	c.dropPending()
	if !errors.Is(err, mai.ErrProtocol) {
		err = fmt.Errorf("%w: %w", mai.ErrProtocol, err)
	}
	c.fail(err)
}

func (c *conn[F]) frameSize(src []byte) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("codec FrameSize: %w", c.panicked(r))
		}
	}()
	return c.codec.(codec.Sizer).FrameSize(src), nil
}
