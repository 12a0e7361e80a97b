package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/mai-go/mai/bench/internal/stats"
)

// TestServers checks every echo server on the framing cases the load
// generator does not force: many frames in one write, a frame trickled a
// byte at a time, a large frame in uneven chunks, and an empty frame.
func TestServers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every server")
	}
	dir := t.TempDir()
	binDir = dir
	taskset = ""
	impls, err := buildAll(allImpls, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(impls) != len(allImpls) {
		t.Errorf("only %v build", impls)
	}
	for _, impl := range impls {
		t.Run(impl, func(t *testing.T) {
			srv, err := startServer(impl, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.stop("quit")
			c, err := net.Dial("tcp", srv.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			rng := rand.New(rand.NewPCG(1, 2))

			// Coalesced: 200 frames of assorted sizes in one write.
			var want [][]byte
			var batch []byte
			for i := range 200 {
				p := make([]byte, i*7%300)
				stats.FillPattern(p, i)
				want = append(want, p)
				batch = appendFrame(batch, p)
			}
			write(t, c, batch)
			readAll(t, c, want)

			// Trickled: one frame a byte at a time, then the next frame
			// sharing a write with the first one's last byte.
			p1, p2 := make([]byte, 100), make([]byte, 50)
			stats.FillPattern(p1, 1)
			stats.FillPattern(p2, 2)
			both := appendFrame(appendFrame(nil, p1), p2)
			cut := 4 + len(p1) - 1
			for i := range cut {
				write(t, c, both[i:i+1])
				time.Sleep(time.Millisecond / 4)
			}
			write(t, c, both[cut:])
			readAll(t, c, [][]byte{p1, p2})

			// Large: a 1 MiB frame in uneven chunks, with a small frame
			// after it.
			big := make([]byte, 1<<20)
			stats.FillPattern(big, 3)
			frames := appendFrame(appendFrame(nil, big), p2)
			go func() {
				for rest := frames; len(rest) > 0; {
					n := min(len(rest), 1+rng.IntN(100<<10))
					if _, err := c.Write(rest[:n]); err != nil {
						return
					}
					rest = rest[n:]
				}
			}()
			readAll(t, c, [][]byte{big, p2})

			// Empty frame.
			write(t, c, appendFrame(nil, nil))
			readAll(t, c, [][]byte{{}})
		})
	}
}

func appendFrame(dst, p []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(p)))
	return append(dst, p...)
}

func write(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, c net.Conn, want [][]byte) {
	t.Helper()
	var hdr [4]byte
	for i, w := range want {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if int(n) != len(w) {
			t.Fatalf("frame %d: length %d, want %d", i, n, len(w))
		}
		got := make([]byte, n)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("frame %d: payload differs", i)
		}
	}
}
