package engine

import (
	"errors"
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

// TestErrClosedFromOnFrameAfterClose: an OnFrame that closes its
// connection and then returns the error of a Send (which wraps
// ErrClosed) reports nothing new: no OnError, and OnClosed gets the
// close's own cause (nil for Close). The connection ends as Close asked,
// after the reply queued before it. Another error would be reported.
func TestErrClosedFromOnFrameAfterClose(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newRecorder(t)
		sendErrs := make(chan error, 1)
		r.onFrame = func(c mai.Context[[]byte], f []byte) error {
			if err := c.Send(f); err != nil {
				return err
			}
			_ = c.Close()
			err := c.Send(f)
			sendErrs <- err
			return err
		}
		_, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr))
		cl := dial(t, addr)
		ctx := recv(t, r.ready, "ready")
		if _, err := cl.Write(frame([]byte("bye"))); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, sendErrs, "the Send after Close"); !errors.Is(err, mai.ErrClosed) {
			t.Fatalf("Send after Close: %v, want ErrClosed", err)
		}
		if f, err := readFrame(cl); err != nil || string(f) != "bye" {
			t.Fatalf("reply %q, %v", f, err)
		}
		expectClosedByPeer(t, cl)
		recv(t, r.closed, "OnClosed")
		if errs := r.errorsOf(ctx.ID()); len(errs) > 0 {
			t.Errorf("OnError: %v", errs)
		}
		if cause := r.causeOf(ctx.ID()); cause != nil {
			t.Errorf("OnClosed: %v, want nil", cause)
		}
		r.check()
	})
}
