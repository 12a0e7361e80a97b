package codec_test

import (
	"strings"
	"testing"

	"github.com/mai-go/mai/codec"
)

func TestNewFixedLengthAndRawValidation(t *testing.T) {
	for _, n := range []int{0, -1} {
		if _, err := codec.NewFixedLength(codec.FixedLengthConfig{Length: n}); err == nil || !strings.HasPrefix(err.Error(), "codec: FixedLength Length") {
			t.Errorf("NewFixedLength(%d) = %v", n, err)
		}
		if _, err := codec.NewRaw(codec.RawConfig{MaxLength: n}); err == nil || !strings.HasPrefix(err.Error(), "codec: Raw MaxLength") {
			t.Errorf("NewRaw(%d) = %v", n, err)
		}
	}
}

func TestFixedLength(t *testing.T) {
	c, err := codec.NewFixedLength(codec.FixedLengthConfig{Length: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, reads := range [][][]byte{{[]byte("abcdefgh")}, bytewise("abcdefgh")} {
		r := decodeReads(t, c, reads...)
		if strings.Join(r.frames, ",") != "abc,def" || r.pending != 2 || r.err != nil {
			t.Errorf("decoded %q, pending %d, err %v", r.frames, r.pending, r.err)
		}
	}
	if n := c.FrameSize([]byte("a")); n != 3 {
		t.Errorf("FrameSize = %d", n)
	}
	if b, err := c.Encode([]byte(">"), []byte("xyz")); string(b) != ">xyz" || err != nil {
		t.Errorf("Encode = %q, %v", b, err)
	}
	if _, err := c.Encode(nil, []byte("wxyz")); !isTooLarge(err) {
		t.Errorf("Encode of 4 bytes = %v, want ErrFrameTooLarge", err)
	}
	if _, err := c.Encode(nil, []byte("yz")); err == nil || isTooLarge(err) {
		t.Errorf("Encode of 2 bytes = %v, want a plain error", err)
	}
}

func TestRaw(t *testing.T) {
	c, err := codec.NewRaw(codec.RawConfig{MaxLength: 4})
	if err != nil {
		t.Fatal(err)
	}
	r := decodeReads(t, c, []byte("abcdefghij"))
	if strings.Join(r.frames, ",") != "abcd,efgh,ij" || r.pending != 0 || r.err != nil {
		t.Errorf("decoded %q, pending %d, err %v", r.frames, r.pending, r.err)
	}
	r = decodeReads(t, c, []byte("ab"), []byte("c"))
	if strings.Join(r.frames, ",") != "ab,c" {
		t.Errorf("decoded %q", r.frames)
	}
	if b, err := c.Encode([]byte(">"), []byte("wxyz")); string(b) != ">wxyz" || err != nil {
		t.Errorf("Encode = %q, %v", b, err)
	}
	if _, err := c.Encode(nil, []byte("vwxyz")); !isTooLarge(err) {
		t.Errorf("Encode of 5 bytes = %v, want ErrFrameTooLarge", err)
	}
}

func TestStrings(t *testing.T) {
	lines, err := codec.NewLines(codec.LinesConfig{MaxLength: 8})
	if err != nil {
		t.Fatal(err)
	}
	f := codec.Strings(lines.Factory())
	c := f()
	if sz, ok := c.(codec.Sizer); !ok || sz.FrameSize([]byte("abc")) != 0 {
		t.Error("Strings(Lines) should answer FrameSize with 0: Lines cannot tell")
	}
	if ms, ok := c.(codec.MaxSizer); !ok || ms.MaxFrameSize() != 8+2 {
		t.Error("Strings(Lines) should report Lines' MaxFrameSize")
	}
	if s, n, err := c.Decode([]byte("abc")); s != "" || n != 0 || err != nil {
		t.Errorf("Decode = %q, %d, %v", s, n, err)
	}
	src := []byte("abc\nrest")
	s, n, err := c.Decode(src)
	if s != "abc" || n != 4 || err != nil {
		t.Fatalf("Decode = %q, %d, %v", s, n, err)
	}
	copy(src, "XXX")
	if s != "abc" {
		t.Fatalf("the string aliases src: %q", s)
	}
	if _, _, err := c.Decode([]byte("123456789\n")); !isTooLarge(err) {
		t.Errorf("Decode of a long line = %v", err)
	}
	if b, err := c.Encode([]byte(">"), "hi"); string(b) != ">hi\n" || err != nil {
		t.Errorf("Encode = %q, %v", b, err)
	}
	if _, err := c.Encode(nil, "a\nb"); err == nil {
		t.Error("Encode of a line with a newline succeeded")
	}

	lf, err := codec.NewLengthField(codec.LengthFieldConfig{Width: 2, Strip: 2, MaxLength: 100})
	if err != nil {
		t.Fatal(err)
	}
	sc := codec.Strings(lf.Factory())()
	sz, ok := sc.(codec.Sizer)
	if !ok {
		t.Fatal("Strings(LengthField) does not implement Sizer")
	}
	if n := sz.FrameSize([]byte("\x00\x05")); n != 7 {
		t.Errorf("FrameSize = %d", n)
	}
}
