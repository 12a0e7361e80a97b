package codec_test

import (
	"errors"
	"testing"

	"github.com/mai-go/mai/codec"
)

// result is what decoding a stream gave: the frames (copied into strings),
// the bytes dropped with ErrSkip, the bytes left pending, and the error that
// ended the stream.
type result struct {
	frames  []string
	skipped int
	pending int
	err     error
}

// decodeReads feeds reads to c the way the engine does (pending bytes plus
// each new read, Decode until it asks for more) and returns what came out.
func decodeReads(t *testing.T, c codec.Codec[[]byte], reads ...[]byte) result {
	t.Helper()
	var r result
	var buf []byte
	for _, rd := range reads {
		buf = append(buf, rd...)
		for len(buf) > 0 {
			frame, n, err := c.Decode(buf)
			if err == codec.ErrSkip {
				if n <= 0 || n > len(buf) {
					t.Fatalf("ErrSkip with n = %d for %d bytes", n, len(buf))
				}
				r.skipped += n
				buf = buf[n:]
				continue
			}
			if err != nil {
				r.err = err
				r.pending = len(buf)
				return r
			}
			if n == 0 {
				break
			}
			if n < 0 || n > len(buf) {
				t.Fatalf("n = %d for %d bytes", n, len(buf))
			}
			if cap(frame) != len(frame) {
				t.Errorf("frame %q has spare capacity %d", frame, cap(frame)-len(frame))
			}
			r.frames = append(r.frames, string(frame))
			buf = buf[n:]
		}
	}
	r.pending = len(buf)
	return r
}

// bytewise splits s into one-byte reads.
func bytewise(s string) [][]byte {
	reads := make([][]byte, len(s))
	for i := range s {
		reads[i] = []byte{s[i]}
	}
	return reads
}

func isTooLarge(err error) bool { return errors.Is(err, codec.ErrFrameTooLarge) }

func mustEncode(t *testing.T, c codec.Codec[[]byte], frame []byte) []byte {
	t.Helper()
	b, err := c.Encode(nil, frame)
	if err != nil {
		t.Fatalf("Encode(%q): %v", frame, err)
	}
	return b
}
