package codec_test

import (
	"bytes"
	"testing"

	"github.com/mai-go/mai/codec"
	"github.com/mai-go/mai/codec/codectest"
)

// One fuzz target per codec: go test -run='^$' -fuzz='^FuzzLines$' ./codec/
// The seed corpus is the encoded samples plus testdata/fuzz/FuzzXxx.

// FuzzLengthField fuzzes the common layout: a body after a 2-byte
// big-endian length.
func FuzzLengthField(f *testing.F) {
	c := mustLengthField(f, codec.LengthFieldConfig{Width: 2, Strip: 2, MaxLength: 1024})
	codectest.Fuzz(f, c.Factory(), canonical(f, c, lengthFieldCandidates(300)))
}

// FuzzLengthFieldOdd fuzzes an unusual layout: a type byte, a 3-byte
// little-endian length that counts 2 bytes it does not cover, and a Strip
// that cuts through the length field.
func FuzzLengthFieldOdd(f *testing.F) {
	c := mustLengthField(f, codec.LengthFieldConfig{Offset: 1, Width: 3, LittleEndian: true, Adjustment: -2, Strip: 2, MaxLength: 300})
	codectest.Fuzz(f, c.Factory(), canonical(f, c, lengthFieldCandidates(298)))
}

// FuzzLengthField8 fuzzes an 8-byte length with a huge negative
// adjustment, where every sum overflows unless done with care.
func FuzzLengthField8(f *testing.F) {
	c := mustLengthField(f, codec.LengthFieldConfig{Width: 8, Adjustment: -1 << 62, IncludesHeader: true, Strip: 8, MaxLength: 512})
	codectest.Fuzz(f, c.Factory(), canonical(f, c, lengthFieldCandidates(300)))
}

func FuzzLines(f *testing.F) {
	l := mustLines(f, codec.LinesConfig{Ending: codec.CRLF, MaxLength: 16, SkipTooLong: true})
	codectest.Fuzz(f, l.Factory(), [][]byte{{}, []byte("a"), []byte("bare\nlf"), []byte("cr\r"), bytes.Repeat([]byte{'m'}, 16)})
}

func FuzzLinesLF(f *testing.F) {
	l := mustLines(f, codec.LinesConfig{Ending: codec.LFOrCRLF, MaxLength: 16})
	codectest.Fuzz(f, l.Factory(), [][]byte{{}, []byte("a"), []byte("cr\r"), []byte("\r"), bytes.Repeat([]byte{'m'}, 16)})
}

func FuzzDelimiter(f *testing.F) {
	d := mustDelimiter(f, codec.DelimiterConfig{Delimiters: delims("\r\n", "\r", "\n", "<END>"), MaxLength: 16})
	codectest.Fuzz(f, d.Factory(), [][]byte{{}, []byte("a"), []byte("<END"), []byte("END>"), bytes.Repeat([]byte{'m'}, 16)})
}

func FuzzFixedLength(f *testing.F) {
	c, err := codec.NewFixedLength(codec.FixedLengthConfig{Length: 5})
	if err != nil {
		f.Fatal(err)
	}
	codectest.Fuzz(f, c.Factory(), [][]byte{[]byte("abcde"), make([]byte, 5)})
}

func FuzzRaw(f *testing.F) {
	c, err := codec.NewRaw(codec.RawConfig{MaxLength: 7})
	if err != nil {
		f.Fatal(err)
	}
	codectest.Fuzz(f, c.Factory(), [][]byte{{}, []byte("abc"), []byte("0123456")}, codectest.Unframed())
}

func FuzzStrings(f *testing.F) {
	d := mustDelimiter(f, codec.DelimiterConfig{Delimiters: delims("\n"), MaxLength: 16, KeepDelimiter: true})
	codectest.Fuzz(f, codec.Strings(d.Factory()), []string{"\n", "a\n", "héllo\n"})
}
