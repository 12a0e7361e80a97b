package resp

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/mai-go/mai/codec"
	"github.com/mai-go/mai/codec/codectest"
)

// serverSamples are requests: arrays of bulk strings, including empty
// arguments, arguments that look like RESP, and a long one.
func serverSamples() []Value {
	many := make([]string, 100)
	for i := range many {
		many[i] = strconv.Itoa(i)
	}
	return []Value{
		Command("PING"),
		Command("SET", "key", "value"),
		Command("SET", "", ""),
		Command("ECHO", "*1\r\n$4\r\nPING\r\n"),
		Command("ECHO", "\r\n\r\n", "\n", "\r", "+OK", "-ERR", ":1", "$-1", "*-1"),
		Command("SET", "big", strings.Repeat("0123456789", 800)),
		Command(append([]string{"MGET"}, many...)...),
	}
}

// clientSamples are replies of every type, nested.
func clientSamples() []Value {
	return []Value{
		Simple("OK"),
		Simple(""),
		Error("ERR unknown command 'foo', with args beginning with: "),
		Int(0),
		Int(-9223372036854775808),
		Int(9223372036854775807),
		BulkString(""),
		BulkString("a\r\nb\x00c"),
		NullBulk(),
		NullArray(),
		Array(),
		Array(Int(1), BulkString("two"), NullBulk(), Array(Simple("x"), Array(NullArray(), Error("E")))),
		BulkString(strings.Repeat("x", 8000)),
	}
}

// Oversized inputs are headers declaring too much. (A too long inline line
// is checked with small limits below: the kit feeds Oversized inputs a byte
// per read, moving the pending bytes each time, which costs O(n²) in the
// input's length.)
var (
	tooBigBulk  = []byte("*1\r\n$4294967296\r\n")
	tooBigArray = []byte("*4294967296\r\n")
)

func TestConformanceServer(t *testing.T) {
	codectest.Run(t, ServerFactory(Config{}), serverSamples(),
		codectest.Equal(Equal),
		codectest.Oversized(tooBigBulk, tooBigArray,
			[]byte("*2\r\n$3\r\nGET\r\n$4294967296\r\n")))
}

func TestConformanceClient(t *testing.T) {
	codectest.Run(t, ClientFactory(Config{}), clientSamples(),
		codectest.Equal(Equal),
		codectest.Oversized(tooBigBulk[4:], tooBigArray,
			[]byte("*3\r\n:1\r\n*1\r\n$4294967296\r\n")))
}

// Small limits make the kit's garbage reach them.
func TestConformanceSmallLimits(t *testing.T) {
	cfg := Config{MaxBulkLen: 64, MaxArrayLen: 10, MaxInlineLen: 64, MaxDepth: 3}
	codectest.Run(t, ServerFactory(cfg), serverSamples()[:5], codectest.Equal(Equal),
		codectest.Oversized([]byte("*11\r\n"), []byte("*1\r\n$65\r\n"), bytes.Repeat([]byte("a"), 65)))
	codectest.Run(t, ClientFactory(cfg), clientSamples()[:12], codectest.Equal(Equal),
		codectest.Oversized([]byte("*11\r\n"), []byte("$65\r\n"), []byte("-"+strings.Repeat("e", 65))))
}

// FuzzServer and FuzzClient run the conformance kit's fuzz checks.
func FuzzServer(f *testing.F) {
	codectest.Fuzz(f, ServerFactory(Config{}), serverSamples()[:5], codectest.Equal(Equal))
}

func FuzzClient(f *testing.F) {
	codectest.Fuzz(f, ClientFactory(Config{}), clientSamples()[:12], codectest.Equal(Equal))
}

// outcome is what decoding a whole stream gave.
type outcome struct {
	frames []Value
	err    error
}

// run decodes in as the engine would, fed in reads of step bytes (0: all at
// once), with frames cloned at delivery.
func run(c *Codec, in []byte, step int) outcome {
	var out outcome
	var buf []byte
	for fed := 0; fed < len(in); {
		k := len(in) - fed
		if step > 0 && step < k {
			k = step
		}
		buf = append(buf, in[fed:fed+k]...)
		fed += k
		for len(buf) > 0 {
			v, n, err := c.Decode(buf)
			if errors.Is(err, codec.ErrSkip) {
				buf = buf[n:]
				continue
			}
			if err != nil {
				out.err = err
				return out
			}
			if n == 0 {
				break
			}
			out.frames = append(out.frames, v.Clone())
			buf = buf[n:]
		}
	}
	return out
}

func sameOutcome(a, b outcome) bool {
	if len(a.frames) != len(b.frames) || (a.err == nil) != (b.err == nil) {
		return false
	}
	if a.err != nil && a.err.Error() != b.err.Error() {
		return false
	}
	for i := range a.frames {
		if !Equal(a.frames[i], b.frames[i]) {
			return false
		}
	}
	return true
}

// FuzzDecode is this package's own fuzz target. For both codecs it checks
// what the kit cannot see from outside: the server codec's one-pass fast
// path and its resumable scanner agree, whole or byte by byte, with the
// same frames and the same error text (what the server sends back); a
// decoded frame's Clone equals it; and the client codec decodes its own
// encoding of every frame back to it.
func FuzzDecode(f *testing.F) {
	for _, v := range append(serverSamples()[:5], clientSamples()[:12]...) {
		b, _ := AppendValue(nil, v, Config{})
		f.Add(b)
	}
	f.Add([]byte("PING\r\nECHO \"a\\x41\" 'b\\'c'\r\n*0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := Config{MaxBulkLen: 4096, MaxArrayLen: 64, MaxInlineLen: 256, MaxDepth: 4}
		fast := run(NewServerCodec(cfg), in, 0)
		slowCodec := NewServerCodec(cfg)
		slowCodec.slowOnly = true
		for name, got := range map[string]outcome{
			"slow whole":     run(slowCodec, in, 0),
			"fast byte-wise": run(NewServerCodec(cfg), in, 1),
			"fast 7-wise":    run(NewServerCodec(cfg), in, 7),
		} {
			if !sameOutcome(fast, got) {
				t.Fatalf("server %s: %v %v; fast whole: %v %v", name, got.frames, got.err, fast.frames, fast.err)
			}
		}
		client := run(NewClientCodec(cfg), in, 0)
		if bw := run(NewClientCodec(cfg), in, 1); !sameOutcome(client, bw) {
			t.Fatalf("client byte-wise: %v %v; whole: %v %v", bw.frames, bw.err, client.frames, client.err)
		}
		for _, o := range []outcome{fast, client} {
			for _, v := range o.frames {
				enc, err := AppendValue(nil, v, cfg)
				if err != nil {
					t.Fatalf("re-encode %v: %v", v, err)
				}
				back := run(NewClientCodec(cfg), enc, 0)
				if back.err != nil || len(back.frames) != 1 || !Equal(back.frames[0], v) {
					t.Fatalf("%v encodes to %q, which decodes to %v %v", v, enc, back.frames, back.err)
				}
			}
		}
	})
}
