package codectest_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/mai-go/mai/codec"
	"github.com/mai-go/mai/codec/codectest"
)

// byteLen is a user's own codec: a body of up to 255 bytes after a 1-byte
// length.
type byteLen struct{}

func (byteLen) Decode(src []byte) ([]byte, int, error) {
	n := 1 + int(src[0])
	if len(src) < n {
		return nil, 0, nil
	}
	return src[1:n:n], n, nil
}

func (byteLen) Encode(dst, frame []byte) ([]byte, error) {
	if len(frame) > 255 {
		return dst, codec.ErrFrameTooLarge
	}
	dst = append(dst, byte(len(frame)))
	return append(dst, frame...), nil
}

// hasty is byteLen with a classic bug: it delivers a frame before all of it
// has arrived.
type hasty struct{ byteLen }

func (hasty) Decode(src []byte) ([]byte, int, error) {
	n := min(1+int(src[0]), len(src))
	return src[1:n:n], n, nil
}

var samples = [][]byte{{}, []byte("hi"), bytes.Repeat([]byte("x"), 255)}

// In a test file, one line checks a codec:
func TestByteLen(t *testing.T) {
	codectest.Run(t, codec.Share[[]byte](byteLen{}), samples)
}

// and one line makes it a fuzz target (go test -fuzz=FuzzByteLen):
func FuzzByteLen(f *testing.F) {
	codectest.Fuzz(f, codec.Share[[]byte](byteLen{}), samples)
}

// Check runs the same checks outside a test and returns what failed.
func Example() {
	err := codectest.Check(codec.Share[[]byte](byteLen{}), samples)
	fmt.Println("byteLen:", err)

	err = codectest.Check(codec.Share[[]byte](hasty{}), samples)
	for _, line := range strings.Split(err.Error(), "\n") {
		if rest, ok := strings.CutPrefix(line, "codectest: "); ok {
			check, _, _ := strings.Cut(rest, ":")
			fmt.Println("hasty fails", check)
		}
	}
	// Output:
	// byteLen: <nil>
	// hasty fails EverySplit
	// hasty fails ByteByByte
	// hasty fails Truncated
	// hasty fails Garbage
}
