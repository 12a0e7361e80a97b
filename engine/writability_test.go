package engine

import (
	"errors"
	"runtime"
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
