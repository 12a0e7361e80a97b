package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/codec"
	"github.com/mai-go/mai/protocol"
)

// goexitHandler echoes frames; on the frame "trigger" it makes the
// callback named where end its goroutine with runtime.Goexit (what
// t.FailNow in a handler does), once.
type goexitHandler struct {
	protocol.Base[[]byte]
	where string

	mu     sync.Mutex
	done   bool // the Goexit happened
	ready  chan mai.ConnID
	closed chan goexitClosed
}

type goexitClosed struct {
	id  mai.ConnID
	err error
}

// exit ends the goroutine the first time a callback named where asks.
func (h *goexitHandler) exit(where string) {
	h.mu.Lock()
	due := h.where == where && !h.done
	h.done = h.done || due
	h.mu.Unlock()
	if due {
		runtime.Goexit()
	}
}

func (h *goexitHandler) OnReady(c mai.Context[[]byte]) error {
	h.ready <- c.ID()
	h.exit("OnReady")
	return nil
}

var errTrigger = errors.New("trigger")

func (h *goexitHandler) OnFrame(c mai.Context[[]byte], f []byte) error {
	if string(f) != "trigger" {
		return c.Send(f)
	}
	switch h.where {
	case "OnFrame":
		h.exit("OnFrame")
	case "OnError":
		return errTrigger
	case "OnClosed":
		return c.Close()
	case "OnTimeout":
		_, err := c.SetTimer(time.Millisecond, nil)
		return err
	}
	return nil
}

func (h *goexitHandler) OnTimeout(c mai.Context[[]byte], t mai.Timeout) error {
	h.exit("OnTimeout")
	return nil
}

func (h *goexitHandler) OnError(c mai.Context[[]byte], err error) { h.exit("OnError") }

func (h *goexitHandler) OnClosed(c mai.Context[[]byte], err error) {
	h.closed <- goexitClosed{c.ID(), err}
	h.exit("OnClosed")
}

// TestGoexitInCallback: a connection callback that ends its goroutine
// (runtime.Goexit) closes its connection only, as a panic would: the
// connection gets OnClosed with an error wrapping mai.ErrPanic (unless it
// was OnClosed that ended), the Goexit is logged, the other connections
// go on (on TransportEpoll, on the same event loop), and the engine shuts
// down. It used to leave the connection holding its runner role for ever:
// no OnClosed, a Shutdown that never ended, and on TransportEpoll an event
// loop gone with every connection on it.
func TestGoexitInCallback(t *testing.T) {
	for _, where := range []string{"OnReady", "OnFrame", "OnTimeout", "OnError", "OnClosed"} {
		t.Run(where, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr mai.Transport) {
				testGoexitInCallback(t, tr, where)
			})
		})
	}
}

func testGoexitInCallback(t *testing.T, tr mai.Transport, where string) {
	h := &goexitHandler{where: where, ready: make(chan mai.ConnID, 4), closed: make(chan goexitClosed, 4)}
	logs := &logCapture{}
	e, addr := server(t, h, lengthField(t, 1<<10), mai.WithTransport(tr), mai.WithEventLoops(1),
		mai.WithLogger(slog.New(logs)), mai.WithCloseLinger(0))
	// The victim comes first, so that OnReady's Goexit hits it.
	victim := dial(t, addr)
	victimID := recv(t, h.ready, "the first OnReady")
	other := dial(t, addr)
	recv(t, h.ready, "the second OnReady")
	if where != "OnReady" {
		if _, err := victim.Write(frame([]byte("trigger"))); err != nil {
			t.Fatal(err)
		}
	}
	got := recv(t, h.closed, "OnClosed of the connection whose callback ended its goroutine")
	if got.id != victimID {
		t.Fatalf("OnClosed of %v, want %v", got.id, victimID)
	}
	switch where {
	case "OnClosed":
		// It closed as asked; OnClosed was what ended.
	case "OnError":
		if !errors.Is(got.err, mai.ErrPanic) && !errors.Is(got.err, errTrigger) {
			t.Errorf("OnClosed got %v, want mai.ErrPanic or the handler's error", got.err)
		}
	default:
		if !errors.Is(got.err, mai.ErrPanic) {
			t.Errorf("OnClosed got %v, want it to wrap mai.ErrPanic", got.err)
		}
	}
	expectClosedByPeer(t, victim)
	for range 3 {
		echoRoundTrip(t, other, "the other connection")
	}
	eventually(t, "the Goexit logged", logs.goexitLogged)
	shutdown(t, e)
	if got := recv(t, h.closed, "OnClosed of the other connection"); got.id == victimID {
		t.Fatalf("a second OnClosed for %v", got.id)
	}
}

// goexitLogged reports whether a record tells of a Goexit, with an error
// wrapping mai.ErrPanic.
func (l *logCapture) goexitLogged() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.recs, func(p loggedPanic) bool {
		return strings.Contains(p.msg, "runtime.Goexit") && errors.Is(p.err, mai.ErrPanic)
	})
}

// goexitAdmitter is an echo handler whose Admit ends its goroutine the
// first time; its codec's Encode does so for the frame "exit".
type goexitAdmitter struct {
	protocol.Base[[]byte]
	admits atomic.Int32
	ready  chan mai.ConnID
}

func (h *goexitAdmitter) Admit(mai.ConnInfo) error {
	if h.admits.Add(1) == 1 {
		runtime.Goexit()
	}
	return nil
}

func (h *goexitAdmitter) OnReady(c mai.Context[[]byte]) error {
	h.ready <- c.ID()
	return nil
}

func (h *goexitAdmitter) OnFrame(c mai.Context[[]byte], f []byte) error { return c.Send(f) }

type goexitEncoder struct{ *codec.LengthField }

func (g goexitEncoder) Encode(dst, f []byte) ([]byte, error) {
	if string(f) == "exit" {
		runtime.Goexit()
	}
	return g.LengthField.Encode(dst, f)
}

// TestGoexitOnEngineGoroutines: Admit, Encode or a Broadcast filter that
// ends its goroutine (runtime.Goexit) on the accept loop or the command
// loop leaves that loop going on (on a new goroutine), answers the
// command with an error wrapping mai.ErrPanic, gives back the
// connection's place and descriptor, and lets the engine shut down. The
// loops used to end with it: a listener that accepted no more, a command
// channel nobody read, and a Shutdown waiting for a connection that was
// never made.
func TestGoexitOnEngineGoroutines(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		for _, where := range []string{"Admit/accept", "Admit/ManageCmd", "Encode/SendCmd", "Filter/BroadcastCmd"} {
			t.Run(where, func(t *testing.T) {
				testGoexitOnEngineGoroutines(t, tr, where)
			})
		}
	})
}

func testGoexitOnEngineGoroutines(t *testing.T, tr mai.Transport, where string) {
	lf, err := codec.NewLengthField(codec.LengthFieldConfig{Width: 4, Strip: 4, MaxLength: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	h := &goexitAdmitter{ready: make(chan mai.ConnID, 4)}
	if !strings.HasPrefix(where, "Admit") {
		h.admits.Store(1) // no Goexit in Admit
	}
	logs := &logCapture{}
	e, addr := server(t, h, func() codec.Codec[[]byte] { return goexitEncoder{lf} }, mai.WithTransport(tr),
		mai.WithEventLoops(1), mai.WithLogger(slog.New(logs)), mai.WithCloseLinger(0))
	command := func(cmd Command[[]byte], reply chan Result) Result {
		t.Helper()
		select {
		case e.Commands() <- cmd:
		case <-time.After(waitLimit):
			t.Fatal("the command channel is not read")
		}
		return recv(t, reply, "the command's Result")
	}
	reply := make(chan Result, 1)
	switch where {
	case "Admit/accept":
		victim := dial(t, addr)
		expectClosedByPeer(t, victim)
	case "Admit/ManageCmd":
		a, b := tcpPair(t)
		defer b.Close()
		if r := command(ManageCmd[[]byte]{Conn: a, Reply: reply}, reply); !errors.Is(r.Err, mai.ErrPanic) {
			t.Fatalf("ManageCmd got %+v, want an error wrapping mai.ErrPanic", r)
		}
		expectClosedByPeer(t, b)
		a2, b2 := tcpPair(t)
		defer b2.Close()
		if r := command(ManageCmd[[]byte]{Conn: a2, Reply: reply}, reply); r.Err != nil {
			t.Fatalf("a ManageCmd after the Goexit: %v", r.Err)
		}
		recv(t, h.ready, "OnReady of the managed connection")
	}
	// A connection accepted after it works, and so do commands to it.
	c := dial(t, addr)
	id := recv(t, h.ready, "OnReady")
	switch where {
	case "Encode/SendCmd":
		if r := command(SendCmd[[]byte]{ID: id, Frame: []byte("exit"), Reply: reply}, reply); !errors.Is(r.Err, mai.ErrPanic) {
			t.Fatalf("SendCmd got %+v, want an error wrapping mai.ErrPanic", r)
		}
	case "Filter/BroadcastCmd":
		exit := func(mai.ConnInfo) bool { runtime.Goexit(); return false }
		if r := command(BroadcastCmd[[]byte]{Frame: []byte("x"), Filter: exit, Reply: reply}, reply); !errors.Is(r.Err, mai.ErrPanic) {
			t.Fatalf("BroadcastCmd got %+v, want an error wrapping mai.ErrPanic", r)
		}
	}
	if r := command(SendCmd[[]byte]{ID: id, Frame: []byte("pushed"), Reply: reply}, reply); r.Err != nil {
		t.Fatalf("SendCmd: %v", r.Err)
	}
	if b, err := readFrame(c); err != nil || string(b) != "pushed" {
		t.Fatalf("read %q %v, want the pushed frame", b, err)
	}
	echoRoundTrip(t, c, "after the Goexit")
	eventually(t, "the Goexit logged", logs.goexitLogged)
	shutdown(t, e)
}

// goexitRacer ends its goroutine in OnFrame for the frame "exit", in
// OnTimeout for the payload "exit", and in OnClosed for every third
// connection; it counts OnReady and OnClosed per connection.
type goexitRacer struct {
	protocol.Base[[]byte]
	mu     sync.Mutex
	ready  map[mai.ConnID]int
	closed map[mai.ConnID]int
	n      atomic.Int32
}

func (h *goexitRacer) OnReady(c mai.Context[[]byte]) error {
	h.mu.Lock()
	h.ready[c.ID()]++
	h.mu.Unlock()
	_, err := c.SetTimer(time.Millisecond, "exit")
	return err
}

func (h *goexitRacer) OnFrame(c mai.Context[[]byte], f []byte) error {
	if string(f) == "exit" {
		runtime.Goexit()
	}
	_, _ = c.SetTimer(0, "tick")
	return c.Send(f)
}

func (h *goexitRacer) OnTimeout(c mai.Context[[]byte], t mai.Timeout) error {
	if t.Payload == "exit" && h.n.Add(1)%2 == 0 {
		runtime.Goexit()
	}
	return nil
}

func (h *goexitRacer) OnClosed(c mai.Context[[]byte], err error) {
	h.mu.Lock()
	h.closed[c.ID()]++
	h.mu.Unlock()
	if uint64(c.ID())%3 == 0 {
		runtime.Goexit()
	}
}

// TestGoexitRaces: Goexits in OnFrame, OnTimeout and OnClosed on many
// connections at once, racing with their timers, their peers' frames and
// a Shutdown: the Shutdown returns, and every connection got exactly one
// OnClosed.
func TestGoexitRaces(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		for round := range 4 {
			h := &goexitRacer{ready: map[mai.ConnID]int{}, closed: map[mai.ConnID]int{}}
			e, addr := server(t, h, lengthField(t, 1<<10), mai.WithTransport(tr), mai.WithEventLoops(2),
				mai.WithLogger(slog.New(slog.DiscardHandler)), mai.WithCloseLinger(0))
			var wg sync.WaitGroup
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.DialTimeout("tcp", addr, waitLimit)
					if err != nil {
						return // the Shutdown may have begun
					}
					defer c.Close()
					var out []byte
					for j := range 20 {
						p := "frame"
						if (i+round)%4 == 0 && j == 10 {
							p = "exit"
						}
						out = append(out, frame([]byte(p))...)
					}
					_ = c.SetDeadline(time.Now().Add(waitLimit))
					_, _ = c.Write(out)
					_, _ = io.Copy(io.Discard, c)
				}()
			}
			count := func(m map[mai.ConnID]int) int {
				h.mu.Lock()
				defer h.mu.Unlock()
				return len(m)
			}
			// Every connection is taken; in odd rounds the Shutdown races
			// with their frames and timers, in even ones it comes after
			// the connections that sent "exit" closed.
			eventually(t, "16 connections ready", func() bool { return count(h.ready) == 16 })
			if round%2 == 0 {
				eventually(t, "the exiting connections closed", func() bool { return count(h.closed) >= 4 })
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			if err := e.Shutdown(ctx); err != nil {
				t.Fatalf("round %d: Shutdown: %v", round, err)
			}
			cancel()
			wg.Wait()
			h.mu.Lock()
			for id, n := range h.ready {
				if h.closed[id] != n {
					t.Errorf("round %d: %v: %d OnReady, %d OnClosed", round, id, n, h.closed[id])
				}
			}
			h.mu.Unlock()
		}
	})
}

// queueThenEnd echoes every frame but "end", where it panics or calls
// runtime.Goexit.
type queueThenEnd struct {
	protocol.Base[[]byte]
	goexit bool
	closed chan error
}

func (h *queueThenEnd) OnFrame(c mai.Context[[]byte], f []byte) error {
	if string(f) != "end" {
		return c.Send(f)
	}
	if h.goexit {
		runtime.Goexit()
	}
	panic("end")
}

func (h *queueThenEnd) OnClosed(c mai.Context[[]byte], err error) { h.closed <- err }

// TestGoexitWritesQueuedReplies: the replies queued in the run whose
// callback ended its goroutine are written before the close, as they are
// after a panic. On netpoll, whose worker's end makes netpoll close the
// connection and drop the queue, they were lost (found by review).
func TestGoexitWritesQueuedReplies(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		for _, goexit := range []bool{false, true} {
			t.Run(map[bool]string{false: "panic", true: "goexit"}[goexit], func(t *testing.T) {
				h := &queueThenEnd{goexit: goexit, closed: make(chan error, 1)}
				_, addr := server(t, h, lengthField(t, 1<<10), mai.WithTransport(tr),
					mai.WithLogger(slog.New(slog.DiscardHandler)))
				c := dial(t, addr)
				in := append(frame([]byte("a")), frame([]byte("b"))...)
				if _, err := c.Write(append(in, frame([]byte("end"))...)); err != nil {
					t.Fatal(err)
				}
				var got []string
				for {
					b, err := readFrame(c)
					if err != nil {
						break
					}
					got = append(got, string(b))
				}
				err := recv(t, h.closed, "OnClosed")
				if !slices.Equal(got, []string{"a", "b"}) {
					t.Errorf("replies %q, want [a b]", got)
				}
				if !errors.Is(err, mai.ErrPanic) {
					t.Errorf("OnClosed got %v, want it to wrap mai.ErrPanic", err)
				}
			})
		}
	})
}
