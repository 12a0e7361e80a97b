package engine

import (
	"sync"
	"testing"

	"github.com/mai-go/mai"
)

// TestConcurrentPosts: while a client's frames are echoed, other goroutines
// post to the same connection (Do, SetTimer) and read it (Context, Info),
// the paths that share the xmu lock with the mailbox. Every posted function
// and timer runs exactly once, never concurrently with another callback
// (the recorder checks), and every reply arrives; nothing deadlocks.
func TestConcurrentPosts(t *testing.T) {
	const posters, perPoster, frames = 4, 100, 400
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newRecorder(t)
		r.onFrame = func(c mai.Context[[]byte], f []byte) error { return c.Send(f) }
		r.onTimeout = func(c mai.Context[[]byte], to mai.Timeout) error {
			return c.Send([]byte("timer"))
		}
		e, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr),
			mai.WithWriteBufferWaterMarks(1<<20, 2<<20))
		cl := dial(t, addr)
		ctx := recv(t, r.ready, "ready")
		id := ctx.ID()

		var wg sync.WaitGroup
		errs := make(chan error, posters+1)
		for range posters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perPoster {
					if err := e.Do(id, func(c mai.Context[[]byte]) { _ = c.Send([]byte("do")) }); err != nil {
						errs <- err
						return
					}
					if _, err := ctx.SetTimer(0, nil); err != nil {
						errs <- err
						return
					}
					_ = ctx.Context()
					if _, err := e.Info(id); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range frames {
				if _, err := cl.Write(frame([]byte("echo"))); err != nil {
					errs <- err
					return
				}
			}
		}()

		got := map[string]int{}
		for range frames + 2*posters*perPoster {
			f, err := readFrame(cl)
			if err != nil {
				t.Fatalf("after %v: %v", got, err)
			}
			got[string(f)]++
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		want := map[string]int{"echo": frames, "do": posters * perPoster, "timer": posters * perPoster}
		for k, n := range want {
			if got[k] != n {
				t.Errorf("%d %q replies, want %d (all: %v)", got[k], k, n, got)
			}
		}
		cl.Close()
		recv(t, r.closed, "OnClosed")
		if err := e.Do(id, func(mai.Context[[]byte]) { t.Error("Do ran after OnClosed") }); err == nil {
			t.Error("Do after OnClosed: no error")
		}
		r.check()
	})
}
