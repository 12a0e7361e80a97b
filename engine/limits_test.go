package engine

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mai-go/mai"
)

// TestMaxFrameSizeHoweverItArrives: WithMaxFrameSize below the codec's
// own limit is enforced on every frame, whether it arrives whole in one
// read or in pieces: a frame at the limit is delivered, one over it closes
// the connection with ErrFrameTooLarge and never reaches OnFrame. Before,
// only a partial frame was checked, so a large frame that arrived in one
// read got through.
func TestMaxFrameSizeHoweverItArrives(t *testing.T) {
	const limit = 100 // encoded bytes: 4 of header and 96 of payload
	for _, tc := range []struct {
		name   string
		pieces func(b []byte) [][]byte
	}{
		{"whole", func(b []byte) [][]byte { return [][]byte{b} }},
		{"split", func(b []byte) [][]byte { return [][]byte{b[:10], b[10:]} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr mai.Transport) {
				r := newRecorder(t)
				_, addr := server(t, r, lengthField(t, 1000), mai.WithTransport(tr), mai.WithMaxFrameSize(limit))
				c := dial(t, addr)
				ctx := recv(t, r.ready, "ready")
				atLimit := bytes.Repeat([]byte{'a'}, limit-4)
				for _, p := range tc.pieces(frame(atLimit)) {
					if _, err := c.Write(p); err != nil {
						t.Fatal(err)
					}
				}
				if f := recv(t, r.frames, "the frame at the limit"); !bytes.Equal(f.b, atLimit) {
					t.Fatalf("frame of %d bytes, want the %d at the limit", len(f.b), len(atLimit))
				}
				for _, p := range tc.pieces(frame(bytes.Repeat([]byte{'o'}, 500))) {
					if _, err := c.Write(p); err != nil {
						break // the server may have closed already
					}
				}
				expectClosedByPeer(t, c)
				recv(t, r.closed, "OnClosed")
				if cause := r.causeOf(ctx.ID()); !errors.Is(cause, mai.ErrFrameTooLarge) {
					t.Errorf("OnClosed: %v, want ErrFrameTooLarge", cause)
				}
				select {
				case f := <-r.frames:
					t.Errorf("a frame of %d bytes reached OnFrame", len(f.b))
				default:
				}
				r.check()
			})
		})
	}
}

// TestPartialFrameReserve: a header that declares a large frame makes the
// connection reserve room for at most four times what arrived of the frame
// (pendReserve at least), not the size the header declares; the room
// grows with what arrives, and the whole frame is delivered.
func TestPartialFrameReserve(t *testing.T) {
	const size = 8 << 20
	var got []byte
	h := frameFunc(func(f []byte) { got = append(got[:0], f...) })
	e, err := New(lengthField(t, size), h)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, e)
	c := bareConn(t, e, &discard{})
	whole := frame(bytes.Repeat([]byte{'z'}, size))
	c.input(whole[:5]) // the header and one byte
	if c.pend == nil || cap(c.pend.B) > pendReserve {
		t.Fatalf("5 bytes of an 8 MiB frame reserved %d bytes, want at most %d", cap(c.pend.B), pendReserve)
	}
	for off, piece := 5, 64<<10; off < len(whole); off += piece {
		c.input(whole[off:min(off+piece, len(whole))])
		if c.pend != nil && cap(c.pend.B) > max(4*c.unread(), pendReserve) {
			t.Fatalf("%d bytes held in %d of room, over four times as much", c.unread(), cap(c.pend.B))
		}
	}
	if !bytes.Equal(got, whole[4:]) {
		t.Fatalf("delivered %d bytes, want the %d of the frame", len(got), size)
	}
}

// frameFunc is a Handler whose OnFrame calls the function.
type frameFunc func(f []byte)

func (frameFunc) OnReady(mai.Context[[]byte]) error                    { return nil }
func (fn frameFunc) OnFrame(_ mai.Context[[]byte], f []byte) error     { fn(f); return nil }
func (frameFunc) OnTimeout(_ mai.Context[[]byte], t mai.Timeout) error { return t.Err() }
func (frameFunc) OnError(mai.Context[[]byte], error)                   {}
func (frameFunc) OnClosed(mai.Context[[]byte], error)                  {}
