package codec_test

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/mai-go/mai/codec"
)

func delims(ds ...string) [][]byte {
	out := make([][]byte, len(ds))
	for i, d := range ds {
		out[i] = []byte(d)
	}
	return out
}

func TestNewDelimiterValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  codec.DelimiterConfig
		want string
	}{
		{"one", codec.DelimiterConfig{Delimiters: delims("\n"), MaxLength: 1}, ""},
		{"several", codec.DelimiterConfig{Delimiters: delims("\r\n", "\n", "\x00"), MaxLength: 10, KeepDelimiter: true}, ""},
		{"none", codec.DelimiterConfig{MaxLength: 10}, "at least one delimiter"},
		{"empty", codec.DelimiterConfig{Delimiters: delims("\n", ""), MaxLength: 10}, "delimiter 1 is empty"},
		{"zero max", codec.DelimiterConfig{Delimiters: delims("\n")}, "MaxLength 0 must be positive"},
		{"negative max", codec.DelimiterConfig{Delimiters: delims("\n"), MaxLength: -3}, "MaxLength -3 must be positive"},
		{"huge max", codec.DelimiterConfig{Delimiters: delims("--"), MaxLength: math.MaxInt - 1}, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := codec.NewDelimiter(tt.cfg)
			if (err == nil) != (tt.want == "") || (err != nil && (!strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "codec: "))) {
				t.Fatalf("NewDelimiter(%+v) = %v, want %q", tt.cfg, err, tt.want)
			}
		})
	}
}

func TestDelimiterDecode(t *testing.T) {
	tests := []struct {
		delims  []string
		keep    bool
		max     int
		in      string
		frames  []string
		pending int
		tooBig  bool
	}{
		{[]string{"\n"}, false, 5, "a\nbb\n\nccc", []string{"a", "bb", ""}, 3, false},
		{[]string{"\n"}, true, 5, "a\nbb\n", []string{"a\n", "bb\n"}, 0, false},
		{[]string{"--"}, false, 5, "ab--cd-", []string{"ab"}, 3, false},
		{[]string{"--"}, false, 5, "ab---cd--", []string{"ab", "-cd"}, 0, false},
		// The earliest delimiter wins.
		{[]string{"\n", "\r\n"}, false, 5, "ab\r\ncd\n", []string{"ab", "cd"}, 0, false},
		{[]string{"XY", "Y"}, false, 5, "aXYbY", []string{"a", "b"}, 0, false},
		// At the same start, the longest wins, waiting for it if needed.
		{[]string{"\r", "\r\n"}, false, 5, "ab\r\ncd\rx\r", []string{"ab", "cd"}, 2, false},
		{[]string{"\r", "\r\n"}, true, 5, "ab\r\ncd\rx\r", []string{"ab\r\n", "cd\r"}, 2, false},
		// An earlier delimiter that may still complete beats a later one.
		{[]string{"abc", "c"}, false, 5, "xab", nil, 3, false},
		{[]string{"abc", "c"}, false, 5, "xabc", []string{"x"}, 0, false},
		{[]string{"abc", "c"}, false, 5, "xabdc", []string{"xabd"}, 0, false},
		// Limits.
		{[]string{"\n"}, false, 5, "12345\n", []string{"12345"}, 0, false},
		{[]string{"\n"}, false, 5, "123456\n", nil, 0, true},
		{[]string{"\n"}, false, 5, "12345", nil, 5, false},
		{[]string{"\r\n"}, false, 5, "12345\r", nil, 6, false},
		{[]string{"\r\n"}, false, 5, "12345\r\n", []string{"12345"}, 0, false},
		{[]string{"\r\n"}, false, 5, "123456\r\n", nil, 0, true},
		{[]string{"\r\n"}, true, 5, "12345\r\n", []string{"12345\r\n"}, 0, false},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%q/keep=%v/max%d/%q", tt.delims, tt.keep, tt.max, tt.in)
		t.Run(name, func(t *testing.T) {
			d, err := codec.NewDelimiter(codec.DelimiterConfig{Delimiters: delims(tt.delims...), KeepDelimiter: tt.keep, MaxLength: tt.max})
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
				r := decodeReads(t, d.Factory()(), split.reads...)
				if !reflect.DeepEqual(r.frames, tt.frames) || r.skipped != 0 || (!tt.tooBig && r.pending != tt.pending) || isTooLarge(r.err) != tt.tooBig || (r.err != nil && !tt.tooBig) {
					t.Errorf("%s: frames %q skipped %d pending %d err %v; want %q, pending %d, too large %v",
						split.name, r.frames, r.skipped, r.pending, r.err, tt.frames, tt.pending, tt.tooBig)
				}
			}
		})
	}
}

func TestDelimiterEncode(t *testing.T) {
	tests := []struct {
		delims []string
		keep   bool
		frame  string
		want   string // "" with err
		err    error
	}{
		{[]string{"\n"}, false, "abc", "abc\n", nil},
		{[]string{"\n"}, false, "", "\n", nil},
		{[]string{"\n"}, false, "a\nb", "", errAny},
		{[]string{"\n"}, false, "123456", "", codec.ErrFrameTooLarge},
		{[]string{"\r\n", "\n"}, false, "a\r", "a\r\r\n", nil},
		// "ax"+"\n" would decode as "a" ("x\n" starts earlier): Encode
		// falls back to the next delimiter that round-trips.
		{[]string{"\n", "x\n", "y"}, false, "ax", "axx\n", nil},
		{[]string{"\n", "x\n"}, false, "x", "xx\n", nil},
		{[]string{"\n"}, true, "abc\n", "abc\n", nil},
		{[]string{"\n"}, true, "abc", "", errAny},
		{[]string{"\n"}, true, "a\nbc\n", "", errAny},
		{[]string{"\n"}, true, "123456\n", "", codec.ErrFrameTooLarge},
		{[]string{"\n"}, true, "12345\n", "12345\n", nil},
	}
	for _, tt := range tests {
		d, err := codec.NewDelimiter(codec.DelimiterConfig{Delimiters: delims(tt.delims...), KeepDelimiter: tt.keep, MaxLength: 5})
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.Encode([]byte(">"), []byte(tt.frame))
		switch {
		case tt.err == nil && (err != nil || string(got) != ">"+tt.want):
			t.Errorf("%q Encode(%q) = %q, %v; want %q", tt.delims, tt.frame, got, err, ">"+tt.want)
		case tt.err == errAny && (err == nil || isTooLarge(err) || !strings.HasPrefix(err.Error(), "codec: ")):
			t.Errorf("%q Encode(%q) = %v, want a codec error", tt.delims, tt.frame, err)
		case tt.err == codec.ErrFrameTooLarge && !isTooLarge(err):
			t.Errorf("%q Encode(%q) = %v, want ErrFrameTooLarge", tt.delims, tt.frame, err)
		}
		if err != nil && string(got) != ">" {
			t.Errorf("%q Encode(%q) failed but changed dst to %q", tt.delims, tt.frame, got)
		}
	}
}

func TestDelimiterCopiesConfig(t *testing.T) {
	ds := delims("\n")
	d, err := codec.NewDelimiter(codec.DelimiterConfig{Delimiters: ds, MaxLength: 10})
	if err != nil {
		t.Fatal(err)
	}
	ds[0][0] = '!'
	if f, n, err := d.Decode([]byte("a\n")); string(f) != "a" || n != 2 || err != nil {
		t.Fatalf("Decode after changing the config = %q, %d, %v", f, n, err)
	}
}
