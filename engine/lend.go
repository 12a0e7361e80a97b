package engine

import (
	"unsafe"

	"github.com/mai-go/mai/bufpool"
)

// Lending: Send of a large frame of a built-in codec (capDirect) queues the
// frame's payload in place instead of copying it, when the bytes cannot
// change or go away before they are written:
//
//   - the frame was decoded from the input the runner is reading (the
//     input of a read event, not the pending buffer): the transport keeps
//     those bytes until input returns, and the runner's flush at the end
//     of the run writes them before it returns (flushOwed). Handing the
//     queue to a flusher goroutine instead (a Send over the high water
//     mark, a Close from another goroutine) copies the lent payloads
//     first (ownLentLocked), and a write the socket takes only part of
//     copies what is left (splice) before the runner moves on. So lent
//     bytes are never read after input returns;
//   - or nothing is queued and the payload is at least directWriteMin:
//     Send writes the frame at once, as the flusher, and copies only what
//     the socket does not take, before it returns (see Send).
//
// The payload stays in the queue as a seg: the batch written is the
// queue's buffer with each seg's bytes inserted at its offset, one
// vectored write (vectorWriter.writeBatch).

// seg is a lent payload: b goes after the first at bytes of the buffer it
// belongs to.
type seg struct {
	at int
	b  []byte
}

// lendMin is the smallest payload that is lent rather than copied: a
// copy of a smaller one costs about as much as the extra iovec (a 64 KiB
// copy is about 2 us of the 20-25 us a 64 KiB echo costs the server; see
// the README's table of costs).
const lendMin = 16 << 10

// maxLent bounds the lent payloads of one batch, so that a batch is one
// writev of at most maxIov pieces; later payloads of the run are copied.
const maxLent = 15

// maxIov is the most pieces one writev is given (Linux allows 1024).
const maxIov = 2*maxLent + 1

// outExtra is outbound state only some connections ever need: a batch
// the socket took only part of, and lent payloads. outMu guards it; a
// connection gets it on first use and keeps it.
type outExtra struct {
	rest    *bufpool.Buffer // a batch partly written by an inline flush
	restOff int             // how much of rest is written

	// lent are the payloads lent to the queue (c.out), in order, and
	// lentBytes their size. nil while a batch holding them is in flight.
	lent      []seg
	lentBytes int
	// lo and hi bound the input the runner is decoding while its frames
	// may be lent; both are 0 otherwise.
	lo, hi uintptr
}

// outExtra returns c.ox, made if needed. outMu is held.
func (c *conn[F]) outExtra() *outExtra {
	if c.ox == nil {
		c.ox = &outExtra{}
	}
	return c.ox
}

// lendInput makes the frames decoded from data lendable (data != nil),
// or ends that (nil). The runner calls it around decoding a read event's
// bytes in place.
func (c *conn[F]) lendInput(data []byte) {
	c.outMu.Lock()
	ox := c.outExtra()
	ox.lo, ox.hi = 0, 0
	if len(data) > 0 {
		ox.lo = uintptr(unsafe.Pointer(unsafe.SliceData(data)))
		ox.hi = ox.lo + uintptr(len(data))
	}
	c.outMu.Unlock()
}

// lendableLocked reports whether payload p may be lent: it lies in the
// lendable input, no flusher goroutine runs, and the batch has room.
// outMu is held.
func (c *conn[F]) lendableLocked(p []byte) bool {
	ox := c.ox
	if ox == nil || ox.hi == 0 || c.flushing || len(ox.lent) >= maxLent {
		return false
	}
	a := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	return a >= ox.lo && a+uintptr(len(p)) <= ox.hi
}

// pushLent queues p in place after what c.out holds. outMu is held.
func (c *conn[F]) pushLent(p []byte) {
	ox := c.outExtra()
	if ox.lent == nil {
		ox.lent = make([]seg, 0, maxLent)
	}
	ox.lent = append(ox.lent, seg{at: len(c.out.B), b: p})
	ox.lentBytes += len(p)
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
// frame's queue can be lent payloads only). outMu is held.
func (c *conn[F]) hasOutLocked() bool {
	return c.out != nil && (len(c.out.B) > 0 || c.lentBytesLocked() > 0)
}

// takeLentLocked takes the lent payloads for the batch c.out is about to
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

// returnLentLocked keeps the array of a written batch's lent for the next
// one, without references to the payloads. outMu is held.
func (c *conn[F]) returnLentLocked(lent []seg) {
	if lent == nil {
		return
	}
	clear(lent)
	if ox := c.ox; ox != nil && ox.lent == nil {
		ox.lent = lent[:0]
	}
}

// ownLentLocked copies the lent payloads into the queue, for a flusher
// goroutine that may write after the runner's input is gone. outMu is
// held.
func (c *conn[F]) ownLentLocked() {
	ox := c.ox
	if ox == nil || len(ox.lent) == 0 {
		return
	}
	nb := c.splice(c.out.B, ox.lent, 0)
	c.e.pool.Put(c.out)
	c.out = nb
	clear(ox.lent)
	ox.lent, ox.lentBytes = ox.lent[:0], 0
}

// dropLentLocked forgets the lent payloads of a queue being dropped.
// outMu is held.
func (c *conn[F]) dropLentLocked() {
	if ox := c.ox; ox != nil && ox.lent != nil {
		clear(ox.lent)
		ox.lent, ox.lentBytes = ox.lent[:0], 0
	}
}

// splice returns a pooled buffer holding the batch b with lent inserted,
// from byte skip on.
func (c *conn[F]) splice(b []byte, lent []seg, skip int) *bufpool.Buffer {
	size := len(b) - skip
	for _, s := range lent {
		size += len(s.b)
	}
	nb := c.e.pool.Get()
	if cap(nb.B) < size {
		nb.B = make([]byte, 0, size)
	}
	for i, n := 0, 2*len(lent)+1; i < n; i++ {
		p := piece(b, lent, i)
		if skip >= len(p) {
			skip -= len(p)
			continue
		}
		nb.B = append(nb.B, p[skip:]...)
		skip = 0
	}
	return nb
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
	for _, s := range lent {
		n += len(s.b)
	}
	return n
}
