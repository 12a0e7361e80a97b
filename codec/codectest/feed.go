package codectest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"

	"github.com/mai-go/mai/codec"
)

// scribbleByte overwrites bytes the codec no longer owns.
const scribbleByte = 0xA5

// feeder drives one Codec the way the engine does: it buffers what Decode
// has not consumed and calls Decode again with it plus each new read.
//
// In move mode the pending bytes move to another buffer on every read, and
// both consumed bytes and the old buffer are overwritten, so that a codec
// that keeps src (or a frame) across calls reads garbage. Otherwise input
// is only ever appended, and decoded frames that alias it stay valid after
// the feed.
type feeder[F any] struct {
	c    codec.Codec[F]
	sz   codec.Sizer
	move bool

	cur  []byte // cur[lo:] is pending input
	lo   int
	snap []byte // move mode: copy of src, to catch a Decode that writes to it

	want    int   // Sizer: the frame size; Decode waits for that many bytes
	err     error // the protocol error that ended the stream
	onFrame func(F) error

	calls, fed, reads, frames int
}

func newFeeder[F any](c codec.Codec[F], move bool, onFrame func(F) error) *feeder[F] {
	fd := &feeder[F]{c: c, move: move, onFrame: onFrame}
	fd.sz, _ = c.(codec.Sizer)
	return fd
}

// pending returns the bytes received and not consumed.
func (fd *feeder[F]) pending() []byte { return fd.cur[fd.lo:] }

// feed delivers one read. It returns a contract violation (or an error from
// onFrame); a protocol error from Decode is kept in fd.err and ends the
// stream, as the engine closes the connection.
func (fd *feeder[F]) feed(chunk []byte) error {
	if fd.err != nil || len(chunk) == 0 {
		return nil
	}
	fd.fed += len(chunk)
	fd.reads++
	if fd.move {
		// A new buffer every time: reusing the old one could put the same
		// bytes back under a pointer the codec kept.
		next := make([]byte, 0, len(fd.cur)-fd.lo+len(chunk))
		next = append(next, fd.cur[fd.lo:]...)
		next = append(next, chunk...)
		fill(fd.cur)
		fd.cur, fd.lo = next, 0
	} else {
		fd.cur = append(fd.cur, chunk...)
	}
	return fd.drain()
}

func fill(b []byte) {
	for i := range b {
		b[i] = scribbleByte
	}
}

type decoded[F any] struct {
	frame F
	n     int
	err   error
}

func (fd *feeder[F]) decode(src []byte) (d decoded[F], perr error) {
	defer func() {
		if r := recover(); r != nil {
			perr = fmt.Errorf("Decode(%s) panicked: %v\n%s", show(src), r, debug.Stack())
		}
	}()
	d.frame, d.n, d.err = fd.c.Decode(src)
	return d, nil
}

func (fd *feeder[F]) frameSize(src []byte) (size int, perr error) {
	defer func() {
		if r := recover(); r != nil {
			perr = fmt.Errorf("FrameSize(%s) panicked: %v\n%s", show(src), r, debug.Stack())
		}
	}()
	return fd.sz.FrameSize(src), nil
}

// drain calls Decode until it asks for more bytes or fails.
func (fd *feeder[F]) drain() error {
	for fd.lo < len(fd.cur) {
		src := fd.cur[fd.lo:len(fd.cur):len(fd.cur)]
		if fd.want > len(src) {
			return nil
		}
		if fd.move {
			fd.snap = append(fd.snap[:0], src...)
		}
		fd.calls++
		if fd.calls > fd.fed+fd.reads {
			return fmt.Errorf("the codec's Decode was called %d times for %d bytes in %d reads: no progress", fd.calls, fd.fed, fd.reads)
		}
		d, perr := fd.decode(src)
		if perr != nil {
			return perr
		}
		if fd.move && !bytes.Equal(fd.snap, src) {
			return fmt.Errorf("the codec's Decode modified src: was %s, now %s", show(fd.snap), show(src))
		}
		waited := fd.want
		fd.want = 0
		switch {
		case d.err == nil && d.n == 0:
			if !reflect.ValueOf(&d.frame).Elem().IsZero() {
				return fmt.Errorf("Decode(%s) returned n == 0 with the frame %s: a frame must consume at least one byte, and a need-more answer must carry the zero frame", show(src), show(d.frame))
			}
			if waited > 0 {
				return fmt.Errorf("FrameSize promised a %d-byte frame, but Decode(%s) still asks for more with %d bytes", waited, show(src), len(src))
			}
			if fd.sz != nil {
				size, perr := fd.frameSize(src)
				if perr != nil {
					return perr
				}
				if size < 0 || (size > 0 && size <= len(src)) {
					return fmt.Errorf("FrameSize(%s) = %d after Decode asked for more with %d bytes: want 0 or more than %d", show(src), size, len(src), len(src))
				}
				fd.want = size
			}
			return nil
		case d.err == nil:
			if d.n < 0 || d.n > len(src) {
				return fmt.Errorf("Decode(%s) returned a frame with n = %d, want 0 < n <= %d", show(src), d.n, len(src))
			}
			if waited > 0 && d.n != waited {
				return fmt.Errorf("FrameSize promised a %d-byte frame, but Decode(%s) consumed %d bytes", waited, show(src), d.n)
			}
			fd.frames++
			if fd.onFrame != nil {
				if err := fd.onFrame(d.frame); err != nil {
					return err
				}
			}
			fd.consume(d.n)
		case d.err == codec.ErrSkip:
			if d.n <= 0 || d.n > len(src) {
				return fmt.Errorf("Decode(%s) returned ErrSkip with n = %d, want 0 < n <= %d", show(src), d.n, len(src))
			}
			fd.consume(d.n)
		case errors.Is(d.err, codec.ErrSkip):
			return fmt.Errorf("Decode(%s) returned a wrapped ErrSkip (%v): return codec.ErrSkip itself", show(src), d.err)
		default:
			fd.err = d.err
			return nil
		}
	}
	return nil
}

func (fd *feeder[F]) consume(n int) {
	if fd.move {
		fill(fd.cur[fd.lo : fd.lo+n])
	}
	fd.lo += n
}
