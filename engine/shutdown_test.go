package engine

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mai-go/mai"
)

// The engine's stop under races: commands sent as it stops, an Admit that
// does not return, a connection adopted after a Shutdown gave up, timers
// set while it drains.

// TestCommandsAnsweredAtStop: goroutines send commands with unbuffered
// replies, and read each reply, while the engine stops. Every command
// taken is answered, also when its reader comes after the stop. Before,
// the reply could be dropped at the stop (its reader then waited for
// ever), and a reply goroutine started while the stop waited for the
// engine's goroutines made the WaitGroup panic.
func TestCommandsAnsweredAtStop(t *testing.T) {
	for range 30 {
		e, err := New(lengthField(t, 1<<10), newRecorder(t))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					reply := make(chan Result)
					select {
					case e.Commands() <- SendCmd[[]byte]{ID: mai.ConnID(1), Frame: []byte("x"), Reply: reply}:
					case <-e.Done():
						return
					}
					select {
					case <-reply:
					case <-time.After(waitLimit):
						errs <- errors.New("a command taken was never answered")
						return
					}
				}
			}()
		}
		if err := e.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}

// newGateAdmit returns a recorder whose Admit signals in and then waits
// for release (blockingAdmitter, command_test.go).
func newGateAdmit(t *testing.T) *blockingAdmitter {
	return &blockingAdmitter{recorder: newRecorder(t), in: make(chan struct{}, 16), release: make(chan struct{})}
}

// TestShutdownCtxWhileAdmitBlocks: an accept loop is in the handler's
// Admit, which does not return. Shutdown still returns when its ctx ends
// (it waited for the accept loop before), and once Admit returns, the
// connection it admitted is refused and the engine stops.
func TestShutdownCtxWhileAdmitBlocks(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		h := newGateAdmit(t)
		e, err := New(lengthField(t, 1<<10), h, mai.WithTransport(tr))
		if err != nil {
			t.Fatal(err)
		}
		addr, err := e.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c := dial(t, addr.String())
		recv(t, h.in, "Admit")
		shutdownTimesOut(t, e, 50*time.Millisecond)
		close(h.release)
		recv(t, e.Done(), "the engine's stop")
		expectClosedByPeer(t, c)
		if n := e.Len(); n != 0 {
			t.Errorf("%d connections after the stop", n)
		}
	})
}

// TestAdoptAfterExpiredShutdown: a Dial is in Admit when Shutdown begins,
// and Shutdown's ctx ends first. The connection adopted afterwards is
// aborted like the others (its queue dropped), not closed in order: with
// no write timeout and a peer that reads nothing, an orderly close never
// ends, nor did the engine.
func TestAdoptAfterExpiredShutdown(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		peer := make(chan net.Conn, 1)
		go func() {
			if c, err := ln.Accept(); err == nil {
				peer <- c // reads nothing
			}
		}()
		h := newGateAdmit(t)
		big := make([]byte, 1<<20)
		h.onReady = func(c mai.Context[[]byte]) error {
			for range 16 {
				_ = c.Send(big)
			}
			return nil
		}
		e, err := New(lengthField(t, 2<<20), h, mai.WithTransport(tr), mai.WithWriteTimeout(0),
			mai.WithWriteBufferWaterMarks(32<<20, 64<<20))
		if err != nil {
			t.Fatal(err)
		}
		dialed := make(chan error, 1)
		go func() {
			_, err := e.Dial(context.Background(), "tcp", ln.Addr().String())
			dialed <- err
		}()
		recv(t, h.in, "Admit")
		shutdownTimesOut(t, e, 20*time.Millisecond)
		close(h.release)
		recv(t, dialed, "Dial")
		recv(t, e.Done(), "the engine's stop")
		(<-peer).Close()
	})
}

// engineTimerRecorder is a recorder that implements
// protocol.EngineTimerHandler.
type engineTimerRecorder struct{ *recorder }

func (engineTimerRecorder) OnEngineTimer(mai.TimerID, any) {}

// TestSetTimerAfterShutdownBegan: once Shutdown has begun, SetTimer fails
// with ErrShutdown, also while connections still drain (an OnFrame holds
// one open here). Before, it succeeded until the last connection was gone.
func TestSetTimerAfterShutdownBegan(t *testing.T) {
	r := engineTimerRecorder{newRecorder(t)}
	entered, release := make(chan struct{}, 1), make(chan struct{})
	r.onFrame = func(mai.Context[[]byte], []byte) error {
		entered <- struct{}{}
		<-release
		return nil
	}
	e, addr := server(t, r, lengthField(t, 1<<10))
	c := dial(t, addr)
	recv(t, r.ready, "ready")
	if _, err := c.Write(frame([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	recv(t, entered, "OnFrame")
	stopped := make(chan error, 1)
	go func() { stopped <- e.Shutdown(context.Background()) }()
	eventually(t, "SetTimer to fail once the shutdown began", func() bool {
		_, err := e.SetTimer(time.Hour, nil)
		if err != nil && !errors.Is(err, mai.ErrShutdown) {
			t.Fatalf("SetTimer: %v, want ErrShutdown", err)
		}
		return err != nil
	})
	select {
	case <-e.Done():
		t.Fatal("the engine stopped while an OnFrame held a connection")
	default:
	}
	close(release)
	if err := recv(t, stopped, "Shutdown"); err != nil {
		t.Fatal(err)
	}
}

// TestShutdownNilCtx: Shutdown(nil) is an error, not a panic after the
// shutdown began (found by a review), and stops nothing.
func TestShutdownNilCtx(t *testing.T) {
	_, addr := server(t, echo{}, lengthField(t, 1<<10))
	e, err := New(lengthField(t, 1<<10), echo{})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, e)
	//lint:ignore SA1012 a nil ctx is the misuse under test
	if err := e.Shutdown(nil); !errors.Is(err, mai.ErrInvalidOption) {
		t.Fatalf("Shutdown(nil): %v, want ErrInvalidOption", err)
	}
	if _, err := e.Dial(context.Background(), "tcp", addr); err != nil {
		t.Fatalf("Dial after Shutdown(nil): %v", err)
	}
}

// shutdownTimesOut calls Shutdown with a ctx that ends after d, and wants
// its deadline back: something keeps the shutdown from finishing.
func shutdownTimesOut(t *testing.T, e *ProtocolEngine[[]byte], d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := e.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want its ctx's deadline", err)
	}
}
