package codec_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/mai-go/mai/codec"
)

// go test -run='^$' -bench=. -benchmem ./codec/

const benchFrame = 64

func benchCodecs(b *testing.B) []struct {
	name  string
	codec codec.Codec[[]byte]
	frame []byte
} {
	body := bytes.Repeat([]byte{'x'}, benchFrame)
	fixed, err := codec.NewFixedLength(codec.FixedLengthConfig{Length: benchFrame})
	if err != nil {
		b.Fatal(err)
	}
	raw, err := codec.NewRaw(codec.RawConfig{MaxLength: 4096})
	if err != nil {
		b.Fatal(err)
	}
	return []struct {
		name  string
		codec codec.Codec[[]byte]
		frame []byte
	}{
		{"LengthField", mustLengthField(b, codec.LengthFieldConfig{Width: 4, Strip: 4, MaxLength: 1 << 20}), body},
		{"LengthField3LE", mustLengthField(b, codec.LengthFieldConfig{Offset: 1, Width: 3, LittleEndian: true, Adjustment: -2, Strip: 4, MaxLength: 1 << 20}), body},
		{"Lines", mustLines(b, codec.LinesConfig{MaxLength: 4096}).Factory()(), body},
		{"LinesCRLF", mustLines(b, codec.LinesConfig{Ending: codec.CRLF, MaxLength: 4096}).Factory()(), body},
		{"Delimiter", mustDelimiter(b, codec.DelimiterConfig{Delimiters: delims("\r\n"), MaxLength: 4096}).Factory()(), body},
		{"Delimiter3", mustDelimiter(b, codec.DelimiterConfig{Delimiters: delims("\r\n", "\n", "\x00"), MaxLength: 4096}).Factory()(), body},
		{"FixedLength", fixed, body},
		{"Raw", raw, body},
	}
}

// BenchmarkCodecs encodes and decodes one 64-byte frame per op.
func BenchmarkCodecs(b *testing.B) {
	for _, bc := range benchCodecs(b) {
		c := bc.codec
		wire, err := c.Encode(nil, bc.frame)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name+"/Encode", func(b *testing.B) {
			dst := make([]byte, 0, 4096)
			b.SetBytes(benchFrame)
			b.ReportAllocs()
			for b.Loop() {
				dst, err = c.Encode(dst[:0], bc.frame)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/Decode", func(b *testing.B) {
			b.SetBytes(benchFrame)
			b.ReportAllocs()
			for b.Loop() {
				f, n, err := c.Decode(wire)
				if err != nil || n != len(wire) || len(f) != benchFrame {
					b.Fatal(len(f), n, err)
				}
			}
		})
	}
	lines := mustLines(b, codec.LinesConfig{MaxLength: 4096})
	sc := codec.Strings(lines.Factory())()
	s := string(bytes.Repeat([]byte{'x'}, benchFrame))
	wire, err := sc.Encode(nil, s)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("StringsLines/Encode", func(b *testing.B) {
		dst := make([]byte, 0, 4096)
		b.SetBytes(benchFrame)
		b.ReportAllocs()
		for b.Loop() {
			dst, err = sc.Encode(dst[:0], s)
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("StringsLines/Decode", func(b *testing.B) {
		b.SetBytes(benchFrame)
		b.ReportAllocs()
		for b.Loop() {
			f, n, err := sc.Decode(wire)
			if err != nil || n != len(wire) || len(f) != benchFrame {
				b.Fatal(len(f), n, err)
			}
		}
	})
}

// naiveLines is a stateless line scanner, for comparison: it scans from the
// start of src on every call, like a bufio.SplitFunc.
type naiveLines struct{}

func (naiveLines) Decode(src []byte) ([]byte, int, error) {
	i := bytes.IndexByte(src, '\n')
	if i < 0 {
		return nil, 0, nil
	}
	return src[:i:i], i + 1, nil
}

func (naiveLines) Encode(dst, line []byte) ([]byte, error) {
	return append(append(dst, line...), '\n'), nil
}

// BenchmarkLargeFramePiecewise feeds one large frame in 64 KiB reads, the
// way the engine does: it appends each read to the pending bytes and calls
// Decode; after a need-more, a Sizer is asked for the frame size, room for
// the whole frame is reserved once, and Decode waits until it is all there.
// The cost per op should grow linearly with the size (compare 4 MiB and
// 16 MiB, and 16 MiB and 64 MiB: 4 MiB still fits in the CPU caches, so
// it runs faster per byte), except for naiveLines, which rescans from the
// start: O(size²).
func BenchmarkLargeFramePiecewise(b *testing.B) {
	const read = 64 << 10
	for _, size := range []int{4 << 20, 16 << 20, 64 << 20} {
		body := bytes.Repeat([]byte{'x'}, size)
		cases := []struct {
			name string
			fac  codec.Factory[[]byte]
		}{
			{"LengthField", mustLengthField(b, codec.LengthFieldConfig{Width: 4, Strip: 4, MaxLength: 128 << 20}).Factory()},
			{"Lines", mustLines(b, codec.LinesConfig{MaxLength: 128 << 20}).Factory()},
			{"Delimiter", mustDelimiter(b, codec.DelimiterConfig{Delimiters: delims("\r\n"), MaxLength: 128 << 20}).Factory()},
			{"NaiveLines", codec.Share[[]byte](naiveLines{})},
			// The floor: the engine's copying of each read, without Decode.
			{"CopyOnly", nil},
		}
		for _, tc := range cases {
			wire := append(append([]byte{}, body...), '\n')
			if tc.fac != nil {
				var err error
				if wire, err = tc.fac().Encode(nil, body); err != nil {
					b.Fatal(err)
				}
			}
			b.Run(fmt.Sprintf("%s/%dMiB", tc.name, size>>20), func(b *testing.B) {
				var pool []byte // the connection's pending buffer, reused like a pooled one
				b.SetBytes(int64(len(wire)))
				b.ReportAllocs()
				for b.Loop() {
					buf := pool[:0]
					if tc.fac == nil {
						for off := 0; off < len(wire); off += read {
							buf = append(buf, wire[off:min(off+read, len(wire))]...)
						}
						pool = buf[:0]
						continue
					}
					c := tc.fac()
					sz, _ := c.(codec.Sizer)
					want, frames := 0, 0
					for off := 0; off < len(wire); off += read {
						buf = append(buf, wire[off:min(off+read, len(wire))]...)
						if len(buf) < want {
							continue
						}
						f, n, err := c.Decode(buf)
						switch {
						case err != nil:
							b.Fatal(err)
						case n > 0:
							if len(f) != size {
								b.Fatalf("frame of %d bytes", len(f))
							}
							frames++
							buf = buf[n:]
						case sz != nil:
							if want = sz.FrameSize(buf); want > cap(buf) {
								buf = append(make([]byte, 0, want), buf...)
							}
						}
						if cap(buf) > cap(pool) {
							pool = buf[:0]
						}
					}
					if frames != 1 {
						b.Fatalf("%d frames", frames)
					}
				}
			})
		}
	}
}
