// Command client is mai's echo client: it opens connections through the
// engine's client side (Dial), runs closed-loop echoes of fixed-size frames,
// checks every byte that comes back, and prints one summary line:
//
//	go run ./examples/echo/client -addr 127.0.0.1:7777 -conns 50 -frames 100000 -size 64
//
// It exits non-zero on any mismatch, error or timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/codec"
	"github.com/mai-go/mai/engine"
	"github.com/mai-go/mai/protocol"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7777", "server address")
	conns := flag.Int("conns", 50, "connections")
	frames := flag.Int("frames", 100000, "frames to echo in all")
	size := flag.Int("size", 64, "payload bytes per frame")
	timeout := flag.Duration("timeout", time.Minute, "give up after this long")
	flag.Parse()
	sum, err := run(*addr, *conns, *frames, *size, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	fmt.Println(sum)
}

// session is one connection's closed loop. Only its connection's callbacks
// touch it, and those never run concurrently.
type session struct {
	left    int             // frames still to send
	seq     uint64          // sequence number of the frame in flight
	sentAt  time.Time       // when it was sent
	out     []byte          // payload being echoed
	latency []time.Duration // one per echoed frame
	err     error
	done    bool
}

type client struct {
	protocol.Base[[]byte]
	size     int
	perConn  []int
	mu       sync.Mutex // guards next, results
	next     int
	results  []*session
	finished sync.WaitGroup
}

// fill writes the payload of frame seq on connection id: every byte
// depends on both, so a frame delivered to the wrong place is caught.
func fill(b []byte, id mai.ConnID, seq uint64) {
	x := uint64(id)*0x9E3779B97F4A7C15 ^ seq*0xBF58476D1CE4E5B9
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
}

func (cl *client) OnReady(c mai.Context[[]byte]) error {
	cl.mu.Lock()
	s := &session{left: cl.perConn[cl.next], out: make([]byte, cl.size)}
	s.latency = make([]time.Duration, 0, s.left)
	cl.next++
	cl.results = append(cl.results, s)
	cl.mu.Unlock()
	c.SetSession(s)
	return cl.sendNext(c, s)
}

func (cl *client) sendNext(c mai.Context[[]byte], s *session) error {
	if s.left == 0 {
		s.done = true
		return c.Close()
	}
	s.left--
	s.seq++
	fill(s.out, c.ID(), s.seq)
	s.sentAt = time.Now()
	return c.Send(s.out)
}

func (cl *client) OnFrame(c mai.Context[[]byte], f []byte) error {
	s := c.Session().(*session)
	s.latency = append(s.latency, time.Since(s.sentAt))
	if string(f) != string(s.out) {
		return fmt.Errorf("frame %d on %v: echo differs from what was sent", s.seq, c.ID())
	}
	return cl.sendNext(c, s)
}

func (cl *client) OnError(c mai.Context[[]byte], err error) {
	if s, ok := c.Session().(*session); ok && s.err == nil {
		s.err = err
	}
}

func (cl *client) OnClosed(c mai.Context[[]byte], err error) {
	if s, ok := c.Session().(*session); ok {
		if s.err == nil && !s.done {
			s.err = fmt.Errorf("%v closed early (%d frames left): %v", c.ID(), s.left, err)
		}
	}
	cl.finished.Done()
}

func run(addr string, conns, frames, size int, timeout time.Duration) (string, error) {
	if conns <= 0 || frames < conns || size < 0 {
		return "", errors.New("need conns > 0, frames >= conns, size >= 0")
	}
	cl := &client{size: size, perConn: make([]int, conns)}
	for i := range cl.perConn {
		cl.perConn[i] = frames / conns
		if i < frames%conns {
			cl.perConn[i]++
		}
	}
	lf, err := codec.NewLengthField(codec.LengthFieldConfig{Width: 4, Strip: 4, MaxLength: max(size, 1)})
	if err != nil {
		return "", err
	}
	e, err := engine.New(lf.Factory(), cl, mai.WithMaxFrameSize(size+4), mai.WithWriteBufferWaterMarks(32<<10, max(64<<10, 2*(size+4))))
	if err != nil {
		return "", err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.Shutdown(ctx)
	}()

	start := time.Now()
	cl.finished.Add(conns)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for i := 0; i < conns; i++ {
		if _, err := e.Dial(ctx, "tcp", addr); err != nil {
			cl.finished.Add(-(conns - i))
			return "", err
		}
	}
	done := make(chan struct{})
	go func() { cl.finished.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return "", fmt.Errorf("timed out after %v", timeout)
	}
	elapsed := time.Since(start)

	var all []time.Duration
	for _, s := range cl.results {
		if s.err != nil {
			return "", s.err
		}
		all = append(all, s.latency...)
	}
	if len(all) != frames {
		return "", fmt.Errorf("echoed %d frames, want %d", len(all), frames)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration { return all[int(p*float64(len(all)-1))] }
	return fmt.Sprintf("frames=%d conns=%d size=%d elapsed=%v rate=%.0f frames/s p50=%v p99=%v",
		frames, conns, size, elapsed.Round(time.Millisecond), float64(frames)/elapsed.Seconds(),
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond)), nil
}
