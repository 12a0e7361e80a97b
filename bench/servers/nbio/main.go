// Command nbio is the echo server on github.com/lesismal/nbio: OnData
// decodes every complete frame of the bytes read (prefixed by a partial
// frame kept from earlier reads, since nbio reuses its read buffer), keeps
// a trailing partial frame in the connection's session and writes the
// replies with one Write.
package main

import (
	"context"
	"encoding/binary"
	"sync"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"

	"github.com/mai-go/mai/bench/internal/srvkit"
)

func main() { srvkit.Main("nbio", start) }

// session holds a frame that has not fully arrived.
type session struct {
	pend []byte
}

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func onData(c *nbio.Conn, data []byte) {
	s, _ := c.Session().(*session)
	if s == nil {
		s = &session{}
		c.SetSession(s)
	}
	in := data
	if len(s.pend) > 0 {
		s.pend = append(s.pend, data...)
		in = s.pend
	}
	bp := outPool.Get().(*[]byte)
	out := (*bp)[:0]
	for len(in) >= srvkit.HeaderLen {
		n := int(binary.BigEndian.Uint32(in))
		if n > srvkit.MaxFrame {
			c.Close()
			return
		}
		if len(in) < srvkit.HeaderLen+n {
			break
		}
		out = binary.BigEndian.AppendUint32(out, uint32(n))
		out = append(out, in[srvkit.HeaderLen:srvkit.HeaderLen+n]...)
		in = in[srvkit.HeaderLen+n:]
	}
	// Keep the partial frame left, if any: copy it to the front of pend.
	switch {
	case len(in) == 0:
		s.pend = s.pend[:0]
		if cap(s.pend) > 64<<10 {
			s.pend = nil
		}
	case len(s.pend) > 0:
		s.pend = s.pend[:copy(s.pend, in)]
	default:
		s.pend = append(s.pend, in...)
	}
	if len(out) > 0 {
		c.Write(out)
	}
	if cap(out) <= 256<<10 {
		*bp = out
		outPool.Put(bp)
	}
}

func start(addr string) (string, func(context.Context) error, error) {
	logging.SetLevel(logging.LevelError)
	eng := nbio.NewEngine(nbio.Config{
		Network: "tcp",
		Addrs:   []string{addr},
		NPoller: 1,
	})
	eng.OnOpen(func(*nbio.Conn) { srvkit.Opened() })
	eng.OnClose(func(*nbio.Conn, error) { srvkit.Closed() })
	eng.OnData(onData)
	if err := eng.Start(); err != nil {
		return "", nil, err
	}
	return eng.Addrs[0], eng.Shutdown, nil
}
