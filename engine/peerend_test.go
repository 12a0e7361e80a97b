package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/mai-go/mai"
)

// The peer's end: what a connection does with the input it holds, and
// how it reports the end, when the peer closes, half closes or resets.

// TestPeerEndDeliversHeldFrames: a client pipelines requests without
// reading the large replies, so the server pauses and holds the rest of
// its requests undecoded; then the client ends the connection. The frames
// that arrived whole are still delivered, in order, before OnClosed (their
// Sends fail with ErrClosed, which is not reported as an error), and
// OnClosed tells how the peer ended: io.EOF, ErrPartialFrame for the
// bytes of a frame it did not finish, or its reset. An OnFrame error
// other than ErrClosed ends the delivery and is reported.
func TestPeerEndDeliversHeldFrames(t *testing.T) {
	const requests = 64
	reply := bytes.Repeat([]byte{'R'}, 16<<10) // 1 MiB in all: more than any socket here holds
	errStop := errors.New("stop here")
	halfClose := (*net.TCPConn).CloseWrite
	for _, tc := range []struct {
		name      string
		partial   []byte // sent after the requests
		end       func(c *net.TCPConn) error
		failAt    int // OnFrame of this request returns errStop, if not 0
		delivered int // requests OnFrame sees
		cause     func(err error) bool
	}{
		{"half close", nil, halfClose, 0, requests,
			func(err error) bool { return errors.Is(err, io.EOF) }},
		{"half close inside a frame", []byte{0, 0, 1}, halfClose, 0, requests,
			func(err error) bool {
				return errors.Is(err, mai.ErrPartialFrame) && strings.Contains(err.Error(), "(3 bytes)")
			}},
		{"reset", nil, func(c *net.TCPConn) error {
			if err := c.SetLinger(0); err != nil {
				return err
			}
			return c.Close()
		}, 0, requests, func(err error) bool { return err != nil && !errors.Is(err, mai.ErrPartialFrame) }},
		{"handler error while delivering", nil, halfClose, 40, 41,
			func(err error) bool { return errors.Is(err, io.EOF) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr mai.Transport) {
				r := newRecorder(t)
				got := make(chan string, requests)
				stopAt := fmt.Sprintf("req %d", tc.failAt)
				r.onFrame = func(c mai.Context[[]byte], f []byte) error {
					got <- string(f)
					if tc.failAt > 0 && string(f) == stopAt {
						return errStop
					}
					return c.Send(reply)
				}
				_, addr := server(t, r, lengthField(t, 64<<10), mai.WithTransport(tr),
					mai.WithWriteBufferWaterMarks(lowWater, highWater),
					mai.WithListenControl(sockBufs(0, serverSnd)))
				c := dialBufs(t, addr, clientRcv, 0).(*net.TCPConn)
				ctx := recv(t, r.ready, "ready")
				var in []byte
				for i := range requests {
					in = append(in, frame(fmt.Appendf(nil, "req %d", i))...)
				}
				in = append(in, tc.partial...)
				if _, err := c.Write(in); err != nil {
					t.Fatal(err)
				}
				// Every byte reached the server, which paused before it
				// decoded them all.
				eventually(t, "the server to read every request while paused", func() bool {
					info := ctx.Info()
					return info.BytesIn == uint64(len(in)) && !info.Writable
				})
				if n := ctx.Info().FramesIn; n >= requests || tc.failAt > 0 && n > uint64(tc.failAt) {
					t.Fatalf("the server decoded %d requests before the end: too few were held", n)
				}
				if err := tc.end(c); err != nil {
					t.Fatal(err)
				}
				if id := recv(t, r.closed, "OnClosed"); id != ctx.ID() {
					t.Fatalf("OnClosed for %v, want %v", id, ctx.ID())
				}
				close(got)
				i := 0
				for s := range got {
					if want := fmt.Sprintf("req %d", i); s != want {
						t.Fatalf("frame %d is %q, want %q", i, s, want)
					}
					i++
				}
				if i != tc.delivered {
					t.Errorf("OnFrame saw %d of the %d requests, want %d", i, requests, tc.delivered)
				}
				if cause := r.causeOf(ctx.ID()); !tc.cause(cause) {
					t.Errorf("OnClosed: %v", cause)
				}
				errs := r.errorsOf(ctx.ID())
				for _, err := range errs {
					if errors.Is(err, mai.ErrClosed) {
						t.Errorf("OnError: %v", err)
					}
				}
				if tc.failAt > 0 && (len(errs) != 1 || !errors.Is(errs[0], errStop)) {
					t.Errorf("OnError: %v, want the handler's error", errs)
				}
				r.check()
			})
		})
	}
}
