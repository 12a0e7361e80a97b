package engine

import (
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/mai-go/mai"
)

// BenchmarkEcho measures one echoed frame over loopback: a client on a
// plain net.Conn writes a batch of frames and reads the echoes back, with
// no allocation of its own, so allocs/op are the engine's per frame.
//
//	go test -run '^$' -bench BenchmarkEcho -benchmem ./engine/
func BenchmarkEcho(b *testing.B) {
	for _, tr := range transports {
		for _, bc := range []struct {
			name  string
			size  int
			batch int
		}{{"64B", 64, 1}, {"64B-pipelined16", 64, 16}, {"4KiB", 4096, 1}} {
			b.Run(tr.String()+"/"+bc.name, func(b *testing.B) {
				benchEcho(b, tr, bc.size, bc.batch)
			})
		}
	}
}

func benchEcho(b *testing.B, tr mai.Transport, size, batch int) {
	e, err := New(lengthField(b, 1<<20), echo{}, mai.WithTransport(tr))
	if err != nil {
		b.Fatal(err)
	}
	defer shutdown(b, e)
	addr, err := e.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	echoClientLoop(b, addr.String(), size, batch)
}

// echoClientLoop is the benchmark's client: on a plain net.Conn it writes
// batch frames of size bytes and reads the echoes back, b.N times, with no
// allocation of its own, and reports ns per frame.
func echoClientLoop(b *testing.B, addr string, size, batch int) {
	c, err := net.Dial("tcp", addr)
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
	roundTrip := func() {
		if _, err := c.Write(out); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, in); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ { // warm the pools
		roundTrip()
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		roundTrip()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/frame")
}
