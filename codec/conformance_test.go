package codec_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/mai-go/mai/codec"
	"github.com/mai-go/mai/codec/codectest"
)

// Every built-in codec passes the conformance kit. The configurations here
// are also the fuzz targets' (fuzz_test.go).

func mustLengthField(tb testing.TB, cfg codec.LengthFieldConfig) *codec.LengthField {
	tb.Helper()
	c, err := codec.NewLengthField(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func mustLines(tb testing.TB, cfg codec.LinesConfig) *codec.Lines {
	tb.Helper()
	c, err := codec.NewLines(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func mustDelimiter(tb testing.TB, cfg codec.DelimiterConfig) *codec.Delimiter {
	tb.Helper()
	c, err := codec.NewDelimiter(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// byteRange returns n bytes counting from b.
func byteRange(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b + byte(i)
	}
	return out
}

// canonical turns candidate frames into frames that Encode and Decode map
// to themselves (for a LengthField that keeps part of its header, the
// frame must carry the right length), dropping those Encode refuses.
func canonical(tb testing.TB, c codec.Codec[[]byte], candidates [][]byte) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, cand := range candidates {
		enc, err := c.Encode(nil, cand)
		if err != nil {
			continue
		}
		f, n, err := c.Decode(enc)
		if err != nil || n != len(enc) {
			tb.Fatalf("Decode(Encode(%q)) = %q, %d, %v", cand, f, n, err)
		}
		out = append(out, bytes.Clone(f))
	}
	if len(out) < 3 {
		tb.Fatalf("only %d usable samples", len(out))
	}
	return out
}

func lengthFieldCandidates(maxLen int) [][]byte {
	return [][]byte{
		{},
		[]byte("a"),
		[]byte("\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
		[]byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
		[]byte("hello, world"),
		byteRange(0, 90),
		bytes.Repeat([]byte{'m'}, maxLen),
	}
}

// lengthFieldOversized is a header whose field holds its largest value.
func lengthFieldOversized(cfg codec.LengthFieldConfig) []byte {
	return append(make([]byte, cfg.Offset), bytes.Repeat([]byte{0xff}, cfg.Width)...)
}

func TestConformanceLengthField(t *testing.T) {
	for _, width := range []int{1, 2, 3, 4, 8} {
		maxLen := map[int]int{1: 100, 2: 1000}[width]
		if maxLen == 0 {
			maxLen = 1 << 20
		}
		for _, little := range []bool{false, true} {
			for _, adj := range []int64{-3, 0, 2} {
				for _, incl := range []bool{false, true} {
					for _, strip := range []int{0, 2 + width, 4 + width} {
						cfg := codec.LengthFieldConfig{Offset: 2, Width: width, LittleEndian: little,
							Adjustment: adj, IncludesHeader: incl, Strip: strip, MaxLength: maxLen}
						t.Run(fmt.Sprintf("%+v", cfg), func(t *testing.T) {
							c := mustLengthField(t, cfg)
							samples := canonical(t, c, lengthFieldCandidates(min(maxLen, 300)))
							codectest.Run(t, c.Factory(), samples, codectest.Oversized(lengthFieldOversized(cfg)))
						})
					}
				}
			}
		}
	}
}

func TestConformanceLines(t *testing.T) {
	for _, ending := range []codec.LineEnding{codec.LF, codec.CRLF, codec.LFOrCRLF} {
		for _, skip := range []bool{false, true} {
			cfg := codec.LinesConfig{Ending: ending, MaxLength: 64, SkipTooLong: skip}
			t.Run(fmt.Sprintf("%+v", cfg), func(t *testing.T) {
				samples := linesSamples(ending)
				var opts []codectest.Option
				if !skip {
					opts = append(opts, codectest.Oversized(bytes.Repeat([]byte{'x'}, 66)))
				}
				codectest.Run(t, mustLines(t, cfg).Factory(), samples, opts...)
			})
		}
	}
}

func linesSamples(ending codec.LineEnding) [][]byte {
	s := [][]byte{
		{},
		[]byte("a"),
		[]byte("hello, world"),
		[]byte("\r"),
		[]byte("tab\tcr\rmid"),
		[]byte("ends with cr\r"),
		bytes.Repeat([]byte{'m'}, 64),
		{},
	}
	if ending == codec.CRLF {
		s = append(s, []byte("bare\nlf"), []byte("\n"))
	}
	return s
}

func TestConformanceDelimiter(t *testing.T) {
	plain := [][]byte{{}, []byte("a"), []byte("hello, world"), bytes.Repeat([]byte{'m'}, 32), []byte("-"), {}, []byte("boundary")}
	withEnd := func(end string) [][]byte {
		var out [][]byte
		for _, p := range plain {
			out = append(out, append(bytes.Clone(p), end...))
		}
		return out
	}
	tests := []struct {
		name    string
		cfg     codec.DelimiterConfig
		samples [][]byte
	}{
		{"LF", codec.DelimiterConfig{Delimiters: delims("\n"), MaxLength: 32}, plain},
		{"LF kept", codec.DelimiterConfig{Delimiters: delims("\n"), MaxLength: 32, KeepDelimiter: true}, withEnd("\n")},
		{"CRLF or LF", codec.DelimiterConfig{Delimiters: delims("\r\n", "\n"), MaxLength: 32}, append(plain, []byte("cr\r"))},
		{"CRLF, CR or LF", codec.DelimiterConfig{Delimiters: delims("\r\n", "\r", "\n"), MaxLength: 32}, plain},
		{"CRLF, CR or LF kept", codec.DelimiterConfig{Delimiters: delims("\r\n", "\r", "\n"), MaxLength: 32, KeepDelimiter: true},
			append(withEnd("\r\n"), []byte("x\n"), []byte("x\r\n"))},
		{"long", codec.DelimiterConfig{Delimiters: delims("--boundary--"), MaxLength: 32}, append(plain, []byte("-boundary--"), []byte("boundary--"))},
		{"NUL and long", codec.DelimiterConfig{Delimiters: delims("\x00", "<<END>>"), MaxLength: 32}, append(plain, []byte("<<END>"), []byte("<END>>"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustDelimiter(t, tt.cfg)
			codectest.Run(t, d.Factory(), tt.samples,
				codectest.Oversized(bytes.Repeat([]byte{'x'}, 32+20)))
		})
	}
}

func TestConformanceFixedLength(t *testing.T) {
	for _, n := range []int{1, 3, 64} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			c, err := codec.NewFixedLength(codec.FixedLengthConfig{Length: n})
			if err != nil {
				t.Fatal(err)
			}
			samples := [][]byte{make([]byte, n), bytes.Repeat([]byte{0xff}, n), byteRange('a', n), make([]byte, n)}
			codectest.Run(t, c.Factory(), samples)
		})
	}
}

func TestConformanceRaw(t *testing.T) {
	c, err := codec.NewRaw(codec.RawConfig{MaxLength: 64})
	if err != nil {
		t.Fatal(err)
	}
	samples := [][]byte{{}, []byte("a"), []byte("hello, world"), byteRange(0, 64)}
	codectest.Run(t, c.Factory(), samples, codectest.Unframed())
}

func TestConformanceStrings(t *testing.T) {
	t.Run("Lines", func(t *testing.T) {
		l := mustLines(t, codec.LinesConfig{Ending: codec.CRLF, MaxLength: 64})
		codectest.Run(t, codec.Strings(l.Factory()), []string{"", "a", "hello, world", "bare\nlf", "cr\r"},
			codectest.Oversized(bytes.Repeat([]byte{'x'}, 66)))
	})
	t.Run("LengthField", func(t *testing.T) {
		lf := mustLengthField(t, codec.LengthFieldConfig{Width: 4, Strip: 4, MaxLength: 1 << 20})
		codectest.Run(t, codec.Strings(lf.Factory()), []string{"", "a", "hello, world", "\x00\x00\x00\x05"},
			codectest.Oversized([]byte("\x7f\xff\xff\xff")))
	})
}
