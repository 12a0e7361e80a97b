//go:build linux

package engine

import (
	"context"
	"encoding/binary"
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
	echoClientLoop(b, ln.Addr().String(), size, batch)
}
