package engine

import (
	"unsafe"

	"github.com/mai-go/mai/bufpool"
)

// Lending: on a transport whose input buffers are reference counted (the
// netpoll transport), Send of a large frame of a built-in codec
// (capDirect) that was decoded from the read event being handled queues
// the frame's payload in place instead of copying it into the queue.
//
// The transport makes the input lendable for the duration of input
// (conn.lendFrom, conn.lendEnd). The first payload lent from it takes a
// hold on the input (lendSource.hold: a netpoll Slice, which keeps the
// input's buffer node alive after the transport released the input), and
// every lent payload keeps that hold (heldInput.retain) until it is
// written, or dropped with the queue. So lent bytes stay valid across
// short writes and hand-offs to a flusher goroutine, with no copy, and go
// back to the transport when the last payload that needs them is done.
//
// A lent payload sits in the queue as a seg: the batch written is the
// queue's buffer with each seg's bytes inserted at its offset, written
// with one vectored write (batchWriter).
//
// The rule this brings for handlers (see mai.Context.Send): a received
// frame must not be modified after it was sent.
//
// Not solved here: a hold keeps netpoll's whole buffer node alive, and
// netpoll sizes a connection's nodes by the largest backlog it saw, up to
// 8 MiB. A peer that does not read could make each lent payload pin a
// node of its own (a large frame, then unsent input to fill the node),
// so the memory a connection pins is no longer bounded by its high water
// mark. Landing this needs a bound on the holds per connection.

// seg is a lent payload: b goes after the first at bytes of the buffer it
// belongs to, and h keeps b valid until the seg is released.
type seg struct {
	at int
	b  []byte
	h  heldInput
}

// lendMin is the smallest payload that is lent rather than copied. Lending
// costs a netpoll Slice per read event (about 130 ns and one 96-byte
// allocation) and an iovec per payload; copying 64 KiB costs about 1.2 us
// (bench/netpoll_slice_test.go).
const lendMin = 16 << 10

// maxLent bounds the lent payloads of one batch, so that a batch is one
// writev of at most maxIov pieces; later payloads are copied.
const maxLent = 15

// maxIov is the most pieces one writev is given (Linux allows 1024).
const maxIov = 2*maxLent + 1

// heldInput is input bytes a transport keeps valid while they are held.
// Its methods are safe for concurrent use.
type heldInput interface {
	// retain adds a holder.
	retain()
	// release drops a holder; after the last one the bytes go back to the
	// transport.
	release()
	// abandon drops a holder that a failed write may have left the bytes
	// referenced by: they never go back to the transport, and are left to
	// the garbage collector.
	abandon()
}

// lendSource is a transport's input being handled, which lent payloads
// can hold.
type lendSource interface {
	// hold takes a hold on the input, with one holder (the runner), or
	// returns nil if the input cannot be held. It is called at most once
	// per input, by a Send under outMu, during input.
	hold() heldInput
}

// outExtra is outbound state only some connections ever need: a batch
// the socket took only part of, and lent payloads. outMu guards it; a
// connection gets it on first use and keeps it.
type outExtra struct {
	rest     *bufpool.Buffer // a batch partly written by an inline flush
	restOff  int             // how much of rest (with restLent) is written
	restLent []seg           // rest's lent payloads

	// lent are the payloads lent to the queue (c.out), in order, and
	// lentBytes their size; spare is an empty array for the next ones.
	lent      []seg
	lentBytes int
	spare     []seg

	// lo and hi bound the input the runner is decoding while its frames
	// may be lent; src holds it, and cur is the hold taken on it, if any.
	lo, hi uintptr
	src    lendSource
	cur    heldInput

	lentCount uint64 // payloads lent so far (tests)
}

// outExtra returns c.ox, made if needed. outMu is held.
func (c *conn[F]) outExtra() *outExtra {
	if c.ox == nil {
		c.ox = &outExtra{}
	}
	return c.ox
}

// lendFrom makes the payloads of frames decoded from data, the input the
// transport is about to hand to input, lendable through src. The
// transport calls lendEnd once input returned.
func (c *conn[F]) lendFrom(src lendSource, data []byte) {
	c.outMu.Lock()
	ox := c.outExtra()
	ox.lo = uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	ox.hi = ox.lo + uintptr(len(data))
	ox.src = src
	c.outMu.Unlock()
}

// lendEnd ends lending from the input lendFrom announced, and drops the
// runner's holder of the hold taken on it, if any.
func (c *conn[F]) lendEnd() {
	c.outMu.Lock()
	ox := c.ox
	h := ox.cur
	ox.lo, ox.hi, ox.src, ox.cur = 0, 0, nil, nil
	c.outMu.Unlock()
	if h != nil {
		h.release()
	}
}

// lendLocked queues payload p in place after what c.out holds, if it lies
// in the lendable input and the batch has room; it reports whether it
// did. outMu is held.
func (c *conn[F]) lendLocked(p []byte) bool {
	ox := c.ox
	if ox == nil || ox.hi == 0 || len(ox.lent) >= maxLent {
		return false
	}
	a := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	if a < ox.lo || a+uintptr(len(p)) > ox.hi {
		return false
	}
	if ox.cur == nil {
		if ox.cur = ox.src.hold(); ox.cur == nil {
			ox.lo, ox.hi = 0, 0 // it cannot be held: copy from now on
			return false
		}
	}
	if ox.lent == nil {
		ox.lent, ox.spare = ox.spare, nil
		if ox.lent == nil {
			ox.lent = make([]seg, 0, maxLent)
		}
	}
	ox.cur.retain()
	ox.lent = append(ox.lent, seg{at: len(c.out.B), b: p, h: ox.cur})
	ox.lentBytes += len(p)
	ox.lentCount++
	return true
}

// lentBytesLocked is the size of the lent payloads in the queue. outMu is
// held.
func (c *conn[F]) lentBytesLocked() int {
	if c.ox == nil {
		return 0
	}
	return c.ox.lentBytes
}

// hasOutLocked reports whether the queue holds bytes to write (a Raw
// frame's queue can hold lent payloads only). outMu is held.
func (c *conn[F]) hasOutLocked() bool {
	return c.out != nil && (len(c.out.B) > 0 || c.lentBytesLocked() > 0)
}

// takeLentLocked takes the lent payloads of the batch c.out is about to
// become. outMu is held.
func (c *conn[F]) takeLentLocked() (lent []seg, size int) {
	ox := c.ox
	if ox == nil || len(ox.lent) == 0 {
		return nil, 0
	}
	lent, size = ox.lent, ox.lentBytes
	ox.lent, ox.lentBytes = nil, 0
	return lent, size
}

// settleLent ends the lent payloads of a batch: their holds are released,
// or abandoned when a failed write may still refer to them. The array is
// cleared for keepSpareLocked. outMu is not held.
func settleLent(lent []seg, abandon bool) {
	for i := range lent {
		if abandon {
			lent[i].h.abandon()
		} else {
			lent[i].h.release()
		}
	}
	clear(lent)
}

// keepSpareLocked keeps the settled array of a batch's lent payloads for
// later batches. outMu is held.
func (c *conn[F]) keepSpareLocked(lent []seg) {
	if lent != nil && c.ox.spare == nil {
		c.ox.spare = lent[:0]
	}
}

// dropLentLocked releases the lent payloads of a queue that is dropped
// unwritten. outMu is held.
func (c *conn[F]) dropLentLocked() {
	ox := c.ox
	if ox == nil || len(ox.lent) == 0 {
		return
	}
	for i := range ox.lent {
		ox.lent[i].h.release()
	}
	clear(ox.lent)
	ox.lent, ox.lentBytes = ox.lent[:0], 0
}

// piece returns the i-th of the 2*len(lent)+1 pieces of the batch b with
// lent inserted: even pieces are stretches of b, odd ones lent payloads.
func piece(b []byte, lent []seg, i int) []byte {
	k := i / 2
	if i%2 == 1 {
		return lent[k].b
	}
	lo, hi := 0, len(b)
	if k > 0 {
		lo = lent[k-1].at
	}
	if k < len(lent) {
		hi = lent[k].at
	}
	return b[lo:hi]
}

// batchLen is the size of the batch b with lent inserted.
func batchLen(b []byte, lent []seg) int {
	n := len(b)
	for i := range lent {
		n += len(lent[i].b)
	}
	return n
}

// batchWriter is implemented by transports that are a lendSource: they
// write batches with lent payloads. Only such a transport's connections
// ever queue lent payloads.
type batchWriter interface {
	// writeBatch is write for the batch b with lent inserted, from byte
	// off on: one non-blocking vectored write.
	writeBatch(b []byte, lent []seg, off int) (int, error)
	// writeBatchAll is writeAll for the batch b with lent inserted, from
	// byte off on.
	writeBatchAll(b []byte, lent []seg, off int) error
}
