package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/codec"
	"github.com/mai-go/mai/protocol"
)

// echo sends every frame back.
type echo struct{ protocol.Base[[]byte] }

func (echo) OnFrame(c mai.Context[[]byte], f []byte) error { return c.Send(f) }

func TestEchoRoundTrip(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		_, addr := server(t, echo{}, lengthField(t, 1<<20), mai.WithTransport(tr))
		c := dial(t, addr)
		for i := 0; i < 100; i++ {
			want := []byte(fmt.Sprintf("frame %d", i))
			if _, err := c.Write(frame(want)); err != nil {
				t.Fatal(err)
			}
			got, err := readFrame(c)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("frame %d: got %q, %v; want %q", i, got, err, want)
			}
		}
	})
}

// TestCallbackOrder ends connections every way there is and checks the
// ordering contract: OnReady once, first; OnClosed once, last; nothing
// concurrent; and the cause OnClosed sees.
func TestCallbackOrder(t *testing.T) {
	cases := []struct {
		name    string
		end     func(t *testing.T, e *ProtocolEngine[[]byte], c net.Conn, ctx mai.Context[[]byte])
		cause   func(error) bool
		wantErr int // 0: no OnError, 1: OnError, 2: either (a reset is an I/O error where the transport can tell)
	}{
		{"peer close", func(t *testing.T, _ *ProtocolEngine[[]byte], c net.Conn, _ mai.Context[[]byte]) {
			c.Close()
		}, func(err error) bool { return errors.Is(err, io.EOF) }, 0},
		{"peer reset", func(t *testing.T, _ *ProtocolEngine[[]byte], c net.Conn, _ mai.Context[[]byte]) {
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}, func(err error) bool { return err != nil }, 2},
		{"protocol error", func(t *testing.T, _ *ProtocolEngine[[]byte], c net.Conn, _ mai.Context[[]byte]) {
			_, _ = c.Write([]byte{0xff, 0xff, 0xff, 0xff}) // over MaxLength
			expectClosedByPeer(t, c)
		}, func(err error) bool { return errors.Is(err, mai.ErrFrameTooLarge) && errors.Is(err, mai.ErrProtocol) }, 1},
		{"Close", func(t *testing.T, _ *ProtocolEngine[[]byte], c net.Conn, ctx mai.Context[[]byte]) {
			if err := ctx.Close(); err != nil {
				t.Error(err)
			}
			expectClosedByPeer(t, c)
		}, func(err error) bool { return err == nil }, 0},
		{"Abort", func(t *testing.T, _ *ProtocolEngine[[]byte], c net.Conn, ctx mai.Context[[]byte]) {
			if err := ctx.Abort(); err != nil {
				t.Error(err)
			}
			expectClosedByPeer(t, c)
		}, func(err error) bool { return errors.Is(err, mai.ErrAborted) }, 0},
		{"shutdown", func(t *testing.T, e *ProtocolEngine[[]byte], c net.Conn, _ mai.Context[[]byte]) {
			shutdown(t, e)
		}, func(err error) bool { return err == nil }, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr mai.Transport) {
				r := newRecorder(t)
				e, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr))
				c := dial(t, addr)
				ctx := recv(t, r.ready, "OnReady")
				if _, err := c.Write(frame([]byte("one"))); err != nil {
					t.Fatal(err)
				}
				recv(t, r.frames, "frame")
				tc.end(t, e, c, ctx)
				id := recv(t, r.closed, "OnClosed")
				if id != ctx.ID() {
					t.Fatalf("closed %v, want %v", id, ctx.ID())
				}
				cause := r.causeOf(id)
				if !tc.cause(cause) {
					t.Errorf("OnClosed cause %v", cause)
				}
				if errs := r.errorsOf(id); tc.wantErr != 2 && (len(errs) > 0) != (tc.wantErr == 1) {
					t.Errorf("OnError calls %v, want error: %v", errs, tc.wantErr)
				}
				if err := ctx.Send([]byte("late")); !errors.Is(err, mai.ErrClosed) {
					t.Errorf("Send after close: %v, want ErrClosed", err)
				}
				if err := e.Send(id, []byte("late")); !errors.Is(err, mai.ErrClosed) {
					t.Errorf("engine Send after close: %v, want ErrClosed", err)
				}
				select {
				case <-ctx.Context().Done():
				default:
					t.Error("connection context not cancelled after close")
				}
				shutdown(t, e)
				r.check()
			})
		})
	}
}

func TestPartialAndCoalescedFrames(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newRecorder(t)
		_, addr := server(t, r, lengthField(t, 1<<20), mai.WithTransport(tr))
		c := dial(t, addr)

		// One frame, one byte per write.
		one := frame([]byte("dribbled one byte at a time"))
		for i := range one {
			if _, err := c.Write(one[i : i+1]); err != nil {
				t.Fatal(err)
			}
		}
		if got := recv(t, r.frames, "dribbled frame"); string(got.b) != "dribbled one byte at a time" {
			t.Fatalf("got %q", got.b)
		}

		// Many frames in one write, the last one split across two writes.
		var buf bytes.Buffer
		for i := 0; i < 500; i++ {
			buf.Write(frame([]byte(fmt.Sprintf("coalesced %d", i))))
		}
		tail := frame([]byte("split tail"))
		buf.Write(tail[:3])
		if _, err := c.Write(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(tail[3:]); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 500; i++ {
			if got := recv(t, r.frames, "coalesced frame"); string(got.b) != fmt.Sprintf("coalesced %d", i) {
				t.Fatalf("frame %d: got %q", i, got.b)
			}
		}
		if got := recv(t, r.frames, "split tail"); string(got.b) != "split tail" {
			t.Fatalf("got %q", got.b)
		}
	})
}

func TestLargeFrame(t *testing.T) {
	const size = 16 << 20
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		_, addr := server(t, echo{}, lengthField(t, size), mai.WithTransport(tr),
			mai.WithMaxFrameSize(size+4), mai.WithWriteBufferWaterMarks(size, 2*size+8))
		c := dial(t, addr)
		payload := make([]byte, size)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := c.Write(frame(payload))
			errc <- err
		}()
		got, err := readFrame(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatal("16 MiB frame corrupted")
		}
	})
}

// TestDecodeError: frames before the bad bytes are delivered, OnError sees
// the protocol error, the connection closes, and the bad bytes are never
// decoded again.
func TestDecodeError(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newRecorder(t)
		_, addr := server(t, r, lengthField(t, 16), mai.WithTransport(tr))
		c := dial(t, addr)
		var buf bytes.Buffer
		buf.Write(frame([]byte("good 1")))
		buf.Write(frame([]byte("good 2")))
		buf.Write([]byte{0x7f, 0, 0, 0}) // claims 2 GiB: over MaxLength 16
		buf.Write(bytes.Repeat([]byte{0xAA}, 1000))
		if _, err := c.Write(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"good 1", "good 2"} {
			if got := recv(t, r.frames, want); string(got.b) != want {
				t.Fatalf("got %q want %q", got.b, want)
			}
		}
		id := recv(t, r.closed, "OnClosed")
		expectClosedByPeer(t, c)
		errs := r.errorsOf(id)
		if len(errs) != 1 || !errors.Is(errs[0], mai.ErrFrameTooLarge) || !errors.Is(errs[0], mai.ErrProtocol) {
			t.Fatalf("OnError got %v, want one ErrFrameTooLarge", errs)
		}
		if n := len(r.events(id)); n != 5 { // ready, frame, frame, error, closed
			t.Errorf("events %v", r.events(id))
		}
	})
}

// panicky is a length-field codec (a Sizer, as LengthField is) that panics
// decoding a frame "decode-panic" and encoding a frame "encode-panic".
type panicky struct{ *codec.LengthField }

func (p panicky) Decode(src []byte) ([]byte, int, error) {
	f, n, err := p.LengthField.Decode(src)
	if string(f) == "decode-panic" {
		panic("boom in Decode")
	}
	return f, n, err
}

func (p panicky) Encode(dst, f []byte) ([]byte, error) {
	if string(f) == "encode-panic" {
		panic("boom in Encode")
	}
	return p.LengthField.Encode(dst, f)
}

// TestPanics: a panic in OnFrame or in the codec closes only its
// connection, with an error wrapping mai.ErrPanic (and mai.ErrProtocol
// for Decode, mai.ErrEncode for Encode); the frames before it in the same
// read are delivered and their replies written; the process and the other
// connections go on. "split" sends the panicking frame in two writes, the
// second after the reply to the frame before it, so that it is decoded from
// the pending buffer with its size known (Sizer).
func TestPanics(t *testing.T) {
	for _, split := range []bool{false, true} {
		t.Run(map[bool]string{false: "whole", true: "split"}[split], func(t *testing.T) {
			testPanics(t, split)
		})
	}
}

func testPanics(t *testing.T, split bool) {
	for _, tc := range []struct {
		name   string
		frame  string
		want   []error
		frames int // OnFrame calls: "before", and the panicking frame unless Decode panicked
	}{
		{"OnFrame", "panic", []error{mai.ErrPanic}, 2},
		{"Decode", "decode-panic", []error{mai.ErrPanic, mai.ErrProtocol}, 1},
		{"Encode", "encode-panic", []error{mai.ErrPanic, mai.ErrEncode}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr mai.Transport) {
				r := newRecorder(t)
				r.onFrame = func(c mai.Context[[]byte], f []byte) error {
					if string(f) == "panic" {
						panic("boom")
					}
					return c.Send(f)
				}
				lf, err := codec.NewLengthField(codec.LengthFieldConfig{Width: 4, Strip: 4, MaxLength: 1 << 10})
				if err != nil {
					t.Fatal(err)
				}
				pc := func() codec.Codec[[]byte] { return panicky{lf} }
				_, addr := server(t, r, pc, mai.WithTransport(tr))
				good, bad := dial(t, addr), dial(t, addr)
				recv(t, r.ready, "ready")
				recv(t, r.ready, "ready")
				in := append(frame([]byte("before")), frame([]byte(tc.frame))...)
				in = append(in, frame([]byte("after"))...)
				cut := len(in)
				if split {
					cut = len(frame([]byte("before"))) + 6 // inside the panicking frame
				}
				if _, err := bad.Write(in[:cut]); err != nil {
					t.Fatal(err)
				}
				if got, err := readFrame(bad); err != nil || string(got) != "before" {
					t.Fatalf("reply to the frame before the panic: %q %v", got, err)
				}
				if split {
					if _, err := bad.Write(in[cut:]); err != nil {
						t.Fatal(err)
					}
				}
				id := recv(t, r.closed, "OnClosed of the panicking connection")
				expectClosedByPeer(t, bad)
				errs := r.errorsOf(id)
				if len(errs) != 1 {
					t.Fatalf("OnError got %v, want one error", errs)
				}
				for _, want := range tc.want {
					if !errors.Is(errs[0], want) {
						t.Errorf("OnError got %v, want it to wrap %v", errs[0], want)
					}
				}
				frames := 0
				for _, ev := range r.events(id) {
					if ev == "frame" {
						frames++
					}
				}
				if frames != tc.frames {
					t.Errorf("%d frames delivered, want %d (none after the panic): %v", frames, tc.frames, r.events(id))
				}
				if _, err := good.Write(frame([]byte("still here"))); err != nil {
					t.Fatal(err)
				}
				if got, err := readFrame(good); err != nil || string(got) != "still here" {
					t.Fatalf("other connection: %q %v", got, err)
				}
			})
		})
	}
}

// TestConcurrentSenders: 100 goroutines send to one connection at once;
// every frame arrives whole and each sender's frames in its order.
func TestConcurrentSenders(t *testing.T) {
	const senders, perSender = 100, 200
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newRecorder(t)
		e, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr),
			mai.WithWriteBufferWaterMarks(1<<20, 4<<20))
		c := dial(t, addr)
		ctx := recv(t, r.ready, "ready")
		var wg sync.WaitGroup
		for s := 0; s < senders; s++ {
			wg.Add(1)
			go func(s int) {
				defer wg.Done()
				for i := 0; i < perSender; i++ {
					var err error
					if i%2 == 0 {
						err = ctx.Send([]byte(fmt.Sprintf("%03d:%05d", s, i)))
					} else {
						err = e.Send(ctx.ID(), []byte(fmt.Sprintf("%03d:%05d", s, i)))
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			}(s)
		}
		next := make([]int, senders)
		for n := 0; n < senders*perSender; n++ {
			f, err := readFrame(c)
			if err != nil {
				t.Fatalf("after %d frames: %v", n, err)
			}
			var s, i int
			if _, err := fmt.Sscanf(string(f), "%03d:%05d", &s, &i); err != nil || len(f) != 9 {
				t.Fatalf("corrupt frame %q", f)
			}
			if i != next[s] {
				t.Fatalf("sender %d: frame %d arrived, want %d", s, i, next[s])
			}
			next[s]++
		}
		wg.Wait()
	})
}

// TestShutdownFlushes: thousands of frames queued at shutdown all arrive;
// a Send after shutdown fails.
func TestShutdownFlushes(t *testing.T) {
	const n = 5000
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newRecorder(t)
		e, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr),
			mai.WithWriteBufferWaterMarks(1<<20, 4<<20))
		c := dial(t, addr)
		ctx := recv(t, r.ready, "ready")
		// Queue everything from inside a callback, so nothing is written
		// before Shutdown starts.
		queued := make(chan error, 1)
		if err := e.Do(ctx.ID(), func(c mai.Context[[]byte]) {
			for i := 0; i < n; i++ {
				if err := c.Send([]byte(fmt.Sprintf("queued %d", i))); err != nil {
					queued <- err
					return
				}
			}
			queued <- nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, queued, "queueing"); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			sctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			done <- e.Shutdown(sctx)
		}()
		for i := 0; i < n; i++ {
			f, err := readFrame(c)
			if err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			if string(f) != fmt.Sprintf("queued %d", i) {
				t.Fatalf("frame %d: %q", i, f)
			}
		}
		expectClosedByPeer(t, c)
		if err := recv(t, done, "Shutdown"); err != nil {
			t.Fatal(err)
		}
		if err := ctx.Send([]byte("x")); !errors.Is(err, mai.ErrClosed) {
			t.Errorf("Send after shutdown: %v", err)
		}
		if _, err := e.Dial(context.Background(), "tcp", addr); !errors.Is(err, mai.ErrShutdown) {
			t.Errorf("Dial after shutdown: %v", err)
		}
		r.check()
	})
}

// TestStaleID: an ID of a closed connection never reaches the connection
// that reuses its slot.
func TestStaleID(t *testing.T) {
	r := newRecorder(t)
	e, addr := server(t, r, lengthField(t, 1<<10))
	c1 := dial(t, addr)
	old := recv(t, r.ready, "ready").ID()
	c1.Close()
	recv(t, r.closed, "closed")
	c2 := dial(t, addr)
	cur := recv(t, r.ready, "ready").ID()
	if cur.Slot() != old.Slot() || cur.Generation() == old.Generation() {
		t.Fatalf("slot not reused with a new generation: old %v new %v", old, cur)
	}
	for name, err := range map[string]error{
		"Send":  e.Send(old, []byte("stale")),
		"Close": e.Close(old),
		"Do":    e.Do(old, func(mai.Context[[]byte]) { t.Error("Do ran on a stale ID") }),
	} {
		if !errors.Is(err, mai.ErrClosed) {
			t.Errorf("%s on stale ID: %v, want ErrClosed", name, err)
		}
	}
	if err := e.Send(cur, []byte("fresh")); err != nil {
		t.Fatal(err)
	}
	if got, err := readFrame(c2); err != nil || string(got) != "fresh" {
		t.Fatalf("got %q %v", got, err)
	}
}

// TestNoLeaks: no descriptor outlives a closed connection or a stopped
// engine (goroutines are checked by TestMain).
func TestNoLeaks(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		before := openFDs(t)
		r := newRecorder(t)
		e, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr))
		for i := 0; i < 20; i++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			recv(t, r.ready, "ready")
			if i%2 == 0 {
				c.Close()
				recv(t, r.closed, "closed")
			} else {
				defer c.Close()
			}
		}
		shutdown(t, e)
		e.Wait()
		r.check()
		// The client ends of the open connections are still ours.
		if after := openFDs(t) - 10; after > before {
			t.Errorf("descriptors: %d before, %d after (net of 10 client ends)", before, after)
		}
	})
}

func TestDialAndManage(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		// A plain echo server to talk to.
		_, addr := server(t, echo{}, lengthField(t, 1<<10), mai.WithTransport(tr))

		r := newRecorder(t)
		cl, err := New(lengthField(t, 1<<10), r, mai.WithTransport(tr))
		if err != nil {
			t.Fatal(err)
		}
		defer shutdown(t, cl)

		// A failed dial is an error for the caller and no callback.
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := ln.Addr().String()
		ln.Close()
		if _, err := cl.Dial(context.Background(), "tcp", dead); err == nil {
			t.Fatal("dial to a closed port succeeded")
		}
		//lint:ignore SA1012 a nil ctx is the misuse under test
		if _, err := cl.Dial(nil, "tcp", addr); !errors.Is(err, mai.ErrInvalidOption) {
			t.Fatalf("dial with a nil ctx: %v, want ErrInvalidOption", err)
		}

		id, err := cl.Dial(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := recv(t, r.ready, "ready").ID(); got != id {
			t.Fatalf("ready for %v, dialed %v", got, id)
		}
		if err := cl.Send(id, []byte("via dial")); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, r.frames, "echo"); string(got.b) != "via dial" {
			t.Fatalf("got %q", got.b)
		}

		// Hand-off through the command channel.
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		reply := make(chan Result, 1)
		cl.Commands() <- ManageCmd[[]byte]{Conn: nc, Reply: reply}
		res := recv(t, reply, "manage reply")
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		recv(t, r.ready, "ready")
		cl.Commands() <- SendCmd[[]byte]{ID: res.ID, Frame: []byte("via command"), Reply: reply}
		if res := recv(t, reply, "send reply"); res.Err != nil {
			t.Fatal(res.Err)
		}
		if got := recv(t, r.frames, "echo"); string(got.b) != "via command" || got.id != res.ID {
			t.Fatalf("got %q from %v", got.b, got.id)
		}
		info, err := cl.Info(res.ID)
		if err != nil || info.Origin != mai.OriginManaged {
			t.Fatalf("info %+v %v", info, err)
		}
	})
}

func TestTimers(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newRecorder(t)
		fired := r.collectTimeouts(4, false)
		_, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr), mai.WithTimerResolution(time.Millisecond))
		dial(t, addr)
		ctx := recv(t, r.ready, "ready")
		cancelled, err := ctx.SetTimer(5*time.Millisecond, "cancelled")
		if err != nil {
			t.Fatal(err)
		}
		if !ctx.CancelTimer(cancelled) {
			t.Fatal("CancelTimer of a pending timer returned false")
		}
		start := time.Now()
		id, err := ctx.SetTimer(20*time.Millisecond, "payload")
		if err != nil {
			t.Fatal(err)
		}
		to := recv(t, fired, "timer")
		if to.Kind != mai.TimeoutTimer || to.Timer != id || to.Payload != "payload" {
			t.Fatalf("got %+v", to)
		}
		if el := time.Since(start); el < 20*time.Millisecond {
			t.Fatalf("timer fired early, after %v", el)
		}
		if ctx.CancelTimer(id) {
			t.Error("CancelTimer of a fired timer returned true")
		}
		// The connection is still open: a user timer does not close it.
		if err := ctx.Send([]byte("alive")); err != nil {
			t.Fatal(err)
		}
		// Timers die with the connection.
		if _, err := ctx.SetTimer(time.Hour, nil); err != nil {
			t.Fatal(err)
		}
		_ = ctx.Abort()
		recv(t, r.closed, "closed")
		if _, err := ctx.SetTimer(time.Millisecond, nil); !errors.Is(err, mai.ErrClosed) {
			t.Errorf("SetTimer after close: %v", err)
		}
		select {
		case to := <-fired:
			t.Fatalf("timer fired after close: %+v", to)
		default:
		}
	})
}

func TestInvalidOptions(t *testing.T) {
	cases := map[string][]mai.Option{
		"negative buffer":        {mai.WithInitialBufferSize(-1)},
		"pool over max":          {mai.WithInitialBufferPoolSize(10), mai.WithMaxBufferPoolSize(5)},
		"low over high":          {mai.WithWriteBufferWaterMarks(10, 5)},
		"inbound under frame":    {mai.WithMaxFrameSize(1 << 20), mai.WithMaxInboundBytes(1 << 10)},
		"negative timeout":       {mai.WithIdleTimeout(-time.Second)},
		"negative close linger":  {mai.WithCloseLinger(-time.Second)},
		"sub-millisecond ticker": {mai.WithTimerResolution(time.Microsecond)},
		"nil option":             {nil},
		"frame over limit":       {mai.WithMaxFrameSize(mai.MaxInboundLimit + 1)},
		"inbound over limit":     {mai.WithMaxInboundBytes(mai.MaxInboundLimit + 1)},
		// Values so large that using them would panic: a slice that
		// cannot be made.
		"huge buffer":        {mai.WithInitialBufferSize(1 << 62)},
		"huge pool":          {mai.WithMaxBufferPoolSize(1 << 62)},
		"huge conn capacity": {mai.WithConnCapacity(1 << 62)},
		"huge event loops":   {mai.WithEventLoops(1 << 62)},
		"huge pollers":       {mai.WithPollers(1 << 62)},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("New panicked: %v", r)
				}
			}()
			_, err := New(lengthField(t, 16), echo{}, opts...)
			if !errors.Is(err, mai.ErrInvalidOption) {
				t.Fatalf("got %v, want ErrInvalidOption", err)
			}
		})
	}
	// A codec whose own limit is over MaxInboundLimit has it lowered to
	// MaxInboundLimit; WithMaxFrameSize still sets a smaller one.
	for _, tc := range []struct {
		opts []mai.Option
		want int
	}{{nil, mai.MaxInboundLimit}, {[]mai.Option{mai.WithMaxFrameSize(1 << 20)}, 1 << 20}} {
		e, err := New(lengthField(t, 2*mai.MaxInboundLimit), echo{}, tc.opts...)
		if err != nil {
			t.Errorf("codec over the limit: %v", err)
			continue
		}
		if o := e.Options(); o.MaxFrameSize != tc.want || o.MaxInboundBytes > mai.MaxInboundLimit {
			t.Errorf("codec over the limit: MaxFrameSize %d, MaxInboundBytes %d; want %d and at most %d", o.MaxFrameSize, o.MaxInboundBytes, tc.want, mai.MaxInboundLimit)
		}
		shutdown(t, e)
	}
	if o, err := mai.Build(mai.WithMaxFrameSize(mai.MaxInboundLimit)); err != nil || o.MaxInboundBytes != mai.MaxInboundLimit {
		t.Errorf("frame size at the limit: inbound %d, %v", o.MaxInboundBytes, err)
	}
	if _, err := New[[]byte](nil, echo{}); !errors.Is(err, mai.ErrInvalidOption) {
		t.Errorf("nil codec: %v", err)
	}
	if _, err := New(lengthField(t, 16), nil); !errors.Is(err, mai.ErrInvalidOption) {
		t.Errorf("nil handler: %v", err)
	}
}

// TestDialWithSession: the session given to Dial is there in OnReady, even
// when OnReady runs before Dial returns.
func TestDialWithSession(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		_, addr := server(t, echo{}, lengthField(t, 1<<10), mai.WithTransport(tr))
		r := newRecorder(t)
		seen := make(chan any, 1)
		r.onReady = func(c mai.Context[[]byte]) error {
			seen <- c.Session()
			return nil
		}
		cl, err := New(lengthField(t, 1<<10), r, mai.WithTransport(tr))
		if err != nil {
			t.Fatal(err)
		}
		defer shutdown(t, cl)
		if _, err := cl.Dial(context.Background(), "tcp", addr, WithSession("state")); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, seen, "OnReady"); got != "state" {
			t.Fatalf("session in OnReady = %v", got)
		}
	})
}

// TestReadPauseOff: with WithReadPause(false), input is decoded while the
// connection is over its high water mark; with the default it is not.
func TestReadPauseOff(t *testing.T) {
	for _, pause := range []bool{true, false} {
		t.Run(fmt.Sprintf("pause=%v", pause), func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr mai.Transport) {
				r := newRecorder(t)
				frames := make(chan bool, 16)
				r.onFrame = func(c mai.Context[[]byte], f []byte) error {
					frames <- c.Writable()
					return nil
				}
				_, addr := server(t, r, lengthField(t, 64<<20), mai.WithTransport(tr),
					mai.WithWriteBufferWaterMarks(32<<10, 64<<10), mai.WithReadPause(pause))
				c := dial(t, addr)
				_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
				ctx := recv(t, r.ready, "ready")
				// The client never reads: one 32 MiB frame (accepted, the
				// queue was under the mark) is far more than the kernel
				// buffers hold, so the queue stays over the mark.
				if err := ctx.Send(make([]byte, 32<<20)); err != nil {
					t.Fatal(err)
				}
				if ctx.Writable() {
					t.Skip("the kernel took 32 MiB: cannot hold the queue over the mark here")
				}
				if _, err := c.Write(frame([]byte("while unwritable"))); err != nil {
					t.Fatal(err)
				}
				if pause {
					// Nothing is decoded; the connection stays stuck until
					// the test ends (the client never reads).
					select {
					case <-frames:
						t.Fatal("a frame was decoded over the high water mark with the read pause on")
					case <-time.After(100 * time.Millisecond):
					}
					return
				}
				if w := recv(t, frames, "a frame decoded over the high water mark"); w {
					t.Error("OnFrame saw a writable connection")
				}
			})
		})
	}
}
