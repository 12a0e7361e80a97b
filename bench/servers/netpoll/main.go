// Command netpoll is the echo server on raw github.com/cloudwego/netpoll:
// OnRequest decodes every complete frame in the input, moves a trailing
// partial frame to a per-connection buffer (netpoll calls OnRequest again
// at once while unread input remains, so it must consume everything), and
// flushes the replies of one call with one write.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"net"

	"github.com/cloudwego/netpoll"

	"github.com/mai-go/mai/bench/internal/srvkit"
)

func main() { srvkit.Main("netpoll", start) }

type stateKey struct{}

// connState keeps the bytes of a frame that has not fully arrived.
type connState struct {
	pend []byte
}

var errTooLarge = errors.New("frame too large")

func start(addr string) (string, func(context.Context) error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	nl, err := netpoll.ConvertListener(ln)
	if err != nil {
		return "", nil, err
	}
	loop, err := netpoll.NewEventLoop(onRequest,
		netpoll.WithOnPrepare(func(c netpoll.Connection) context.Context {
			srvkit.Opened()
			c.AddCloseCallback(func(netpoll.Connection) error {
				srvkit.Closed()
				return nil
			})
			return context.WithValue(context.Background(), stateKey{}, &connState{})
		}))
	if err != nil {
		return "", nil, err
	}
	go loop.Serve(nl)
	return ln.Addr().String(), loop.Shutdown, nil
}

func onRequest(ctx context.Context, c netpoll.Connection) error {
	st := ctx.Value(stateKey{}).(*connState)
	r, w := c.Reader(), c.Writer()
	defer r.Release()
	for {
		avail := r.Len()
		if avail == 0 {
			break
		}
		if len(st.pend) > 0 {
			done, err := st.fill(r, avail)
			if err != nil {
				return err
			}
			if !done {
				break
			}
			// A frame rebuilt from several reads: copy it out, pend is
			// reused.
			n := len(st.pend) - srvkit.HeaderLen
			out, err := w.Malloc(srvkit.HeaderLen + n)
			if err != nil {
				return err
			}
			binary.BigEndian.PutUint32(out, uint32(n))
			copy(out[srvkit.HeaderLen:], st.pend[srvkit.HeaderLen:])
			st.pend = st.pend[:0]
			if cap(st.pend) > 64<<10 {
				st.pend = nil
			}
			continue
		}
		if avail < srvkit.HeaderLen {
			b, _ := r.Next(avail)
			st.pend = append(st.pend, b...)
			break
		}
		h, err := r.Peek(srvkit.HeaderLen)
		if err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(h))
		if n > srvkit.MaxFrame {
			return errTooLarge
		}
		if avail < srvkit.HeaderLen+n {
			b, _ := r.Next(avail)
			st.pend = append(make([]byte, 0, srvkit.HeaderLen+n), b...)
			break
		}
		r.Skip(srvkit.HeaderLen)
		p, err := r.Next(n)
		if err != nil {
			return err
		}
		hdr, err := w.Malloc(srvkit.HeaderLen)
		if err != nil {
			return err
		}
		binary.BigEndian.PutUint32(hdr, uint32(n))
		// WriteBinary keeps a reference to large slices until Flush, which
		// happens before Release.
		if _, err := w.WriteBinary(p); err != nil {
			return err
		}
	}
	if w.MallocLen() > 0 {
		return w.Flush()
	}
	return nil
}

// fill moves up to avail input bytes into the pending frame and reports
// whether it is now complete.
func (st *connState) fill(r netpoll.Reader, avail int) (bool, error) {
	if len(st.pend) < srvkit.HeaderLen {
		k := min(srvkit.HeaderLen-len(st.pend), avail)
		b, _ := r.Next(k)
		st.pend = append(st.pend, b...)
		avail -= k
		if len(st.pend) < srvkit.HeaderLen {
			return false, nil
		}
	}
	n := int(binary.BigEndian.Uint32(st.pend))
	if n > srvkit.MaxFrame {
		return false, errTooLarge
	}
	total := srvkit.HeaderLen + n
	if k := min(total-len(st.pend), avail); k > 0 {
		b, _ := r.Next(k)
		if cap(st.pend) < total {
			st.pend = append(make([]byte, 0, total), st.pend...)
		}
		st.pend = append(st.pend, b...)
	}
	return len(st.pend) == total, nil
}
