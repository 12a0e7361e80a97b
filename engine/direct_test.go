package engine

import (
	"bufio"
	"bytes"
	"errors"
	"sync"
	"testing"
	"unsafe"

	"github.com/mai-go/mai"
)

// takeTransport is a vectorWriter whose socket takes at most limit bytes
// of the first write or writev, then everything. It keeps a copy of what
// it was given and remembers where each writev's payload lay.
type takeTransport struct {
	mu       sync.Mutex
	limit    int
	calls    int
	got      []byte
	payloads []*byte // writev's p, by address
}

func (f *takeTransport) take(bufs ...[]byte) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	n := 0
	for _, b := range bufs {
		k := len(b)
		if f.calls == 1 {
			k = min(k, f.limit-n)
		}
		f.got = append(f.got, b[:k]...)
		n += k
	}
	return n
}

func (f *takeTransport) write(p []byte) (int, error) { return f.take(p), nil }

func (f *takeTransport) writev(h, p []byte) (int, error) {
	f.mu.Lock()
	if len(p) > 0 {
		f.payloads = append(f.payloads, &p[0])
	}
	f.mu.Unlock()
	return f.take(h, p), nil
}

func (*takeTransport) waitWritable() error { return nil }
func (*takeTransport) close()              {}

// TestSendDirect sends a frame over directWriteMin from outside any
// callback to a transport that takes all of it, or only part (none, part
// of the header, the header, part of the payload), and then overwrites the
// caller's bytes: the payload must have gone to writev as the caller's own
// slice (no copy), and what the socket did not take must have been copied
// before Send returned.
func TestSendDirect(t *testing.T) {
	const size = directWriteMin + 100
	for _, tc := range []struct {
		name  string
		limit int
	}{
		{"all", 1 << 30},
		{"none", 0},
		{"part of the header", 2},
		{"the header", 4},
		{"part of the payload", 4 + 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(lengthField(t, 1<<20), echo{})
			if err != nil {
				t.Fatal(err)
			}
			tr := &takeTransport{limit: tc.limit}
			c := bareConn(t, e, tr)
			if !directCodec(c.codec) || c.caps&capDirect == 0 {
				t.Fatalf("%T over %T: no direct writes", c.codec, tr)
			}

			payload := bytes.Repeat([]byte("mai!"), size/4)
			want := frame(payload)
			if err := c.Send(payload); err != nil {
				t.Fatal(err)
			}
			for i := range payload {
				payload[i] = 'X' // the caller's bytes are its own again
			}
			shutdown(t, e) // waits for the flusher goroutine, if any
			if !bytes.Equal(tr.got, want) {
				t.Errorf("the socket got %d bytes %.12q..., want the %d of the frame as sent", len(tr.got), tr.got, len(want))
			}
			if len(tr.payloads) != 1 || tr.payloads[0] != unsafe.SliceData(payload) {
				t.Errorf("writev saw payloads at %v, want the caller's slice %p once", tr.payloads, unsafe.SliceData(payload))
			}
			info := c.Info()
			if info.FramesOut != 1 || info.BytesOut != uint64(len(want)) || info.Queued != 0 {
				t.Errorf("Info: %d frames, %d bytes out, %d queued; want 1, %d, 0", info.FramesOut, info.BytesOut, info.Queued, len(want))
			}
		})
	}
}

// TestSendDirectSmallOrQueued checks that Send copies a payload under
// directWriteMin, and any payload while other bytes are queued, so they
// keep their order behind what is queued.
func TestSendDirectSmallOrQueued(t *testing.T) {
	e, err := New(lengthField(t, 1<<20), echo{}, mai.WithWriteBufferWaterMarks(4*directWriteMin, 8*directWriteMin))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, e)
	tr := &takeTransport{limit: 1 << 30}
	c := bareConn(t, e, tr)
	// A runner's batch: Sends queue, the runner flushes once at the end.
	c.serial.Lock()
	c.setFlag(flRunning)
	small := bytes.Repeat([]byte{'s'}, directWriteMin-1)
	large := bytes.Repeat([]byte{'L'}, directWriteMin)
	for _, p := range [][]byte{small, large} {
		if err := c.Send(p); err != nil {
			t.Fatal(err)
		}
	}
	c.release()
	if len(tr.payloads) != 0 {
		t.Errorf("writev called %d times, want none: the first frame is small, the second queued behind it", len(tr.payloads))
	}
	if want := append(frame(small), frame(large)...); !bytes.Equal(tr.got, want) {
		t.Errorf("the socket got %d bytes, want the %d of both frames in order", len(tr.got), len(want))
	}
}

// TestDirectWriteEcho echoes large frames (written straight from the input
// by Send in OnFrame, including frames rebuilt from several reads) between
// small ones, over every transport.
func TestDirectWriteEcho(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		_, addr := server(t, echo{}, lengthField(t, 1<<20), mai.WithTransport(tr))
		c := dial(t, addr)
		var in []byte
		var payloads [][]byte
		for i, size := range []int{1, 300 << 10, 5, directWriteMin, directWriteMin - 1, 64 << 10, 0} {
			p := bytes.Repeat([]byte{byte('a' + i)}, size)
			payloads = append(payloads, p)
			in = append(in, frame(p)...)
		}
		werr := make(chan error, 1)
		go func() { _, err := c.Write(in); werr <- err }()
		br := bufio.NewReader(c)
		for i, want := range payloads {
			got, err := readFrame(br)
			if err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("frame %d: %d bytes %.8q..., want %d of %q", i, len(got), got, len(want), want[:min(1, len(want))])
			}
		}
		if err := recv(t, werr, "the client's write"); err != nil {
			t.Fatal(err)
		}
	})
}

// failTransport is a vectorWriter whose socket is gone.
type failTransport struct{ takeTransport }

var errGone = errors.New("peer gone")

func (*failTransport) writev(h, p []byte) (int, error) { return 0, errGone }

// TestSendDirectBadInput: a large frame over the codec's limit is refused
// before anything is written or queued, and a direct write that fails
// aborts the connection with the transport's error.
func TestSendDirectBadInput(t *testing.T) {
	e, err := New(lengthField(t, directWriteMin), echo{})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, e)

	tr := &takeTransport{limit: 1 << 30}
	c := bareConn(t, e, tr)
	err = c.Send(make([]byte, directWriteMin+1))
	if !errors.Is(err, mai.ErrEncode) || !errors.Is(err, mai.ErrFrameTooLarge) {
		t.Errorf("Send over MaxLength: %v, want ErrEncode and ErrFrameTooLarge", err)
	}
	if info := c.Info(); tr.calls != 0 || info.Queued != 0 || info.FramesOut != 0 {
		t.Errorf("after the refused frame: %d writes, %d bytes queued, %d frames out; want none", tr.calls, info.Queued, info.FramesOut)
	}

	gone := bareConn(t, e, &failTransport{})
	if err := gone.Send(make([]byte, directWriteMin)); err != nil {
		t.Fatalf("Send: %v (the write fails after the frame was accepted)", err)
	}
	gone.outMu.Lock()
	state, cause, flushing := gone.state, gone.cause, gone.flushing
	gone.outMu.Unlock()
	if state == stateOpen || !errors.Is(cause, errGone) || flushing {
		t.Errorf("after the failed write: state %v, cause %v, flushing %v; want closing with the transport's error, no flusher", state, cause, flushing)
	}
	if err := gone.Send([]byte("later")); !errors.Is(err, mai.ErrClosed) {
		t.Errorf("Send after the failed write: %v, want ErrClosed", err)
	}
}
