// Command gnet is the echo server on github.com/panjf2000/gnet/v2: OnTraffic
// decodes every complete frame in the connection's inbound buffer (gnet keeps
// a trailing partial frame there by itself) and writes the replies with one
// Write.
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"log"
	"sync"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/mai-go/mai/bench/internal/srvkit"
)

func main() { srvkit.Main("gnet", start) }

type server struct {
	gnet.BuiltinEventEngine
	booted chan gnet.Engine
}

// outPool holds reply buffers: one per OnTraffic call in progress.
var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func (s *server) OnBoot(eng gnet.Engine) gnet.Action {
	s.booted <- eng
	return gnet.None
}

func (s *server) OnOpen(gnet.Conn) ([]byte, gnet.Action) {
	srvkit.Opened()
	return nil, gnet.None
}

func (s *server) OnClose(gnet.Conn, error) gnet.Action {
	srvkit.Closed()
	return gnet.None
}

func (s *server) OnTraffic(c gnet.Conn) gnet.Action {
	bp := outPool.Get().(*[]byte)
	out := (*bp)[:0]
	action := gnet.None
	for {
		avail := c.InboundBuffered()
		if avail < srvkit.HeaderLen {
			break
		}
		h, err := c.Peek(srvkit.HeaderLen)
		if err != nil {
			break
		}
		n := int(binary.BigEndian.Uint32(h))
		if n > srvkit.MaxFrame {
			action = gnet.Close
			break
		}
		if avail < srvkit.HeaderLen+n {
			break
		}
		f, err := c.Peek(srvkit.HeaderLen + n)
		if err != nil {
			break
		}
		out = binary.BigEndian.AppendUint32(out, uint32(n))
		out = append(out, f[srvkit.HeaderLen:]...)
		c.Discard(srvkit.HeaderLen + n)
	}
	if len(out) > 0 {
		if _, err := c.Write(out); err != nil {
			action = gnet.Close
		}
	}
	if cap(out) <= 256<<10 {
		*bp = out
		outPool.Put(bp)
	}
	return action
}

func start(addr string) (string, func(context.Context) error, error) {
	s := &server{booted: make(chan gnet.Engine, 1)}
	errc := make(chan error, 1)
	go func() {
		errc <- gnet.Run(s, "tcp://"+addr,
			gnet.WithMulticore(false),
			gnet.WithLogger(quietLogger{}))
	}()
	var eng gnet.Engine
	select {
	case eng = <-s.booted:
	case err := <-errc:
		return "", nil, err
	}
	fd, err := eng.Dup()
	if err != nil {
		return "", nil, err
	}
	sa, err := unix.Getsockname(fd)
	unix.Close(fd)
	if err != nil {
		return "", nil, err
	}
	in4, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		return "", nil, fmt.Errorf("unexpected listener address %T", sa)
	}
	la := fmt.Sprintf("%d.%d.%d.%d:%d", in4.Addr[0], in4.Addr[1], in4.Addr[2], in4.Addr[3], in4.Port)
	return la, eng.Stop, nil
}

// quietLogger drops gnet's informational messages (gnet logs to stdout by
// default, which is the control channel here) and sends the rest to stderr.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...any)     {}
func (quietLogger) Infof(string, ...any)      {}
func (quietLogger) Warnf(f string, a ...any)  { log.Printf(f, a...) }
func (quietLogger) Errorf(f string, a ...any) { log.Printf(f, a...) }
func (quietLogger) Fatalf(f string, a ...any) { log.Fatalf(f, a...) }
