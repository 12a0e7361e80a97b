package engine

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/codec"
)

// within reports whether p lies in buf.
func within(p *byte, buf []byte) bool {
	a, lo := uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return a >= lo && a < lo+uintptr(len(buf))
}

// echoInput hands in to a bare connection of an echo server over tr, as
// one read, then overwrites in, as the transport does with its buffer
// once input returns, and shuts the engine down (which waits for a
// flusher goroutine). It returns the connection and what the read was.
func echoInput(t *testing.T, tr *takeTransport, in []byte, opts ...mai.Option) *conn[[]byte] {
	t.Helper()
	e, err := New(lengthField(t, 1<<20), echo{}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	c := bareConn(t, e, tr)
	c.input(in)
	for i := range in {
		in[i] = 'X'
	}
	shutdown(t, e)
	return c
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

// TestLendInput echoes one read of large and small frames: the large
// payloads must reach the socket from the input itself (no copy), and
// whatever the socket does not take at once must be copied before input
// returns, since the transport reuses its buffer then.
func TestLendInput(t *testing.T) {
	sizes := []int{lendMin, 20, 64 << 10, lendMin - 1, 100 << 10, 0}
	lentSizes := 3 // lendMin, 64 KiB, 100 KiB
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
			in, _ := frames(sizes...)
			want := bytes.Clone(in)
			tr := &takeTransport{limit: tc.limit}
			c := echoInput(t, tr, in)
			if !bytes.Equal(tr.got, want) {
				t.Errorf("the socket got %d bytes %.12q..., want the %d read", len(tr.got), tr.got, len(want))
			}
			lent := 0
			for _, p := range tr.payloads {
				if !within(p, in) {
					t.Errorf("a lent payload at %p is not in the input", p)
				}
				lent++
			}
			if lent != lentSizes {
				t.Errorf("%d payloads written from the input, want %d (those of %d bytes or more)", lent, lentSizes, lendMin)
			}
			info := c.Info()
			if info.FramesOut != uint64(len(sizes)) || info.BytesOut != uint64(len(want)) || info.Queued != 0 {
				t.Errorf("Info: %d frames, %d bytes out, %d queued; want %d, %d, 0", info.FramesOut, info.BytesOut, info.Queued, len(sizes), len(want))
			}
		})
	}
}

// TestLendLimits covers the frames that are copied even though they are
// large: those past maxLent in one read, those rebuilt from several reads,
// and the ones queued when a Send crosses the high water mark (the queue
// then goes to a flusher goroutine, which may write after the input is
// gone). Each case checks the bytes the socket got after the input was
// overwritten.
func TestLendLimits(t *testing.T) {
	t.Run("more than maxLent", func(t *testing.T) {
		sizes := make([]int, maxLent+3)
		for i := range sizes {
			sizes[i] = lendMin
		}
		in, _ := frames(sizes...)
		want := bytes.Clone(in)
		tr := &takeTransport{limit: 1 << 30}
		// High water marks over the read: the runner flushes it all.
		echoInput(t, tr, in, mai.WithWriteBufferWaterMarks(len(in), 2*len(in)))
		if !bytes.Equal(tr.got, want) {
			t.Errorf("the socket got %d bytes, want the %d read", len(tr.got), len(want))
		}
		if len(tr.payloads) != maxLent || tr.calls != 1 {
			t.Errorf("%d payloads lent in %d writes, want %d in 1", len(tr.payloads), tr.calls, maxLent)
		}
	})

	t.Run("split over reads", func(t *testing.T) {
		in, _ := frames(lendMin+10, lendMin)
		want := bytes.Clone(in)
		e, err := New(lengthField(t, 1<<20), echo{})
		if err != nil {
			t.Fatal(err)
		}
		tr := &takeTransport{limit: 1 << 30}
		c := bareConn(t, e, tr)
		// The first frame arrives in two reads, the second in the second.
		cut := lendMin / 2
		first, second := bytes.Clone(in[:cut]), bytes.Clone(in[cut:])
		c.input(first)
		c.input(second)
		clear(first)
		clear(second)
		shutdown(t, e)
		if !bytes.Equal(tr.got, want) {
			t.Errorf("the socket got %d bytes, want the %d read", len(tr.got), len(want))
		}
		if len(tr.payloads) != 1 || !within(tr.payloads[0], second) {
			t.Errorf("lent payloads %v, want only the second frame's, from the second read", tr.payloads)
		}
	})

	t.Run("over the high water mark", func(t *testing.T) {
		in, _ := frames(lendMin, lendMin, lendMin, lendMin)
		want := bytes.Clone(in)
		// The second frame crosses the high mark: the queue goes to a
		// flusher goroutine, decoding pauses and resumes once it drained.
		tr := &takeTransport{limit: 1 << 30}
		c := echoInput(t, tr, in, mai.WithWriteBufferWaterMarks(1, 2*lendMin))
		if !bytes.Equal(tr.got, want) {
			t.Errorf("the socket got %d bytes %.12q..., want the %d read", len(tr.got), tr.got, len(want))
		}
		for _, p := range tr.payloads {
			if within(p, in) {
				t.Errorf("a payload was written from the input by a flusher goroutine")
			}
		}
		if info := c.Info(); info.FramesOut != 4 || info.Queued != 0 {
			t.Errorf("Info: %d frames out, %d queued; want 4, 0", info.FramesOut, info.Queued)
		}
	})
}

// TestLendRaw lends a frame of codec.Raw, which has no header: the queue
// is then a lent payload alone, which the runner must still flush.
func TestLendRaw(t *testing.T) {
	raw, err := codec.NewRaw(codec.RawConfig{MaxLength: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(raw.Factory(), echo{})
	if err != nil {
		t.Fatal(err)
	}
	tr := &takeTransport{limit: 1 << 30}
	c := bareConn(t, e, tr)
	in := bytes.Repeat([]byte("raw!"), lendMin/4)
	want := bytes.Clone(in)
	c.input(in)
	clear(in)
	shutdown(t, e)
	if !bytes.Equal(tr.got, want) || len(tr.payloads) != 1 {
		t.Errorf("the socket got %d bytes (%d lent payloads), want the %d read, lent", len(tr.got), len(tr.payloads), len(want))
	}
}

// sendClose sends each frame back and closes the connection.
type sendClose struct{ echo }

func (sendClose) OnFrame(c mai.Context[[]byte], f []byte) error {
	if err := c.Send(f); err != nil {
		return err
	}
	return c.Close()
}

// TestLendThenClose: a Close after Sending a lent frame writes the frame
// before the connection closes; a Send after the Close is refused.
func TestLendThenClose(t *testing.T) {
	e, err := New(lengthField(t, 1<<20), sendClose{})
	if err != nil {
		t.Fatal(err)
	}
	tr := &takeTransport{limit: 1 << 30}
	c := bareConn(t, e, tr)
	in, _ := frames(lendMin, lendMin)
	want := bytes.Clone(in[:4+lendMin])
	c.input(in)
	clear(in)
	shutdown(t, e)
	if !bytes.Equal(tr.got, want) || len(tr.payloads) != 1 {
		t.Errorf("the socket got %d bytes (%d lent), want the first frame's %d, lent", len(tr.got), len(tr.payloads), len(want))
	}
	c.outMu.Lock()
	state := c.state
	c.outMu.Unlock()
	if state != stateClosed {
		t.Errorf("state %v after the flush, want closed", state)
	}
}

// TestLendReleaseWindow: between the runner letting go of serial and its
// flush, another goroutine's Send or Close starts a flusher goroutine,
// which may write after the input is gone: the lent payloads must be
// copied first.
func TestLendReleaseWindow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		other func(c *conn[[]byte]) error
		want  func(payload []byte) []byte
	}{
		{"Send", func(c *conn[[]byte]) error { return c.Send([]byte("other")) },
			func(p []byte) []byte { return append(frame(p), frame([]byte("other"))...) }},
		{"Close", func(c *conn[[]byte]) error { return c.Close() }, frame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(lengthField(t, 1<<20), echo{})
			if err != nil {
				t.Fatal(err)
			}
			tr := &takeTransport{limit: 1 << 30}
			c := bareConn(t, e, tr)
			in, payloads := frames(lendMin)
			want := tc.want(payloads[0])
			// A run that lends the frame decoded from in...
			c.serial.Lock()
			c.setFlag(flRunning)
			c.lendInput(in)
			if err := c.Send(in[4:]); err != nil {
				t.Fatal(err)
			}
			c.lendInput(nil)
			// ...lets go of serial, and before its flush (flushOwed) the
			// other goroutine comes.
			c.clearFlag(flRunning)
			c.serial.Unlock()
			if err := tc.other(c); err != nil {
				t.Fatal(err)
			}
			c.flushOwed()
			clear(in)
			shutdown(t, e)
			if !bytes.Equal(tr.got, want) {
				t.Errorf("the socket got %d bytes %.12q..., want %d", len(tr.got), tr.got, len(want))
			}
			if len(tr.payloads) != 0 {
				t.Errorf("%d payloads written in place by the flusher goroutine, want none", len(tr.payloads))
			}
		})
	}
}
