package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/mai-go/mai"
)

// skipWithoutLinger skips where the engine does not linger (it asks the
// kernel for a socket's unread input on linux only).
func skipWithoutLinger(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the close linger is linux only")
	}
}

// lingerCase is a paused echo server whose client pipelines without
// reading: when the test closes the server's side, the client is still
// sending, and the kernel holds input the server never read.
func lingerCase(t *testing.T, tr mai.Transport, opts ...mai.Option) (*recorder, *ProtocolEngine[[]byte], mai.Context[[]byte], net.Conn, []byte) {
	payload := bytes.Repeat([]byte{'p'}, 500)
	r, e, addr := pausingEchoServer(t, tr, 16<<10, opts...)
	c := dialBufs(t, addr, clientRcv, 0)
	cx := recv(t, r.ready, "OnReady")
	go func() {
		f := frame(payload)
		for range 40000 { // bounded: 20 MB
			if _, err := c.Write(f); err != nil {
				return
			}
		}
	}()
	eventually(t, "the server to pause", func() bool {
		in := cx.Info()
		return !in.Writable && in.BytesIn >= 16<<10
	})
	return r, e, cx, c, payload
}

// TestCloseLingers: Close writes what is queued, then closes, also while
// the peer is still sending. Closed at once, a socket holding unread input
// answers with a reset that drops what the kernel had not delivered yet,
// and the client got 40-60 of 71-74 replies (found by a review: std 6 of
// 8 runs, epoll 3 of 5). Lingering, the client gets every reply the
// server accepted, then the end of the stream, and OnClosed does not wait
// for the linger (an hour here, and the client neither stops sending nor
// closes until the end of the test).
func TestCloseLingers(t *testing.T) {
	skipWithoutLinger(t)
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r, _, cx, c, payload := lingerCase(t, tr, mai.WithCloseLinger(time.Hour))
		if err := cx.Close(); err != nil {
			t.Fatal(err)
		}
		sent := cx.Info().FramesOut // final: Sends fail from now on
		br := bufio.NewReader(c)
		got := uint64(0)
		var err error
		for ; got <= sent; got++ {
			var f []byte
			if f, err = readFrame(br); err != nil {
				break
			}
			if !bytes.Equal(f, payload) {
				t.Fatalf("reply %d differs", got)
			}
		}
		if got != sent || !errors.Is(err, io.EOF) {
			t.Errorf("the client read %d of the %d replies sent before Close, then %v; want all, then EOF", got, sent, err)
		}
		recv(t, r.closed, "OnClosed")
		_ = c.Close() // ends the linger (a reset: the client holds unread input)
	})
}

// TestShutdownCutsLinger: an orderly Shutdown waits for a linger (the
// engine is not done while a peer may still send), and one whose ctx ends
// cuts it short.
func TestShutdownCutsLinger(t *testing.T) {
	skipWithoutLinger(t)
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r, e, _, c, _ := lingerCase(t, tr, mai.WithCloseLinger(time.Hour))
		go func() { _, _ = io.Copy(io.Discard, c) }() // the replies, then EOF
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stopped := make(chan error, 1)
		go func() { stopped <- e.Shutdown(ctx) }()
		recv(t, r.closed, "OnClosed")
		select {
		case <-e.Done():
			t.Fatal("the engine stopped while a connection lingered, with an hour to go")
		default:
		}
		cancel()
		if err := recv(t, stopped, "Shutdown"); !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown: %v, want context.Canceled", err)
		}
		recv(t, e.Done(), "the engine's stop")
	})
}

// TestCloseMidStream: a handler that closes in the middle of a stream
// from a peer that sends and reads at once (on every transport: netpoll
// reads on, and this peer reads its replies, so no bound closes it
// first). The peer gets every reply sent before the Close, then EOF.
func TestCloseMidStream(t *testing.T) {
	skipWithoutLinger(t)
	const closeAt = 2000
	payload := bytes.Repeat([]byte{'m'}, 500)
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newRecorder(t)
		n := 0
		r.onFrame = func(c mai.Context[[]byte], f []byte) error {
			if n++; n <= closeAt {
				if err := c.Send(f); err != nil {
					return err
				}
			}
			if n == closeAt {
				return c.Close()
			}
			return nil
		}
		_, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr), mai.WithCloseLinger(time.Hour))
		c := dialBufs(t, addr, clientRcv, 0)
		recv(t, r.ready, "OnReady")
		go func() {
			f := frame(payload)
			for range 40000 { // bounded: 20 MB
				if _, err := c.Write(f); err != nil {
					return
				}
			}
		}()
		br := bufio.NewReader(c)
		got := 0
		var err error
		for ; got <= closeAt; got++ {
			if _, err = readFrame(br); err != nil {
				break
			}
		}
		if got != closeAt || !errors.Is(err, io.EOF) {
			t.Errorf("the client read %d of the %d replies sent before Close, then %v; want all, then EOF", got, closeAt, err)
		}
		recv(t, r.closed, "OnClosed")
		_ = c.Close()
	})
}
