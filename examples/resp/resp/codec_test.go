package resp

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/mai-go/mai/codec"
)

func bulks(args ...string) Value { return Command(args...) }

// decodeAll decodes every frame of in with a fresh codec, in one call per
// frame, and fails on need-more leftovers.
func decodeAll(t *testing.T, c *Codec, in string) ([]Value, error) {
	t.Helper()
	src := []byte(in)
	var out []Value
	for len(src) > 0 {
		v, n, err := c.Decode(src)
		switch {
		case errors.Is(err, codec.ErrSkip):
			src = src[n:]
			continue
		case err != nil:
			return out, err
		case n == 0:
			t.Fatalf("need more with %q left", src)
		}
		out = append(out, v.Clone())
		src = src[n:]
	}
	return out, nil
}

func TestClientDecode(t *testing.T) {
	cases := []struct {
		in   string
		want Value
	}{
		{"+OK\r\n", Simple("OK")},
		{"+\r\n", Simple("")},
		{"-ERR unknown command 'foo'\r\n", Error("ERR unknown command 'foo'")},
		{":0\r\n", Int(0)},
		{":-42\r\n", Int(-42)},
		{":9223372036854775807\r\n", Int(9223372036854775807)},
		{":-9223372036854775808\r\n", Int(-9223372036854775808)},
		{":10\r\n", Int(10)},
		{"$0\r\n\r\n", BulkString("")},
		{"$5\r\nhe\r\no\r\n", BulkString("he\r\no")},
		{"$-1\r\n", NullBulk()},
		{"*-1\r\n", NullArray()},
		{"*0\r\n", Array()},
		{"*3\r\n:1\r\n$-1\r\n*2\r\n+a\r\n*0\r\n", Array(Int(1), NullBulk(), Array(Simple("a"), Array()))},
	}
	for _, tc := range cases {
		got, err := decodeAll(t, NewClientCodec(Config{}), tc.in)
		if err != nil || len(got) != 1 || !Equal(got[0], tc.want) {
			t.Errorf("Decode(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		enc, err := NewClientCodec(Config{}).Encode(nil, tc.want)
		if err != nil || string(enc) != tc.in {
			t.Errorf("Encode(%v) = %q, %v; want %q", tc.want, enc, err, tc.in)
		}
		if n := EncodedLen(tc.want); n != len(enc) {
			t.Errorf("EncodedLen(%v) = %d; want %d", tc.want, n, len(enc))
		}
	}
}

func TestServerDecode(t *testing.T) {
	cases := []struct {
		in   string
		want []Value
	}{
		{"*1\r\n$4\r\nPING\r\n", []Value{bulks("PING")}},
		{"*2\r\n$3\r\nGET\r\n$0\r\n\r\n", []Value{bulks("GET", "")}},
		{"PING\r\n", []Value{bulks("PING")}},
		{"PING\n", []Value{bulks("PING")}},
		{"  set  k\tv \r\n", []Value{bulks("set", "k", "v")}},
		{"*0\r\n*-1\r\n*-5\r\n\r\n  \r\nPING\r\n", []Value{bulks("PING")}}, // Redis skips any count <= 0
		{`ECHO "a\x41b\n" 'c d' ""` + "\r\n", []Value{bulks("ECHO", "aAb\n", "c d", "")}},
		{`ECHO 'it\'s' "\q\"" x"y z"` + "\r\n", []Value{bulks("ECHO", "it's", `q"`, "xy z")}},
		{"ECHO a\x00b c\r\n", []Value{bulks("ECHO", "a")}},
		{"*1\r\n$1\r\nA\r\nGET k\r\n", []Value{bulks("A"), bulks("GET", "k")}},
	}
	for _, tc := range cases {
		got, err := decodeAll(t, NewServerCodec(Config{}), tc.in)
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("Decode(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		for i := range got {
			if !Equal(got[i], tc.want[i]) {
				t.Errorf("Decode(%q)[%d] = %v; want %v", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}

// The messages are Redis 7's, checked against redis-server 7.0.
func TestDecodeErrors(t *testing.T) {
	cfg := Config{MaxBulkLen: 100, MaxArrayLen: 10, MaxInlineLen: 50, MaxDepth: 3, MaxFrameSize: 200}
	cases := []struct {
		server   bool
		in       string
		msg      string
		tooLarge bool
	}{
		{true, `"abc` + "\r\n", "unbalanced quotes in request", false},
		{true, `ECHO "a"b` + "\r\n", "unbalanced quotes in request", false},
		{true, `ECHO 'a` + "\r\n", "unbalanced quotes in request", false},
		{true, "*1\r\n+PING\r\n", "expected '$', got '+'", false},
		{true, "*2\r\n$-1\r\n", "invalid bulk length", false},
		{true, "*1\r\n$101\r\n", "invalid bulk length", true},
		{true, "*11\r\n", "invalid multibulk length", true},
		{true, "*1x\r\n", "invalid multibulk length", false},
		{true, "*01\r\n", "invalid multibulk length", false},
		{true, "*1\r\n$04\r\nPING\r\n", "invalid bulk length", false},
		{true, "*1\n$4\r\nPING\r\n", "invalid multibulk length", false},
		{true, "*1\r\n$4\r\nPINGxx", "expected CRLF after bulk string", false},
		{true, strings.Repeat("a", 51), "too big inline request", true},
		{true, strings.Repeat("a", 51) + "\n", "too big inline request", true},
		{true, "*99999999999999999999\r\n", "invalid multibulk length", false},
		{false, "*1\r\n$-2\r\n", "invalid bulk length", false},
		{false, "$-0\r\n", "invalid bulk length", false},
		{false, ":x\r\n", "invalid integer", false},
		{false, ":99999999999999999999\r\n", "invalid integer", false},
		{false, "+a\rb\r\n", "expected LF after CR", false},
		{false, "-a\nb\r\n", "unexpected LF", false},
		{false, "+" + strings.Repeat("a", 101) + "\r\n", "line too long", true},
		{false, "+" + strings.Repeat("a", 200), "line too long", true},
		{false, "?\r\n", "unexpected type byte '?'", false},
		{false, "*1\r\n*1\r\n*1\r\n*1\r\n", "arrays nested too deep", false},
		{false, "$" + strings.Repeat("1", 30), "invalid bulk length", false},
		{false, "*3\r\n$100\r\n" + strings.Repeat("x", 100) + "\r\n$100\r\n", "frame too large", true}, // MaxFrameSize 200
		{false, "*3\r\n$90\r\n" + strings.Repeat("x", 90) + "\r\n$95\r\n", "frame too large", true},
		{true, "*3\r\n$3\r\nSET\r\n$90\r\n" + strings.Repeat("x", 90) + "\r\n$100\r\n", "frame too large", true},
	}
	for _, tc := range cases {
		c := NewClientCodec(cfg)
		if tc.server {
			c = NewServerCodec(cfg)
		}
		_, err := decodeAll(t, c, tc.in)
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Msg != tc.msg || errors.Is(err, codec.ErrFrameTooLarge) != tc.tooLarge {
			t.Errorf("Decode(%q) error = %v; want %q (too large %v)", tc.in, err, tc.msg, tc.tooLarge)
		}
	}
}

func TestDefaultInlineLimit(t *testing.T) {
	_, _, err := NewServerCodec(Config{}).Decode(bytes.Repeat([]byte("a"), DefaultMaxInlineLen+1))
	if !errors.Is(err, codec.ErrFrameTooLarge) {
		t.Fatalf("inline line over 64 KiB: %v", err)
	}
	v, n, err := NewServerCodec(Config{}).Decode(append(bytes.Repeat([]byte("a"), DefaultMaxInlineLen), '\n'))
	if err != nil || n != DefaultMaxInlineLen+1 || len(v.Array) != 1 {
		t.Fatalf("inline line of 64 KiB: n=%d err=%v", n, err)
	}
}

func TestEncodeErrors(t *testing.T) {
	c := NewClientCodec(Config{MaxBulkLen: 4, MaxArrayLen: 2, MaxDepth: 2})
	cases := []struct {
		v    Value
		want error
	}{
		{Value{}, ErrInvalidValue},
		{Simple("a\r\nb"), ErrInvalidValue},
		{Error("a\nb"), ErrInvalidValue},
		{BulkString("12345"), codec.ErrFrameTooLarge},
		{Simple("12345"), codec.ErrFrameTooLarge},
		{Array(Int(1), Int(2), Int(3)), codec.ErrFrameTooLarge},
		{Array(Array(Array())), ErrInvalidValue},
		{Array(Int(1), Value{Kind: 'x'}), ErrInvalidValue},
	}
	for _, tc := range cases {
		if _, err := c.Encode([]byte("keep"), tc.v); !errors.Is(err, tc.want) {
			t.Errorf("Encode(%v) error = %v; want %v", tc.v, err, tc.want)
		}
	}
}

// TestPiecewise feeds each input one byte more at a time to one codec, as
// the engine does after need-more, and checks the frame comes out once,
// complete, at the last byte.
func TestPiecewise(t *testing.T) {
	inputs := []struct {
		server bool
		in     string
	}{
		{false, "*3\r\n:1\r\n$-1\r\n*2\r\n+abc\r\n*0\r\n"},
		{false, "-ERR long error line\r\n"},
		{false, "$10\r\n0123456789\r\n"},
		{true, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n"},
		{true, "SET k \"a b\"\r\n"},
	}
	for _, tc := range inputs {
		c := NewClientCodec(Config{})
		if tc.server {
			c = NewServerCodec(Config{})
		}
		want, err := decodeAll(t, NewClientCodec(Config{}), tc.in)
		if tc.server {
			want, err = decodeAll(t, NewServerCodec(Config{}), tc.in)
		}
		if err != nil || len(want) != 1 {
			t.Fatalf("whole %q: %v %v", tc.in, want, err)
		}
		for i := 1; i <= len(tc.in); i++ {
			v, n, err := c.Decode([]byte(tc.in[:i]))
			if err != nil {
				t.Fatalf("%q[:%d]: %v", tc.in, i, err)
			}
			if i < len(tc.in) {
				if n != 0 {
					t.Fatalf("%q[:%d]: frame of %d bytes early", tc.in, i, n)
				}
				continue
			}
			if n != len(tc.in) || !Equal(v, want[0]) {
				t.Fatalf("%q: got %v (%d bytes), want %v", tc.in, v, n, want[0])
			}
		}
	}
}

// TestScanResumes checks the O(n) property directly: after need-more, the
// codec has recorded the whole elements seen and resumes after them, and a
// long line's search resumes where it stopped.
func TestScanResumes(t *testing.T) {
	c := NewServerCodec(Config{})
	var b bytes.Buffer
	b.WriteString("*1000\r\n")
	for i := 0; i < 999; i++ {
		b.WriteString("$3\r\nabc\r\n")
	}
	partial := b.Bytes()
	if _, n, err := c.Decode(partial); n != 0 || err != nil {
		t.Fatalf("partial: n=%d err=%v", n, err)
	}
	if c.pos != len(partial) || len(c.elems) != 1000 {
		t.Fatalf("after need-more pos=%d elems=%d; want %d and 1000", c.pos, len(c.elems), len(partial))
	}
	full := append(partial, "$3\r\nxyz\r\n"...)
	v, n, err := c.Decode(full)
	if err != nil || n != len(full) || len(v.Array) != 1000 || string(v.Array[999].Str) != "xyz" {
		t.Fatalf("full: n=%d err=%v len=%d", n, err, len(v.Array))
	}

	cl := NewClientCodec(Config{})
	line := []byte("+" + strings.Repeat("x", 5000))
	if _, n, _ := cl.Decode(line); n != 0 || cl.line != len(line) {
		t.Fatalf("line search stopped at %d; want %d", cl.line, len(line))
	}
}

// A frame's strings alias the input; Clone detaches them.
func TestAliasAndClone(t *testing.T) {
	src := []byte("*2\r\n$3\r\nSET\r\n$1\r\nk\r\n")
	v, _, err := NewServerCodec(Config{}).Decode(src)
	if err != nil {
		t.Fatal(err)
	}
	kept := v.Clone()
	copy(src, bytes.Repeat([]byte{'#'}, len(src)))
	if string(v.Array[0].Str) != "###" {
		t.Fatalf("decoded value does not alias its input: %v", v)
	}
	if !Equal(kept, bulks("SET", "k")) {
		t.Fatalf("clone changed with the input: %v", kept)
	}
	// Appending to a decoded string must not write into the input.
	s := v.Array[1].Str
	_ = append(s, 'Z')
	if src[len(src)-2] != '#' {
		t.Fatal("append to a decoded string overwrote the input")
	}
}

func TestValueString(t *testing.T) {
	v := Array(Simple("OK"), Error("ERR x"), Int(3), BulkString("a\n"), NullBulk(), NullArray())
	want := `[OK (error) ERR x (integer) 3 "a\n" (nil) (nil array)]`
	if v.String() != want {
		t.Fatalf("String() = %s; want %s", v, want)
	}
	if Int(7).Text() != "7" || BulkString("x").Text() != "x" || !NullBulk().IsNull() || Array().IsNull() {
		t.Fatal("Text/IsNull")
	}
}

func BenchmarkDecodeCommand(b *testing.B) {
	c := NewServerCodec(Config{})
	src := []byte("*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000042\r\n$3\r\nxxx\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, n, err := c.Decode(src); n != len(src) || err != nil {
			b.Fatal(n, err)
		}
	}
}

func BenchmarkEncodeReply(b *testing.B) {
	c := NewServerCodec(Config{})
	v := Bulk([]byte("xxx"))
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = c.Encode(buf[:0], v)
	}
}

// BenchmarkDecodePiecewise decodes a 1 MiB bulk string that arrives in 4 KiB
// reads: its cost per byte must not grow with the size.
func BenchmarkDecodePiecewise(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1<<20-64)
	src := append([]byte("*1\r\n$1048512\r\n"), body...)
	src = append(src, "\r\n"...)
	b.SetBytes(int64(len(src)))
	c := NewServerCodec(Config{})
	for b.Loop() {
		for i := 4096; ; i += 4096 {
			if i > len(src) {
				i = len(src)
			}
			_, n, err := c.Decode(src[:i])
			if err != nil {
				b.Fatal(err)
			}
			if n > 0 {
				break
			}
		}
	}
}

// TestInlineQuotedMemory: each quoted argument of an inline command once
// took a buffer as long as the rest of the line, and kept it: a 64 KiB
// line of "" arguments allocated 737 MB. Now one buffer of the line's
// length holds them all; what remains is the Values themselves.
func TestInlineQuotedMemory(t *testing.T) {
	line := strings.Repeat(`"" `, (DefaultMaxInlineLen-2)/3) + "\r\n"
	c := NewServerCodec(Config{})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	v, n, err := c.Decode([]byte(line))
	runtime.ReadMemStats(&after)
	if err != nil || n != len(line) {
		t.Fatalf("Decode: %v %d %v", v.Kind, n, err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d byte line of %d quoted arguments: %d KiB allocated", len(line), len(v.Array), alloc>>10)
	if alloc > 256*uint64(len(line)) {
		t.Fatalf("decoding a %d byte inline command of %d arguments allocated %d MB", len(line), len(v.Array), alloc>>20)
	}
	runtime.KeepAlive(v)
}

// TestHugeMaxBulkLen: a MaxBulkLen meaning "no limit" once overflowed the
// default MaxFrameSize (MaxBulkLen + 64 KiB) to a negative number, and
// every command was refused as too large.
func TestHugeMaxBulkLen(t *testing.T) {
	for _, in := range []string{"*1\r\n$4\r\nPING\r\n", "PING\r\n"} {
		if v, n, err := NewServerCodec(Config{MaxBulkLen: math.MaxInt}).Decode([]byte(in)); err != nil || n != len(in) {
			t.Errorf("server Decode(%q) = %v, %d, %v", in, v, n, err)
		}
	}
	if v, n, err := NewClientCodec(Config{MaxBulkLen: math.MaxInt}).Decode([]byte("$2\r\nhi\r\n")); err != nil || n != 8 {
		t.Errorf("client Decode = %v, %d, %v", v, n, err)
	}
}
