// Command std is the echo server on Go's net package: one goroutine per
// connection, a bufio.Reader and a bufio.Writer, flushed when the reader
// has no complete frame left, so the replies to one read go out in one
// write.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"

	"github.com/mai-go/mai/bench/internal/srvkit"
)

func main() { srvkit.Main("std", start) }

func start(addr string) (string, func(context.Context) error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				srvkit.Opened()
				serve(c)
				srvkit.Closed()
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	stop := func(ctx context.Context) error {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		return nil
	}
	return ln.Addr().String(), stop, nil
}

func serve(c net.Conn) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	var payload []byte
	var hdr [srvkit.HeaderLen]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > srvkit.MaxFrame {
			return
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		p := payload[:n]
		if _, err := io.ReadFull(r, p); err != nil {
			return
		}
		w.Write(hdr[:])
		if _, err := w.Write(p); err != nil {
			return
		}
		// Flush once the input holds no further complete frame: the
		// replies to everything one read brought go out together.
		if !completeFrameBuffered(r) {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// completeFrameBuffered reports whether r holds a whole frame without
// reading from the connection.
func completeFrameBuffered(r *bufio.Reader) bool {
	b := r.Buffered()
	if b < srvkit.HeaderLen {
		return false
	}
	h, _ := r.Peek(srvkit.HeaderLen)
	return b >= srvkit.HeaderLen+int(binary.BigEndian.Uint32(h))
}
