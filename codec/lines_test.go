package codec_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/mai-go/mai/codec"
)

func TestNewLinesValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  codec.LinesConfig
		want string
	}{
		{"LF", codec.LinesConfig{MaxLength: 1}, ""},
		{"CRLF", codec.LinesConfig{Ending: codec.CRLF, MaxLength: 80}, ""},
		{"LFOrCRLF skip", codec.LinesConfig{Ending: codec.LFOrCRLF, MaxLength: 80, SkipTooLong: true}, ""},
		{"zero max", codec.LinesConfig{}, "MaxLength 0 must be positive"},
		{"negative max", codec.LinesConfig{MaxLength: -1}, "MaxLength -1 must be positive"},
		{"huge max", codec.LinesConfig{MaxLength: math.MaxInt}, "too large"},
		{"bad ending", codec.LinesConfig{Ending: 7, MaxLength: 10}, "LineEnding(7)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := codec.NewLines(tt.cfg)
			if (err == nil) != (tt.want == "") || (err != nil && (!strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "codec: "))) {
				t.Fatalf("NewLines(%+v) = %v, want %q", tt.cfg, err, tt.want)
			}
		})
	}
}

func TestLineEndingString(t *testing.T) {
	for e, want := range map[codec.LineEnding]string{codec.LF: "LF", codec.CRLF: "CRLF", codec.LFOrCRLF: "LFOrCRLF", 9: "LineEnding(9)"} {
		if e.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(e), e.String(), want)
		}
	}
}

func TestLinesDecode(t *testing.T) {
	tests := []struct {
		cfg     codec.LinesConfig
		in      string
		frames  []string
		skipped int
		pending int
		tooBig  bool
	}{
		{codec.LinesConfig{MaxLength: 5}, "a\nbb\n\nccc", []string{"a", "bb", ""}, 0, 3, false},
		{codec.LinesConfig{MaxLength: 5}, "a\r\n", []string{"a\r"}, 0, 0, false},
		{codec.LinesConfig{MaxLength: 5}, "12345\n", []string{"12345"}, 0, 0, false},
		{codec.LinesConfig{MaxLength: 5}, "123456\n", nil, 0, 7, true},
		{codec.LinesConfig{MaxLength: 5}, "123456", nil, 0, 6, true},
		{codec.LinesConfig{MaxLength: 5}, "12345", nil, 0, 5, false},
		{codec.LinesConfig{Ending: codec.CRLF, MaxLength: 5}, "a\r\nb\nc\r\n\r\r\n", []string{"a", "b\nc", "\r"}, 0, 0, false},
		{codec.LinesConfig{Ending: codec.CRLF, MaxLength: 5}, "12345\r\n", []string{"12345"}, 0, 0, false},
		{codec.LinesConfig{Ending: codec.CRLF, MaxLength: 5}, "12345\r", nil, 0, 6, false},
		{codec.LinesConfig{Ending: codec.CRLF, MaxLength: 5}, "123456\r\n", nil, 0, 8, true},
		{codec.LinesConfig{Ending: codec.CRLF, MaxLength: 5}, "12345\n\r\n", nil, 0, 8, true},
		{codec.LinesConfig{Ending: codec.LFOrCRLF, MaxLength: 5}, "a\r\nb\n\r\n\r\r\n", []string{"a", "b", "", "\r"}, 0, 0, false},
		{codec.LinesConfig{Ending: codec.LFOrCRLF, MaxLength: 5}, "12345\r\n12345\n", []string{"12345", "12345"}, 0, 0, false},
		{codec.LinesConfig{Ending: codec.LFOrCRLF, MaxLength: 5}, "123456\n", nil, 0, 7, true},
		{codec.LinesConfig{Ending: codec.LFOrCRLF, MaxLength: 5}, "12345\r", nil, 0, 6, false},
		// Skipping too-long lines.
		{codec.LinesConfig{MaxLength: 3, SkipTooLong: true}, "abcdef\nok\n", []string{"ok"}, 7, 0, false},
		{codec.LinesConfig{MaxLength: 3, SkipTooLong: true}, "abcdefgh", nil, 8, 0, false},
		{codec.LinesConfig{MaxLength: 3, SkipTooLong: true}, "abcd\nabc\n", []string{"abc"}, 5, 0, false},
		{codec.LinesConfig{Ending: codec.CRLF, MaxLength: 3, SkipTooLong: true}, "abcd\nef\r\nok\r\n", []string{"ok"}, 9, 0, false},
		{codec.LinesConfig{Ending: codec.CRLF, MaxLength: 3, SkipTooLong: true}, "abcdef\r", nil, 6, 1, false},
		{codec.LinesConfig{Ending: codec.LFOrCRLF, MaxLength: 3, SkipTooLong: true}, "abcd\r\nab\r\n", []string{"ab"}, 6, 0, false},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%v/max%d/skip=%v/%q", tt.cfg.Ending, tt.cfg.MaxLength, tt.cfg.SkipTooLong, tt.in)
		t.Run(name, func(t *testing.T) {
			l, err := codec.NewLines(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, split := range []struct {
				name  string
				reads [][]byte
			}{
				{"whole", [][]byte{[]byte(tt.in)}},
				{"bytewise", bytewise(tt.in)},
			} {
				r := decodeReads(t, l.Factory()(), split.reads...)
				if !reflect.DeepEqual(r.frames, tt.frames) || r.skipped != tt.skipped || (!tt.tooBig && r.pending != tt.pending) || isTooLarge(r.err) != tt.tooBig || (r.err != nil && !tt.tooBig) {
					t.Errorf("%s: frames %q skipped %d pending %d err %v; want %q, %d, %d, too large %v",
						split.name, r.frames, r.skipped, r.pending, r.err, tt.frames, tt.skipped, tt.pending, tt.tooBig)
				}
			}
		})
	}
}

// TestLinesRemembersScan shows that Decode does not look again at bytes it
// has already scanned: it trusts the contract that src starts with the same
// bytes after a need-more, so a '\n' slipped into the old part goes unseen.
func TestLinesRemembersScan(t *testing.T) {
	l, err := codec.NewLines(codec.LinesConfig{MaxLength: 100})
	if err != nil {
		t.Fatal(err)
	}
	if _, n, err := l.Decode([]byte("aaaa")); n != 0 || err != nil {
		t.Fatal(n, err)
	}
	if _, n, err := l.Decode([]byte("a\naab")); n != 0 || err != nil {
		t.Fatalf("Decode rescanned old bytes: n = %d, err = %v", n, err)
	}
	if f, n, err := l.Decode([]byte("a\naabc\n")); string(f) != "a\naabc" || n != 7 || err != nil {
		t.Fatalf("Decode = %q, %d, %v", f, n, err)
	}
	// After a frame the scan starts over.
	if f, n, err := l.Decode([]byte("x\n")); string(f) != "x" || n != 2 || err != nil {
		t.Fatalf("Decode = %q, %d, %v", f, n, err)
	}
}

// TestLinesSkipBoundsMemory feeds a 1 MiB line in 1 KiB reads to a
// SkipTooLong Lines and checks that it never holds more than the limit.
func TestLinesSkipBoundsMemory(t *testing.T) {
	l, err := codec.NewLines(codec.LinesConfig{Ending: codec.CRLF, MaxLength: 4096, SkipTooLong: true})
	if err != nil {
		t.Fatal(err)
	}
	long := append(bytes.Repeat([]byte("x\r"), 1<<19), "\r\nnext\r\n"...)
	var buf []byte
	var frames []string
	peak := 0
	for off := 0; off < len(long); off += 1024 {
		buf = append(buf, long[off:min(off+1024, len(long))]...)
		peak = max(peak, len(buf))
		for len(buf) > 0 {
			f, n, err := l.Decode(buf)
			if err == codec.ErrSkip {
				buf = buf[n:]
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			frames = append(frames, string(f))
			buf = buf[n:]
		}
	}
	if len(frames) != 1 || frames[0] != "next" || len(buf) != 0 {
		t.Fatalf("frames %q, %d bytes pending", frames, len(buf))
	}
	if peak > 4096+2+1024 {
		t.Fatalf("buffered up to %d bytes", peak)
	}
}

func TestLinesEncode(t *testing.T) {
	tests := []struct {
		ending codec.LineEnding
		line   string
		want   string
		err    error // nil, codec.ErrFrameTooLarge, or errAny
	}{
		{codec.LF, "abc", "abc\n", nil},
		{codec.LF, "", "\n", nil},
		{codec.LF, "ab\r", "ab\r\n", nil},
		{codec.LF, "a\nb", "", errAny},
		{codec.LF, "12345", "12345\n", nil},
		{codec.LF, "123456", "", codec.ErrFrameTooLarge},
		{codec.CRLF, "abc", "abc\r\n", nil},
		{codec.CRLF, "a\nb\r", "a\nb\r\r\n", nil},
		{codec.CRLF, "a\r\nb", "", errAny},
		{codec.LFOrCRLF, "ab\r", "ab\r\r\n", nil},
		{codec.LFOrCRLF, "a\nb", "", errAny},
	}
	for _, tt := range tests {
		l, err := codec.NewLines(codec.LinesConfig{Ending: tt.ending, MaxLength: 5})
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.Encode([]byte(">"), []byte(tt.line))
		switch {
		case tt.err == nil && (err != nil || string(got) != ">"+tt.want):
			t.Errorf("%v Encode(%q) = %q, %v; want %q", tt.ending, tt.line, got, err, ">"+tt.want)
		case tt.err == errAny && (err == nil || isTooLarge(err)):
			t.Errorf("%v Encode(%q) = %v, want a line-ending error", tt.ending, tt.line, err)
		case tt.err == codec.ErrFrameTooLarge && !isTooLarge(err):
			t.Errorf("%v Encode(%q) = %v, want ErrFrameTooLarge", tt.ending, tt.line, err)
		}
	}
}

var errAny = errors.New("any error")

func TestLinesFactoryIsFresh(t *testing.T) {
	l, err := codec.NewLines(codec.LinesConfig{MaxLength: 10})
	if err != nil {
		t.Fatal(err)
	}
	f := l.Factory()
	a, b := f(), f()
	if a == b {
		t.Fatal("Factory returned the same Lines twice")
	}
	// State in one does not leak into the other.
	a.Decode([]byte("aaaaaaa"))
	if fr, n, err := b.Decode([]byte("b\n")); string(fr) != "b" || n != 2 || err != nil {
		t.Fatalf("Decode = %q, %d, %v", fr, n, err)
	}
}
