package codec_test

import (
	"errors"
	"fmt"

	"github.com/mai-go/mai/codec"
)

func ExampleLengthField() {
	// A body after its 2-byte big-endian length; the handler sees the body.
	lf, err := codec.NewLengthField(codec.LengthFieldConfig{Width: 2, Strip: 2, MaxLength: 1024})
	if err != nil {
		panic(err)
	}
	wire, _ := lf.Encode(nil, []byte("hello"))
	fmt.Printf("wire: % x\n", wire)

	// Decode asks for more (n == 0) until the whole frame is there.
	_, n, err := lf.Decode(wire[:4])
	fmt.Println("partial:", n, err, "frame size:", lf.FrameSize(wire[:4]))
	frame, n, err := lf.Decode(append(wire, 0x00)) // and the next frame's first byte
	fmt.Printf("frame: %q, consumed %d, %v\n", frame, n, err)

	// A header over the maximum is refused before the body arrives.
	_, _, err = lf.Decode([]byte{0xff, 0xff})
	fmt.Println(errors.Is(err, codec.ErrFrameTooLarge))
	// Output:
	// wire: 00 05 68 65 6c 6c 6f
	// partial: 0 <nil> frame size: 7
	// frame: "hello", consumed 7, <nil>
	// true
}

func ExampleLengthField_headerKept() {
	// A type byte, then a 2-byte little-endian length of the whole frame.
	// Strip 0 delivers the header too; Encode fills in the length.
	lf, err := codec.NewLengthField(codec.LengthFieldConfig{
		Offset: 1, Width: 2, LittleEndian: true, IncludesHeader: true, MaxLength: 1024,
	})
	if err != nil {
		panic(err)
	}
	wire, _ := lf.Encode(nil, []byte("T\x00\x00body")) // the length bytes are placeholders
	fmt.Printf("% x\n", wire)
	frame, _, _ := lf.Decode(wire)
	fmt.Printf("type %c, body %q\n", frame[0], frame[3:])
	// Output:
	// 54 07 00 62 6f 64 79
	// type T, body "body"
}

func ExampleLines() {
	lines, err := codec.NewLines(codec.LinesConfig{Ending: codec.LFOrCRLF, MaxLength: 80})
	if err != nil {
		panic(err)
	}
	c := lines.Factory()() // one per connection: Lines remembers how far it scanned
	src := []byte("GET / HTTP/1.0\r\nHost: x\n\r\n")
	for len(src) > 0 {
		line, n, err := c.Decode(src)
		if err != nil || n == 0 {
			break
		}
		fmt.Printf("%q\n", line)
		src = src[n:]
	}
	out, _ := c.Encode(nil, []byte("HTTP/1.0 200 OK"))
	fmt.Printf("%q\n", out)
	// Output:
	// "GET / HTTP/1.0"
	// "Host: x"
	// ""
	// "HTTP/1.0 200 OK\r\n"
}

func ExampleLinesConfig_skipTooLong() {
	lines, err := codec.NewLines(codec.LinesConfig{MaxLength: 4, SkipTooLong: true})
	if err != nil {
		panic(err)
	}
	c := lines.Factory()()
	src := []byte("much too long\nok\n")
	for len(src) > 0 {
		line, n, err := c.Decode(src)
		switch {
		case err == codec.ErrSkip:
			fmt.Println("skipped", n, "bytes")
		case err != nil || n == 0:
			return
		default:
			fmt.Printf("line %q\n", line)
		}
		src = src[n:]
	}
	// Output:
	// skipped 14 bytes
	// line "ok"
}

func ExampleDelimiter() {
	d, err := codec.NewDelimiter(codec.DelimiterConfig{
		Delimiters: [][]byte{[]byte("\r\n"), []byte("\x00")},
		MaxLength:  64,
	})
	if err != nil {
		panic(err)
	}
	c := d.Factory()()
	src := []byte("one\x00two\r\nthr")
	for {
		frame, n, err := c.Decode(src)
		if err != nil || n == 0 {
			break
		}
		fmt.Printf("%q\n", frame)
		src = src[n:]
	}
	fmt.Printf("pending %q\n", src)
	out, _ := c.Encode(nil, []byte("four"))
	fmt.Printf("%q\n", out)
	// Output:
	// "one"
	// "two"
	// pending "thr"
	// "four\r\n"
}

func ExampleFixedLength() {
	fl, err := codec.NewFixedLength(codec.FixedLengthConfig{Length: 4})
	if err != nil {
		panic(err)
	}
	frame, n, _ := fl.Decode([]byte("abcdef"))
	fmt.Printf("%q %d\n", frame, n)
	_, err = fl.Encode(nil, []byte("abcde"))
	fmt.Println(errors.Is(err, codec.ErrFrameTooLarge))
	// Output:
	// "abcd" 4
	// true
}

func ExampleRaw() {
	raw, err := codec.NewRaw(codec.RawConfig{MaxLength: 4})
	if err != nil {
		panic(err)
	}
	src := []byte("abcdef")
	for len(src) > 0 {
		frame, n, _ := raw.Decode(src)
		fmt.Printf("%q\n", frame)
		src = src[n:]
	}
	// Output:
	// "abcd"
	// "ef"
}

func ExampleStrings() {
	lines, err := codec.NewLines(codec.LinesConfig{MaxLength: 80})
	if err != nil {
		panic(err)
	}
	var f codec.Factory[string] = codec.Strings(lines.Factory())
	c := f()
	s, n, _ := c.Decode([]byte("hello\nworld"))
	fmt.Printf("%q %d\n", s, n) // s is a copy: the handler may keep it
	out, _ := c.Encode(nil, "bye")
	fmt.Printf("%q\n", out)
	// Output:
	// "hello" 6
	// "bye\n"
}
