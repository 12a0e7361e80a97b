package engine

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/bufpool"
)

// discard is a transport whose socket takes every byte at once.
type discard struct{ n int }

func (d *discard) write(p []byte) (int, error) { d.n += len(p); return len(p), nil }
func (d *discard) writev(h, p []byte) (int, error) {
	d.n += len(h) + len(p)
	return len(h) + len(p), nil
}
func (*discard) waitWritable() error { return nil }
func (*discard) close()              {}

// bareConn is a connection of e over tr with no socket, registry or
// runner: tests and benchmarks drive its read and write paths directly.
func bareConn(tb testing.TB, e *ProtocolEngine[[]byte], tr transport) *conn[[]byte] {
	tb.Helper()
	cd, err := makeCodec(e.newCodec)
	if err != nil {
		tb.Fatal(err)
	}
	return &conn[[]byte]{e: e, codec: cd, tr: tr, writable: true, toldWritable: true, caps: capsOf(cd, tr)}
}

// BenchmarkFramePath measures mai's own work per echoed frame, with no
// socket and no scheduler in the way: bytes handed to the read path are
// decoded, delivered to OnFrame, re-encoded by Send and written to a
// transport that takes everything. "handwritten" is the least any echo
// server does for the same bytes (parse the header, copy the frame into a
// pooled output buffer, write it), so the ratio of the two is the engine's
// overhead on the path, measured side by side in one run:
//
//	go test -run '^$' -bench FramePath -benchmem ./engine/
func BenchmarkFramePath(b *testing.B) {
	for _, bc := range []struct {
		name   string
		frames int
	}{{"1frame", 1}, {"16frames", 16}} {
		in := make([]byte, 0, bc.frames*68)
		for range bc.frames {
			in = append(in, frame(make([]byte, 64))...)
		}
		b.Run("mai/"+bc.name, func(b *testing.B) {
			e, err := New(lengthField(b, 1<<20), echo{})
			if err != nil {
				b.Fatal(err)
			}
			defer shutdown(b, e)
			d := &discard{}
			c := bareConn(b, e, d)
			b.ReportAllocs()
			for b.Loop() {
				c.input(in)
			}
			if want := b.N * len(in); d.n != want {
				b.Fatalf("wrote %d bytes, want %d", d.n, want)
			}
		})
		b.Run("handwritten/"+bc.name, func(b *testing.B) {
			pool, err := bufpool.New(bufpool.Config{InitialSize: 4 << 10, MaxIdle: 16})
			if err != nil {
				b.Fatal(err)
			}
			d := &discard{}
			b.ReportAllocs()
			for b.Loop() {
				out := pool.Get()
				for p := in; len(p) >= 4; {
					n := 4 + int(binary.BigEndian.Uint32(p))
					if len(p) < n {
						break
					}
					out.B = append(out.B, p[:n]...)
					p = p[n:]
				}
				_, _ = d.write(out.B)
				pool.Put(out)
			}
			if want := b.N * len(in); d.n != want {
				b.Fatalf("wrote %d bytes, want %d", d.n, want)
			}
		})
	}
}

// signalWriter is a transport whose socket takes every byte at once and
// that signals each write on wrote.
type signalWriter struct{ wrote chan struct{} }

func (s *signalWriter) write(p []byte) (int, error) {
	select {
	case s.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}
func (*signalWriter) waitWritable() error { return nil }
func (*signalWriter) close()              {}

// BenchmarkSendFromOutside is a Send from a goroutine that is not the
// connection's runner (a push to a client, a client's request) through
// to its write: each Send (almost always) hands the flush loop to a new
// flusher goroutine, whose closures are what it allocates, and the next
// Send waits until the bytes were written, so the time includes waking
// the benchmark's own goroutine. Reusing idle flushers instead, woken
// through a channel, was slower (650-790 against 520-640 ns per Send,
// alternating runs) and saved nothing measurable in the bench's s4, where
// the socket is full at most flushes (server CPU 0.99x, 7 rounds).
//
//	go test -run '^$' -bench SendFromOutside -benchmem ./engine/
func BenchmarkSendFromOutside(b *testing.B) {
	e, err := New(lengthField(b, 1<<20), echo{})
	if err != nil {
		b.Fatal(err)
	}
	defer shutdown(b, e)
	tr := &signalWriter{wrote: make(chan struct{}, 1)}
	c := bareConn(b, e, tr)
	payload := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := c.Send(payload); err != nil {
			b.Fatal(err)
		}
		<-tr.wrote
	}
}

// BenchmarkQueueFill queues what a full queue holds under the default
// water marks (the 1 MiB high mark plus one frame: 17 frames of 64 KiB)
// in one run of callbacks, as a burst of replies to a pipelining peer
// does, and lets the runner write it at the end of the run (the marks are
// set above it, so no flusher goroutine takes part): one iteration is one
// fill and one write. It shows what a fill allocates when the pool's
// largest kept buffer (WithMaxPooledBufferSize) is under the queue's
// size, and when it is not.
//
//	go test -run '^$' -bench QueueFill -benchmem ./engine/
func BenchmarkQueueFill(b *testing.B) {
	for _, bc := range []struct {
		name   string
		pooled int
	}{{"pooled1MiB", 1 << 20}, {"pooled2MiB", 2 << 20}} {
		b.Run(bc.name, func(b *testing.B) {
			e, err := New(lengthField(b, 1<<20), echo{}, mai.WithMaxPooledBufferSize(bc.pooled),
				mai.WithWriteBufferWaterMarks(4<<20, 8<<20))
			if err != nil {
				b.Fatal(err)
			}
			defer shutdown(b, e)
			d := &discard{}
			c := bareConn(b, e, d)
			payload := make([]byte, 64<<10)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c.serial.Lock()
				c.setFlag(flRunning)
				for range 17 {
					if err := c.Send(payload); err != nil {
						b.Fatal(err)
					}
				}
				c.release()
			}
			if want := b.N * 17 * (4 + len(payload)); d.n != want {
				b.Fatalf("wrote %d bytes, want %d", d.n, want)
			}
		})
	}
}

// BenchmarkLargeFrameInput is a frame arriving 64 KiB at a time through
// the read path, with no socket: what holding a partial frame costs,
// which for a frame over the pool's largest buffer (2 MiB by default)
// includes allocating its room. See appendPending's reserve.
//
//	go test -run '^$' -bench LargeFrameInput -benchmem ./engine/
func BenchmarkLargeFrameInput(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			e, err := New(lengthField(b, 16<<20), frameFunc(func([]byte) {}))
			if err != nil {
				b.Fatal(err)
			}
			defer shutdown(b, e)
			c := bareConn(b, e, &discard{})
			whole := frame(make([]byte, size))
			b.ReportAllocs()
			b.SetBytes(int64(len(whole)))
			for b.Loop() {
				for off := 0; off < len(whole); off += 64 << 10 {
					c.input(whole[off:min(off+64<<10, len(whole))])
				}
			}
		})
	}
}
