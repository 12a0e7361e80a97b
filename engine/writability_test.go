package engine

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/protocol"
)

// gateWriter is a transport whose socket takes nothing until open is
// closed, and then everything.
type gateWriter struct{ open chan struct{} }

func (g *gateWriter) write(p []byte) (int, error) {
	<-g.open
	return len(p), nil
}
func (*gateWriter) waitWritable() error { return nil }
func (*gateWriter) close()              {}

// writabilityLog records OnWritabilityChanged calls.
type writabilityLog struct {
	protocol.Base[[]byte]
	calls []bool
}

func (w *writabilityLog) OnWritabilityChanged(_ mai.Context[[]byte], writable bool) {
	w.calls = append(w.calls, writable)
}

// TestWritabilityAfterQuickDrain: a queue that crosses the high water mark
// and drains below the low one before the runner reports writability is
// still reported as both changes, false then true. Reporting only the
// state "as it is now" once told nothing, so a handler that met
// ErrBackpressure and waited for OnWritabilityChanged(true) waited forever.
func TestWritabilityAfterQuickDrain(t *testing.T) {
	h := &writabilityLog{}
	e, err := New(lengthField(t, 1<<10), h, mai.WithWriteBufferWaterMarks(0, 256))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, e)
	gate := &gateWriter{open: make(chan struct{})}
	c := bareConn(t, e, gate)

	// A callback runs: its Sends fill the queue until it refuses, which
	// hands the queue to a flusher goroutine.
	c.serial.Lock()
	c.setFlag(flRunning)
	refused := false
	for range 100 {
		if err := c.Send(make([]byte, 64)); err != nil {
			if !errors.Is(err, mai.ErrBackpressure) {
				t.Fatal(err)
			}
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("Send never met backpressure")
	}
	// The socket takes it all before the callback ends.
	close(gate.open)
	deadline := time.Now().Add(waitLimit)
	for {
		c.outMu.Lock()
		drained := !c.flushing && c.writable
		c.outMu.Unlock()
		if drained {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the queue did not drain")
		}
		runtime.Gosched()
	}
	c.release() // the runner reports writability now
	if len(h.calls) != 2 || h.calls[0] || !h.calls[1] {
		t.Fatalf("OnWritabilityChanged calls %v, want [false true]", h.calls)
	}
}

// orderLog records OnWritabilityChanged and OnFrame calls in one list.
type orderLog struct {
	protocol.Base[[]byte]
	calls []string
}

func (o *orderLog) OnWritabilityChanged(_ mai.Context[[]byte], writable bool) {
	o.calls = append(o.calls, fmt.Sprintf("writable %v", writable))
}

func (o *orderLog) OnFrame(_ mai.Context[[]byte], f []byte) error {
	o.calls = append(o.calls, "frame "+string(f))
	return nil
}

// TestWritabilityBeforeFrames: a pause ends (the flusher makes the
// connection writable and clears the pause) and input arrives before the
// flusher posted its writability event. The handler that was told "not
// writable" hears "writable" before the frame, whether the frame comes in
// a new input or was held by the pause.
func TestWritabilityBeforeFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(c *conn[[]byte])
	}{
		{"new input", func(c *conn[[]byte]) { c.input(frame([]byte("a"))) }},
		{"held input", func(c *conn[[]byte]) {
			c.serial.Lock()
			c.setFlag(flRunning)
			c.appendPending(frame([]byte("a")))
			c.decodePending()
			c.release()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &orderLog{}
			e, err := New(lengthField(t, 1<<10), h)
			if err != nil {
				t.Fatal(err)
			}
			defer shutdown(t, e)
			c := bareConn(t, e, &discard{})
			// Told "not writable" by an earlier event; the queue has
			// drained since, and the event telling it is not posted yet.
			c.toldWritable = false
			tc.run(c)
			want := []string{"writable true", "frame a"}
			if !slices.Equal(h.calls, want) {
				t.Fatalf("calls %q, want %q", h.calls, want)
			}
		})
	}
}
