//go:build linux

package engine

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/cloudwego/netpoll"
)

// BenchmarkRawNetpollEcho is the same exchange as BenchmarkEcho against a
// hand-written netpoll server, for comparison in one run:
//
//	go test -run '^$' -bench 'Echo' -benchmem ./engine/
func BenchmarkRawNetpollEcho(b *testing.B) {
	for _, bc := range []struct {
		name  string
		size  int
		batch int
	}{{"64B", 64, 1}, {"64B-pipelined16", 64, 16}, {"4KiB", 4096, 1}} {
		b.Run(bc.name, func(b *testing.B) { benchRawNetpoll(b, bc.size, bc.batch) })
	}
}

func benchRawNetpoll(b *testing.B, size, batch int) {
	ln, err := netpoll.CreateListener("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	loop, err := netpoll.NewEventLoop(func(_ context.Context, c netpoll.Connection) error {
		r, w := c.Reader(), c.Writer()
		for r.Len() >= 4 {
			h, _ := r.Peek(4)
			n := int(binary.BigEndian.Uint32(h))
			if r.Len() < 4+n {
				break
			}
			f, _ := r.Next(4 + n)
			if _, err := w.WriteBinary(f); err != nil {
				return err
			}
		}
		_ = r.Release()
		return w.Flush()
	})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = loop.Serve(ln) }()
	defer func() { _ = loop.Shutdown(context.Background()) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	out := make([]byte, 0, batch*(4+size))
	for i := 0; i < batch; i++ {
		out = binary.BigEndian.AppendUint32(out, uint32(size))
		out = append(out, make([]byte, size)...)
	}
	in := make([]byte, len(out))
	rt := func() {
		if _, err := c.Write(out); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, in); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		rt()
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rt()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/frame")
}
