package engine

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/codec"
)

// lendTransport is a transport that lends its input, as the netpoll
// transport does, with a socket that takes at most limit bytes of the
// first write, then everything (or fails every write, with fail). Its
// input is the buffer a test hands to input: when the transport gets it
// back (no hold was taken, or the last holder released it), it overwrites
// it, as netpoll reuses a released buffer node, so a lent payload read
// after that reaches the socket as 'X's.
type lendTransport struct {
	takeTransport
	fail   bool
	noHold bool // hold fails, as for an input netpoll cannot slice

	in    []byte
	holds []*fakeHeld
	// lentWrites counts the lent pieces the socket was given, and late
	// those given after their hold was released.
	lentWrites, late int
}

func (f *lendTransport) hold() heldInput {
	if f.noHold {
		return nil
	}
	h := &fakeHeld{in: f.in}
	h.refs = 1
	f.mu.Lock()
	f.holds = append(f.holds, h)
	f.mu.Unlock()
	return h
}

func (f *lendTransport) writeBatch(b []byte, lent []seg, off int) (int, error) {
	if f.fail {
		return 0, errGone
	}
	f.mu.Lock()
	for _, s := range lent {
		f.lentWrites++
		if s.h.(*fakeHeld).released() {
			f.late++
		}
	}
	f.mu.Unlock()
	var pieces [][]byte
	for i := range 2*len(lent) + 1 {
		p := piece(b, lent, i)
		if off >= len(p) {
			off -= len(p)
			continue
		}
		pieces, off = append(pieces, p[off:]), 0
	}
	return f.take(pieces...), nil
}

func (f *lendTransport) writeBatchAll(b []byte, lent []seg, off int) error {
	if f.fail {
		return errGone
	}
	_, err := f.writeBatch(b, lent, off)
	return err
}

// fakeHeld is a hold on a lendTransport's input.
type fakeHeld struct {
	mu        sync.Mutex
	in        []byte
	refs      int
	abandoned bool
}

func (h *fakeHeld) retain() {
	h.mu.Lock()
	h.refs++
	h.mu.Unlock()
}

func (h *fakeHeld) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refs <= 0 {
		panic("release of a released hold")
	}
	if h.refs--; h.refs == 0 && !h.abandoned {
		for i := range h.in {
			h.in[i] = 'X'
		}
	}
}

func (h *fakeHeld) abandon() {
	h.mu.Lock()
	h.abandoned = true
	h.mu.Unlock()
	h.release()
}

func (h *fakeHeld) released() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refs == 0
}

// readLent hands in to c as one read event of tr, with its payloads
// lendable, and gives the input back to tr as the netpoll transport does:
// overwritten at once, unless a hold was taken.
func readLent(c *conn[[]byte], tr *lendTransport, in []byte) {
	tr.mu.Lock()
	tr.in = in
	n := len(tr.holds)
	tr.mu.Unlock()
	c.lendFrom(tr, in)
	c.input(in)
	c.lendEnd()
	tr.mu.Lock()
	held := len(tr.holds) > n
	tr.mu.Unlock()
	if !held {
		for i := range in {
			in[i] = 'X'
		}
	}
}

// lentCount is the number of payloads c lent so far.
func lentCount(c *conn[[]byte]) int {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.ox == nil {
		return 0
	}
	return int(c.ox.lentCount)
}

// checkHolds fails the test if a hold of tr is still held, or was
// abandoned when abandoned is false (or not when it is true).
func checkHolds(t *testing.T, tr *lendTransport, abandoned bool) {
	t.Helper()
	for i, h := range tr.holds {
		h.mu.Lock()
		refs, ab := h.refs, h.abandoned
		h.mu.Unlock()
		if refs != 0 || ab != abandoned {
			t.Errorf("hold %d: %d holders left, abandoned %v; want 0, %v", i, refs, ab, abandoned)
		}
	}
}

// TestLend echoes reads of large and small frames through a transport
// that lends its input, whose socket takes all, or only part of the
// first write, so that the rest goes to a flusher goroutine. The large
// payloads decoded from a read must reach the socket from the input
// itself, while it is held (never after the last holder released it),
// and every hold must be released once the bytes are written.
func TestLend(t *testing.T) {
	sizes := []int{lendMin, 20, 64 << 10, lendMin - 1, 100 << 10, 0}
	const lentSizes = 3 // lendMin, 64 KiB, 100 KiB
	for _, tc := range []struct {
		name  string
		limit int
	}{
		{"all", 1 << 30},
		{"none", 0},
		{"part of a header", 2},
		{"part of a lent payload", 4 + 1000},
		{"up to a copied frame", 4 + lendMin + 4 + 10},
		{"all but the last byte", 4 + lendMin + 4 + 20 + 4 + 64<<10 + 4 + lendMin - 1 + 4 + 100<<10 + 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(lengthField(t, 1<<20), echo{})
			if err != nil {
				t.Fatal(err)
			}
			tr := &lendTransport{takeTransport: takeTransport{limit: tc.limit}}
			c := bareConn(t, e, tr)
			in, _ := frames(sizes...)
			want := bytes.Clone(in)
			readLent(c, tr, in)
			shutdown(t, e) // waits for the flusher goroutine, if any
			if !bytes.Equal(tr.got, want) {
				t.Errorf("the socket got %d bytes %.12q..., want the %d read", len(tr.got), tr.got, len(want))
			}
			if n := lentCount(c); n != lentSizes || len(tr.holds) != 1 {
				t.Errorf("%d payloads lent on %d holds, want %d (those of %d bytes or more) on 1", n, len(tr.holds), lentSizes, lendMin)
			}
			if tr.late != 0 || tr.lentWrites < lentSizes {
				t.Errorf("%d lent pieces written, %d of them after their hold was released; want %d or more, none", tr.lentWrites, tr.late, lentSizes)
			}
			checkHolds(t, tr, false)
			info := c.Info()
			if info.FramesOut != uint64(len(sizes)) || info.BytesOut != uint64(len(want)) || info.Queued != 0 {
				t.Errorf("Info: %d frames, %d bytes out, %d queued; want %d, %d, 0", info.FramesOut, info.BytesOut, info.Queued, len(sizes), len(want))
			}
		})
	}
}

// TestLendLimits covers the payloads that are copied even though they are
// large (past maxLent in a batch, rebuilt from several reads, from an
// input that cannot be held), and a queue with lent payloads that goes to
// a flusher goroutine (a Send over the high water mark) or is dropped (an
// Abort) or whose write fails.
func TestLendLimits(t *testing.T) {
	newConn := func(t *testing.T, tr *lendTransport, opts ...mai.Option) (*ProtocolEngine[[]byte], *conn[[]byte]) {
		e, err := New(lengthField(t, 1<<20), echo{}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return e, bareConn(t, e, tr)
	}
	const all = 1 << 30

	t.Run("more than maxLent", func(t *testing.T) {
		sizes := make([]int, maxLent+3)
		for i := range sizes {
			sizes[i] = lendMin
		}
		in, _ := frames(sizes...)
		want := bytes.Clone(in)
		tr := &lendTransport{takeTransport: takeTransport{limit: all}}
		// High water marks over the read: the runner flushes it all.
		e, c := newConn(t, tr, mai.WithWriteBufferWaterMarks(len(in), 2*len(in)))
		readLent(c, tr, in)
		shutdown(t, e)
		if !bytes.Equal(tr.got, want) {
			t.Errorf("the socket got %d bytes, want the %d read", len(tr.got), len(want))
		}
		if n := lentCount(c); n != maxLent || tr.calls != 1 {
			t.Errorf("%d payloads lent, written in %d writes; want %d in 1", n, tr.calls, maxLent)
		}
		checkHolds(t, tr, false)
	})

	t.Run("split over reads", func(t *testing.T) {
		in, _ := frames(lendMin+10, lendMin)
		want := bytes.Clone(in)
		tr := &lendTransport{takeTransport: takeTransport{limit: all}}
		e, c := newConn(t, tr)
		// The first frame arrives in two reads, the second in the second.
		cut := lendMin / 2
		readLent(c, tr, bytes.Clone(in[:cut]))
		readLent(c, tr, bytes.Clone(in[cut:]))
		shutdown(t, e)
		if !bytes.Equal(tr.got, want) {
			t.Errorf("the socket got %d bytes, want the %d read", len(tr.got), len(want))
		}
		if n := lentCount(c); n != 1 || len(tr.holds) != 1 {
			t.Errorf("%d payloads lent on %d holds, want the second frame's only", n, len(tr.holds))
		}
		checkHolds(t, tr, false)
	})

	t.Run("cannot be held", func(t *testing.T) {
		in, _ := frames(lendMin, 64<<10)
		want := bytes.Clone(in)
		tr := &lendTransport{takeTransport: takeTransport{limit: 100}, noHold: true}
		e, c := newConn(t, tr)
		readLent(c, tr, in)
		shutdown(t, e)
		if !bytes.Equal(tr.got, want) {
			t.Errorf("the socket got %d bytes, want the %d read", len(tr.got), len(want))
		}
		if n := lentCount(c); n != 0 {
			t.Errorf("%d payloads lent, want none", n)
		}
	})

	t.Run("over the high water mark", func(t *testing.T) {
		in, _ := frames(lendMin, lendMin, lendMin, lendMin)
		want := bytes.Clone(in)
		// The second frame crosses the high mark: the queue, lent payloads
		// and all, goes to a flusher goroutine; decoding pauses (the rest
		// of the read is kept in the pending buffer) and resumes once the
		// queue drained.
		tr := &lendTransport{takeTransport: takeTransport{limit: all}}
		e, c := newConn(t, tr, mai.WithWriteBufferWaterMarks(1, 2*lendMin))
		readLent(c, tr, in)
		shutdown(t, e)
		if !bytes.Equal(tr.got, want) {
			t.Errorf("the socket got %d bytes %.12q..., want the %d read", len(tr.got), tr.got, len(want))
		}
		if n := lentCount(c); n != 2 || tr.late != 0 {
			t.Errorf("%d payloads lent, %d written after release; want the 2 sent before the pause, none", n, tr.late)
		}
		checkHolds(t, tr, false)
	})

	t.Run("dropped by Abort", func(t *testing.T) {
		in, _ := frames(64<<10, lendMin)
		tr := &lendTransport{takeTransport: takeTransport{limit: all}}
		e, err := New(lengthField(t, 1<<20), abortAfterSend{})
		if err != nil {
			t.Fatal(err)
		}
		c := bareConn(t, e, tr)
		readLent(c, tr, in)
		shutdown(t, e)
		if len(tr.got) != 0 {
			t.Errorf("the socket got %d bytes, want none (the queue was dropped)", len(tr.got))
		}
		if n := lentCount(c); n != 1 {
			t.Errorf("%d payloads lent, want 1 (the Send before Abort)", n)
		}
		checkHolds(t, tr, false)
	})

	t.Run("write fails", func(t *testing.T) {
		in, _ := frames(64<<10, lendMin)
		tr := &lendTransport{takeTransport: takeTransport{limit: all}, fail: true}
		e, c := newConn(t, tr)
		readLent(c, tr, in)
		shutdown(t, e)
		c.outMu.Lock()
		cause := c.cause
		c.outMu.Unlock()
		if !errors.Is(cause, errGone) {
			t.Errorf("cause %v, want the write's error", cause)
		}
		if n := lentCount(c); n != 2 {
			t.Errorf("%d payloads lent, want 2", n)
		}
		// The failed write may still refer to the bytes: they are
		// abandoned, never given back to the transport.
		checkHolds(t, tr, true)
	})
}

// frames returns the frames of payloads of the given sizes, one after
// the other, each payload a different letter.
func frames(sizes ...int) (all []byte, payloads [][]byte) {
	for i, size := range sizes {
		p := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		payloads = append(payloads, p)
		all = append(all, frame(p)...)
	}
	return all, payloads
}

// abortAfterSend echoes a frame, then aborts the connection.
type abortAfterSend struct{ echo }

func (abortAfterSend) OnFrame(c mai.Context[[]byte], f []byte) error {
	if err := c.Send(f); err != nil {
		return err
	}
	return c.Abort()
}

// TestLendRaw lends the payloads of a codec.Raw, whose queue holds no
// header bytes at all: a queue of lent payloads only must be written.
func TestLendRaw(t *testing.T) {
	raw, err := codec.NewRaw(codec.RawConfig{MaxLength: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(raw.Factory(), echo{})
	if err != nil {
		t.Fatal(err)
	}
	tr := &lendTransport{takeTransport: takeTransport{limit: 1000}}
	c := bareConn(t, e, tr)
	in := bytes.Repeat([]byte("raw!"), 20<<10/4)
	want := bytes.Clone(in)
	readLent(c, tr, in)
	shutdown(t, e)
	if !bytes.Equal(tr.got, want) {
		t.Errorf("the socket got %d bytes, want the %d read", len(tr.got), len(want))
	}
	if n := lentCount(c); n != 1 {
		t.Errorf("%d payloads lent, want 1", n)
	}
	checkHolds(t, tr, false)
}

// TestLendNetpoll echoes large frames, each with its own bytes, over the
// netpoll transport, which lends payloads from its input: every echo must
// come back intact, payloads must have been lent, and once the
// connections are gone no input may still be held. The second case
// closes a connection whose queue holds lent payloads the peer never
// read.
func TestLendNetpoll(t *testing.T) {
	if !netpollSupported {
		t.Skip("no netpoll on this platform")
	}
	const size = 64 << 10
	payload := func(i int) []byte {
		p := bytes.Repeat([]byte(fmt.Sprintf("%08d", i)), size/8)
		return p
	}
	t.Run("echo", func(t *testing.T) {
		r := newRecorder(t)
		r.onFrame = func(c mai.Context[[]byte], f []byte) error { return c.Send(f) }
		e, addr := server(t, r, lengthField(t, 1<<20), mai.WithTransport(mai.TransportNetpoll))
		cl := dial(t, addr)
		cc := recv(t, r.ready, "ready").(*conn[[]byte])
		// Frames go out in rounds of 8 until payloads were lent (netpoll
		// grows its read size from 4 KiB, so the first reads hold no
		// whole frame), bounded by a count.
		const maxRounds = 200
		sent := 0
		for round := 0; round < maxRounds && lentCount(cc) == 0; round++ {
			var in []byte
			for range 8 {
				in = append(in, frame(payload(sent))...)
				sent++
			}
			werr := make(chan error, 1)
			go func() { _, err := cl.Write(in); werr <- err }()
			for i := sent - 8; i < sent; i++ {
				got, err := readFrame(cl)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if !bytes.Equal(got, payload(i)) {
					t.Fatalf("frame %d came back as %.16q..., want %.16q...", i, got, payload(i))
				}
			}
			if err := recv(t, werr, "the client's write"); err != nil {
				t.Fatal(err)
			}
		}
		if lentCount(cc) == 0 {
			t.Fatalf("no payload lent in %d frames of %d bytes", sent, size)
		}
		t.Logf("%d of %d payloads lent", lentCount(cc), sent)
		_ = cl.Close()
		recv(t, r.closed, "closed")
		shutdown(t, e)
		if n := e.lentHeld.Load(); n != 0 {
			t.Errorf("%d inputs still held after shutdown", n)
		}
	})

	t.Run("peer leaves unread", func(t *testing.T) {
		r := newRecorder(t)
		full := make(chan struct{})
		var once sync.Once
		r.onFrame = func(c mai.Context[[]byte], f []byte) error {
			if err := c.Send(f); err != nil || !c.Info().Writable {
				once.Do(func() { close(full) })
			}
			return nil
		}
		e, addr := server(t, r, lengthField(t, 1<<20), mai.WithTransport(mai.TransportNetpoll),
			mai.WithWriteBufferWaterMarks(4*size, 16*size))
		cl := dial(t, addr)
		cc := recv(t, r.ready, "ready").(*conn[[]byte])
		// The peer writes and never reads: the server's queue fills up
		// with echoes, then the peer goes away.
		var in []byte
		for i := range 256 {
			in = append(in, frame(payload(i))...)
		}
		werr := make(chan error, 1)
		go func() { _, err := cl.Write(in); werr <- err }()
		recv(t, full, "a full queue")
		_ = cl.Close()
		recv(t, werr, "the client's write")
		recv(t, r.closed, "closed")
		shutdown(t, e)
		t.Logf("%d payloads lent", lentCount(cc))
		if n := e.lentHeld.Load(); n != 0 {
			t.Errorf("%d inputs still held after shutdown", n)
		}
	})
}
