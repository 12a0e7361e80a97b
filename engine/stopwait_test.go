package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/mai-go/mai"
)

// wgCount reads the counter of a sync.WaitGroup (the high 32 bits of its
// state word, its first field after a zero-size noCopy). ok is false when
// that layout does not hold in this Go version, checked on a WaitGroup of
// its own.
func wgCount(e *ProtocolEngine[[]byte]) (n int32, ok bool) {
	count := func(p unsafe.Pointer) int32 { return int32((*atomic.Uint64)(p).Load() >> 32) }
	var probe struct{ wg sync.WaitGroup }
	probe.wg.Add(3)
	ok = count(unsafe.Pointer(&probe.wg)) == 3
	probe.wg.Add(-3)
	return count(unsafe.Pointer(&e.wg)), ok
}

// TestNoGoroutineAfterDone: a large Send from outside the callbacks
// writes part of its frame and hands the rest to a new flusher goroutine.
// When Shutdown's ctx has ended, the connection is aborted meanwhile and
// the engine stops: the flusher was once counted after the stop's wait
// for the engine's goroutines began, so an engine goroutine outlived
// Done, the race detector saw the WaitGroup reused, and now and then
// sync panicked ("WaitGroup is reused before previous Wait has
// returned"). Found by a review: 44-87 of 200 rounds per transport.
func TestNoGoroutineAfterDone(t *testing.T) {
	const rounds = 40
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		late := 0
		for range rounds {
			r := newRecorder(t)
			e, err := New(lengthField(t, 8<<20), r, mai.WithTransport(tr), mai.WithListenControl(sockBufs(0, 8<<10)))
			if err != nil {
				t.Fatal(err)
			}
			addr, err := e.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			_ = dialBufs(t, addr.String(), 4<<10, 0)
			cx := recv(t, r.ready, "OnReady")
			sent := make(chan struct{})
			go func() {
				defer close(sent)
				_ = cx.Send(make([]byte, 4<<20))
			}()
			ended, cancel := context.WithCancel(context.Background())
			cancel()
			_ = e.Shutdown(ended)
			recv(t, e.Done(), "Done")
			recv(t, sent, "the Send to return")
			n, ok := wgCount(e)
			if !ok {
				t.Skip("sync.WaitGroup's layout changed: the count cannot be read")
			}
			if n != 0 {
				late++
			}
		}
		if late > 0 {
			t.Errorf("%d of %d rounds: an engine goroutine started after Done", late, rounds)
		}
	})
}
