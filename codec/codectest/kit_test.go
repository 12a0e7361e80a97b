package codectest_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/mai-go/mai/codec"
	"github.com/mai-go/mai/codec/codectest"
)

// The kit must catch each of these broken codecs. Each is byteLen (or a
// 4-byte length prefix) with one bug.

type overConsume struct{ byteLen }

func (overConsume) Decode(src []byte) ([]byte, int, error) {
	f, n, err := byteLen{}.Decode(src)
	if n > 0 {
		n++
	}
	return f, n, err
}

type negativeN struct{ byteLen }

func (negativeN) Decode(src []byte) ([]byte, int, error) {
	f, n, err := byteLen{}.Decode(src)
	if n == 0 {
		n = -1
	}
	return f, n, err
}

type nonZeroNeedMore struct{ byteLen }

func (nonZeroNeedMore) Decode(src []byte) ([]byte, int, error) {
	f, n, err := byteLen{}.Decode(src)
	if n == 0 {
		f = src[:0]
	}
	return f, n, err
}

type wrappedSkip struct{ byteLen }

func (wrappedSkip) Decode(src []byte) ([]byte, int, error) {
	if src[0] == 0 {
		return nil, 1, fmt.Errorf("keep-alive: %w", codec.ErrSkip)
	}
	return byteLen{}.Decode(src)
}

type writesSrc struct{ byteLen }

func (writesSrc) Decode(src []byte) ([]byte, int, error) {
	f, n, err := byteLen{}.Decode(src)
	if n == 0 && len(src) > 1 {
		src[1] ^= 0xff
		src[1] ^= 0xff
		src[len(src)-1] = 0
	}
	return f, n, err
}

// keepsSrc remembers the header from the previous call instead of reading
// it again.
type keepsSrc struct {
	byteLen
	hdr []byte
}

func (c *keepsSrc) Decode(src []byte) ([]byte, int, error) {
	if c.hdr == nil {
		c.hdr = src[:1]
	}
	n := 1 + int(c.hdr[0])
	if len(src) < n {
		return nil, 0, nil
	}
	c.hdr = nil
	return src[1:n:n], n, nil
}

type noAppend struct{ byteLen }

func (noAppend) Encode(dst, frame []byte) ([]byte, error) {
	return byteLen{}.Encode(nil, frame)
}

type panics struct{ byteLen }

func (panics) Decode(src []byte) ([]byte, int, error) {
	if bytes.IndexByte(src, 0x42) >= 0 {
		panic("0x42")
	}
	return byteLen{}.Decode(src)
}

// u32 is a body after a 4-byte big-endian length, at most 1 KiB.
type u32 struct{ allocs bool }

func (c u32) Decode(src []byte) ([]byte, int, error) {
	if len(src) < 4 {
		return nil, 0, nil
	}
	size := int(binary.BigEndian.Uint32(src))
	if c.allocs {
		// The bug: buffer the declared size before checking it (up to
		// 2 MiB, to keep the test cheap).
		buf := make([]byte, 0, min(size, 2<<20))
		_ = append(buf, src[4:]...)
	}
	if size > 1024 {
		return nil, 0, codec.ErrFrameTooLarge
	}
	if len(src) < 4+size {
		return nil, 0, nil
	}
	return src[4 : 4+size : 4+size], 4 + size, nil
}

func (u32) Encode(dst, frame []byte) ([]byte, error) {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(frame)))
	return append(dst, frame...), nil
}

// lyingSizer says every frame is one byte longer than it is.
type lyingSizer struct{ u32 }

func (lyingSizer) FrameSize(src []byte) int {
	if len(src) < 4 {
		return 0
	}
	return 5 + int(binary.BigEndian.Uint32(src))
}

// noOversize never rejects a frame.
type noOversize struct{ u32 }

func (noOversize) Decode(src []byte) ([]byte, int, error) {
	if len(src) < 4 {
		return nil, 0, nil
	}
	size := int(binary.BigEndian.Uint32(src))
	if len(src) < 4+size {
		return nil, 0, nil
	}
	return src[4 : 4+size : 4+size], 4 + size, nil
}

// unstable changes how it encodes on every call.
type unstable struct {
	byteLen
	calls *int
}

func (c unstable) Encode(dst, frame []byte) ([]byte, error) {
	*c.calls++
	if *c.calls%2 == 0 {
		return byteLen{}.Encode(dst, append([]byte{'!'}, frame...)[:len(frame)])
	}
	return byteLen{}.Encode(dst, frame)
}

// badHeader's EncodeHeader disagrees with its Encode: it leaves the
// length out of the header.
type badHeader struct{ u32 }

func (badHeader) EncodeHeader(dst, frame []byte) ([]byte, []byte, error) {
	return dst, frame, nil
}

// goodHeader splits u32's encoding as the kit checks: the header Encode writes, then the frame.
type goodHeader struct{ u32 }

func (goodHeader) EncodeHeader(dst, frame []byte) ([]byte, []byte, error) {
	return binary.BigEndian.AppendUint32(dst, uint32(len(frame))), frame, nil
}

func TestKitCatches(t *testing.T) {
	oversize := codectest.Oversized([]byte("\x00\x10\x00\x00"))
	tests := []struct {
		name  string
		err   error
		wants []string // substrings of the error
	}{
		{"overConsume", codectest.Check(codec.Share[[]byte](overConsume{}), samples),
			[]string{"RoundTrip", "want 0 < n <= "}},
		{"negativeN", codectest.Check(codec.Share[[]byte](negativeN{}), samples),
			[]string{"Truncated", "n = -1"}},
		{"nonZeroNeedMore", codectest.Check(codec.Share[[]byte](nonZeroNeedMore{}), samples),
			[]string{"EverySplit", "zero frame"}},
		{"wrappedSkip", codectest.Check(codec.Share[[]byte](wrappedSkip{}), samples),
			[]string{"RoundTrip", "wrapped ErrSkip"}},
		{"writesSrc", codectest.Check(codec.Share[[]byte](writesSrc{}), samples),
			[]string{"EverySplit", "modified src"}},
		{"keepsSrc", codectest.Check(func() codec.Codec[[]byte] { return &keepsSrc{} }, samples),
			[]string{"EverySplit", "ByteByByte"}},
		{"noAppend", codectest.Check(codec.Share[[]byte](noAppend{}), samples),
			[]string{"RoundTrip", "did not append"}},
		{"panics", codectest.Check(codec.Share[[]byte](panics{}), samples),
			[]string{"Garbage", "panicked: 0x42"}},
		{"allocates on oversize", codectest.Check(codec.Share[[]byte](u32{allocs: true}), samples, oversize),
			[]string{"Oversized", "allocated"}},
		{"lyingSizer", codectest.Check(codec.Share[[]byte](lyingSizer{}), samples),
			[]string{"EverySplit", "FrameSize promised"}},
		{"noOversize", codectest.Check(codec.Share[[]byte](noOversize{}), samples, oversize),
			[]string{"Oversized", "want ErrFrameTooLarge"}},
		{"unstable", codectest.Check(func() codec.Codec[[]byte] { return unstable{calls: new(int)} }, samples),
			[]string{"RoundTrip", "Encode gave"}},
		{"badHeader", codectest.Check(codec.Share[[]byte](badHeader{}), samples),
			[]string{"RoundTrip", "EncodeHeader", "Encode gave"}},
		{"wrong Equal type", codectest.Check(codec.Share[[]byte](byteLen{}), samples, codectest.Equal(func(a, b string) bool { return a == b })),
			[]string{"Equal was given a func(string, string) bool"}},
		{"no samples", codectest.Check(codec.Share[[]byte](byteLen{}), nil),
			[]string{"no samples"}},
		{"nil Factory", codectest.Check[[]byte](nil, samples),
			[]string{"nil Factory"}},
		{"nil Codec", codectest.Check(func() codec.Codec[[]byte] { return nil }, samples),
			[]string{"nil Codec"}},
		{"hasty with a strict Equal", codectest.Check(codec.Share[[]byte](hasty{}), samples,
			codectest.Equal(func(a, b []byte) bool { return string(a) == string(b) })),
			[]string{"EverySplit", "Truncated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("the kit passed a broken codec")
			}
			for _, w := range tt.wants {
				if !strings.Contains(tt.err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, tt.err)
				}
			}
		})
	}
}

func TestKitPasses(t *testing.T) {
	oversize := codectest.Oversized([]byte("\x00\x10\x00\x00"), []byte("\xff\xff\xff\xff"))
	codectest.Run(t, codec.Share[[]byte](u32{}), samples, oversize, codectest.Seed(7), codectest.GarbageRounds(500))
	if err := codectest.Check(codec.Share[[]byte](u32{}), samples, oversize, codectest.AllocLimit(1<<20)); err != nil {
		t.Fatal(err)
	}
	// A Sizer that tells the truth, and a HeaderEncoder that does.
	codectest.Run(t, codec.Share[[]byte](truthfulSizer{}), samples, oversize)
	codectest.Run(t, codec.Share[[]byte](goodHeader{}), samples, oversize)
	// hasty is fine as a codec without framing.
	if err := codectest.Check(codec.Share[[]byte](rawish{}), samples, codectest.Unframed(), codectest.SkipReencode()); err != nil {
		t.Fatal(err)
	}
}

type truthfulSizer struct{ u32 }

func (truthfulSizer) FrameSize(src []byte) int {
	if len(src) < 4 {
		return 0
	}
	return 4 + int(binary.BigEndian.Uint32(src))
}

// rawish delivers what arrived; it encodes frames as they are.
type rawish struct{}

func (rawish) Decode(src []byte) ([]byte, int, error) { return src, len(src), nil }

func (rawish) Encode(dst, frame []byte) ([]byte, error) { return append(dst, frame...), nil }
