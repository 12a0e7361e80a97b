package resp

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/mai-go/mai/codec"
)

// Defaults for Config's zero fields.
const (
	// DefaultMaxBulkLen matches mai's default maximum frame size: a bulk
	// string (or a simple string or error line) over it is refused from its
	// header. Redis's own proto-max-bulk-len is 512 MiB.
	DefaultMaxBulkLen = 1 << 20
	// DefaultMaxArrayLen bounds the elements of one array.
	DefaultMaxArrayLen = 1 << 20
	// DefaultMaxInlineLen is Redis's PROTO_INLINE_MAX_SIZE: the longest
	// inline command line.
	DefaultMaxInlineLen = 64 << 10
	// DefaultMaxDepth bounds the nesting of arrays in replies.
	DefaultMaxDepth = 32
)

// headerMax is the longest "$n", "*n" or ":n" line, CRLF excluded, that is
// looked at before the header is declared invalid: a type byte, a sign and
// 19 digits fit.
const headerMax = 24

// Config bounds what a codec decodes and encodes. Zero fields take the
// defaults above; negative ones are invalid and also take the defaults.
type Config struct {
	// MaxBulkLen is the largest bulk string, and the longest simple string
	// or error line, in bytes. A larger declared length is refused with an
	// error wrapping codec.ErrFrameTooLarge before its body is buffered.
	MaxBulkLen int
	// MaxArrayLen is the most elements of one array; more is refused with
	// an error wrapping codec.ErrFrameTooLarge.
	MaxArrayLen int
	// MaxInlineLen is the longest inline command line (server codec); a
	// longer one is refused with an error wrapping codec.ErrFrameTooLarge.
	MaxInlineLen int
	// MaxDepth is the deepest nesting of arrays (client codec: the server
	// codec takes a flat array of bulk strings only).
	MaxDepth int
	// MaxFrameSize is the largest whole frame, in encoded bytes: a command
	// with all its arguments, a reply with all its elements. A frame that
	// grows over it is refused with an error wrapping
	// codec.ErrFrameTooLarge, as soon as a header shows it. Default
	// MaxBulkLen + 64 KiB. The codec reports it to the engine
	// (codec.MaxSizer), which then needs no mai.WithMaxFrameSize.
	MaxFrameSize int
}

func (c Config) withDefaults() Config {
	if c.MaxBulkLen <= 0 {
		c.MaxBulkLen = DefaultMaxBulkLen
	}
	if c.MaxArrayLen <= 0 {
		c.MaxArrayLen = DefaultMaxArrayLen
	}
	if c.MaxInlineLen <= 0 {
		c.MaxInlineLen = DefaultMaxInlineLen
	}
	if c.MaxDepth <= 0 {
		c.MaxDepth = DefaultMaxDepth
	}
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = c.MaxBulkLen + min(64<<10, math.MaxInt-c.MaxBulkLen) // saturate
	}
	c.MaxInlineLen = min(c.MaxInlineLen, c.MaxFrameSize)
	return c
}

// ProtocolError is the error Decode returns for input that is not RESP. Its
// text is what Redis replies in the same case ("Protocol error: invalid bulk
// length"), so a server can answer "-ERR " + err.Error() before closing. Err
// is codec.ErrFrameTooLarge for a length over the Config's bounds, else nil.
type ProtocolError struct {
	Msg string
	Err error
}

func (e *ProtocolError) Error() string { return "Protocol error: " + e.Msg }

// Unwrap returns Err.
func (e *ProtocolError) Unwrap() error { return e.Err }

func protoErr(msg string) error { return &ProtocolError{Msg: msg} }

func tooLarge(msg string) error { return &ProtocolError{Msg: msg, Err: codec.ErrFrameTooLarge} }

// ErrInvalidValue is returned (wrapped) by Encode for a Value that has no
// RESP encoding: an unknown Kind, or a simple string or error holding CR or
// LF.
var ErrInvalidValue = errors.New("resp: invalid value")

func errorf(base error, format string, args ...any) error {
	return fmt.Errorf("resp: "+format+": %w", append(args, base)...)
}

// ServerFactory returns a Factory of codecs for the server side: Decode
// reads commands (arrays of bulk strings, or inline commands), Encode writes
// any Value. Like Redis, an empty command ("*0", "*-1", a blank inline line)
// is skipped (codec.ErrSkip).
func ServerFactory(cfg Config) codec.Factory[Value] {
	cfg = cfg.withDefaults()
	return func() codec.Codec[Value] { return &Codec{cfg: cfg, server: true} }
}

// ClientFactory returns a Factory of codecs for the client side: Decode
// reads any reply, nested arrays included; Encode writes any Value.
func ClientFactory(cfg Config) codec.Factory[Value] {
	cfg = cfg.withDefaults()
	return func() codec.Codec[Value] { return &Codec{cfg: cfg} }
}

// NewServerCodec and NewClientCodec return one codec, for use outside an
// engine (tests, a hand-written loop).
func NewServerCodec(cfg Config) *Codec { return &Codec{cfg: cfg.withDefaults(), server: true} }

// NewClientCodec: see NewServerCodec.
func NewClientCodec(cfg Config) *Codec { return &Codec{cfg: cfg.withDefaults()} }

// Codec is a RESP2 codec for one connection. It keeps the progress of a
// partial frame between Decode calls, so it must not be shared between
// connections; Decode and Encode may run concurrently with each other (Encode
// uses only the read-only Config).
type Codec struct {
	cfg    Config
	server bool

	// Scan state of the partial frame at the start of src, kept between
	// Decode calls that asked for more bytes. Offsets, not slices: the
	// engine may move the bytes between calls.
	active bool
	first  byte    // src[0] of the partial frame, a cheap sanity check
	pos    int     // src[:pos] holds whole elements, recorded in elems
	line   int     // where the search for the current line's CR resumes
	stack  []int64 // elements still expected by each open array
	elems  []elem  // the elements of src[:pos], in pre-order

	slowOnly bool // tests: no one-pass fast path

	// slab hands out the element slices of decoded arrays; a slab is never
	// reused, so frames stay valid however long the handler keeps them.
	slab []Value
}

// elem is one scanned element, by offsets into src.
type elem struct {
	kind       Kind
	null       bool
	start, end int   // body of a string
	n          int64 // integer, or element count of an array
}

const (
	slabSize     = 256
	maxKeptElems = 1024
)

func (c *Codec) reset() {
	c.active = false
	c.pos, c.line = 0, 0
	c.stack = c.stack[:0]
	if cap(c.elems) > maxKeptElems {
		c.elems = nil
	} else {
		c.elems = c.elems[:0]
	}
}

// MaxFrameSize implements codec.MaxSizer: the engine's frame limit follows
// the codec's.
func (c *Codec) MaxFrameSize() int { return c.cfg.MaxFrameSize }

// Decode implements codec.Codec.
func (c *Codec) Decode(src []byte) (Value, int, error) {
	if len(src) == 0 {
		return Value{}, 0, nil
	}
	if c.active && (len(src) < c.pos || len(src) < c.line || src[0] != c.first) {
		c.reset() // not the same partial frame: start over
	}
	if !c.active {
		c.active, c.first = true, src[0]
	}
	if c.server {
		if src[0] != '*' {
			return c.inline(src)
		}
		if c.pos == 0 && !c.slowOnly {
			if v, n, ok := c.fastCommand(src); ok {
				c.reset()
				return v, n, nil
			}
		}
	}
	n, err := c.scan(src)
	if err != nil || n == 0 {
		if err != nil {
			c.reset()
		}
		return Value{}, n, err
	}
	v, _ := c.build(src, 0)
	c.reset()
	return v, n, nil
}

// scan checks src from c.pos on, recording whole elements, and returns the
// frame's length once it is complete, 0 to ask for more, or an error. A
// skipped empty command returns its length with codec.ErrSkip.
func (c *Codec) scan(src []byte) (int, error) {
	for c.pos < len(src) {
		start := c.pos
		t := Kind(src[start])
		if c.server && len(c.stack) > 0 && t != KindBulk {
			return 0, protoErr("expected '$', got '" + string(rune(t)) + "'")
		}
		switch t {
		case KindBulk:
			end, err := c.lineEnd(src, headerMax)
			if end < 0 || err != nil {
				return 0, badLen(err, "invalid bulk length")
			}
			n, ok := parseLen(src[start+1 : end])
			if !ok || n < -1 || (n == -1 && c.server) {
				return 0, protoErr("invalid bulk length")
			}
			if n > int64(c.cfg.MaxBulkLen) {
				return 0, tooLarge("invalid bulk length")
			}
			if n == -1 {
				c.elems = append(c.elems, elem{kind: KindBulk, null: true})
				c.pos = end + 2
				break
			}
			body := end + 2
			stop := body + int(n)
			if stop+2 > c.cfg.MaxFrameSize {
				return 0, tooLarge("frame too large")
			}
			if len(src) < stop+2 {
				return 0, nil // header is re-read next time: it is short
			}
			if src[stop] != '\r' || src[stop+1] != '\n' {
				return 0, protoErr("expected CRLF after bulk string")
			}
			c.elems = append(c.elems, elem{kind: KindBulk, start: body, end: stop})
			c.pos = stop + 2
		case KindArray:
			end, err := c.lineEnd(src, headerMax)
			if end < 0 || err != nil {
				return 0, badLen(err, "invalid multibulk length")
			}
			n, ok := parseLen(src[start+1 : end])
			if !ok || (n < -1 && !c.server) { // Redis skips any count <= 0
				return 0, protoErr("invalid multibulk length")
			}
			if n > int64(c.cfg.MaxArrayLen) {
				return 0, tooLarge("invalid multibulk length")
			}
			c.pos = end + 2
			if c.server && n <= 0 {
				return c.pos, codec.ErrSkip // Redis ignores "*0" and "*-1"
			}
			// Every array but a null one counts towards MaxDepth, empty
			// ones too, as on the encoding side.
			if n >= 0 && len(c.stack) >= c.cfg.MaxDepth {
				return 0, protoErr("arrays nested too deep")
			}
			c.elems = append(c.elems, elem{kind: KindArray, null: n < 0, n: n})
			if n > 0 {
				c.stack = append(c.stack, n)
				continue // its elements come next
			}
		case KindInt:
			end, err := c.lineEnd(src, headerMax)
			if end < 0 || err != nil {
				return 0, badLen(err, "invalid integer")
			}
			n, err := strconv.ParseInt(string(src[start+1:end]), 10, 64)
			if err != nil {
				return 0, protoErr("invalid integer")
			}
			c.elems = append(c.elems, elem{kind: KindInt, n: n})
			c.pos = end + 2
		case KindSimple, KindError:
			end, err := c.lineEnd(src, c.cfg.MaxBulkLen+1)
			if err != nil {
				return 0, err
			}
			if end < 0 {
				return 0, nil
			}
			c.elems = append(c.elems, elem{kind: t, start: start + 1, end: end})
			c.pos = end + 2
		default:
			return 0, protoErr("unexpected type byte " + strconv.QuoteRune(rune(t)))
		}
		if c.pos > c.cfg.MaxFrameSize {
			return 0, tooLarge("frame too large")
		}
		// One element is complete: close the arrays it completes.
		for len(c.stack) > 0 {
			top := len(c.stack) - 1
			c.stack[top]--
			if c.stack[top] > 0 {
				break
			}
			c.stack = c.stack[:top]
		}
		if len(c.stack) == 0 {
			return c.pos, nil
		}
	}
	return 0, nil
}

// fastCommand decodes a command that is complete in src in one pass, the
// common case, without recording elements. It returns ok false for anything
// else (a partial frame, an error, an empty command), which scan then
// handles.
func (c *Codec) fastCommand(src []byte) (Value, int, bool) {
	count, p, ok := fastHeader(src, 0)
	if !ok || count <= 0 || count > int64(c.cfg.MaxArrayLen) || count > int64(len(src)/4) {
		return Value{}, 0, false
	}
	mark := len(c.slab)
	vs := c.alloc(int(count))
	for i := range vs {
		if p >= len(src) || src[p] != '$' {
			break
		}
		n, body, ok := fastHeader(src, p)
		stop := body + int(n)
		if !ok || n < 0 || n > int64(c.cfg.MaxBulkLen) || stop+2 > len(src) || src[stop] != '\r' || src[stop+1] != '\n' {
			break
		}
		vs[i] = Value{Kind: KindBulk, Str: src[body:stop:stop]}
		p = stop + 2
		if p > c.cfg.MaxFrameSize {
			break
		}
		if i == len(vs)-1 {
			return Value{Kind: KindArray, Array: vs}, p, true
		}
	}
	if len(c.slab) >= mark+len(vs) && len(vs) <= slabSize/4 {
		clear(vs)
		c.slab = c.slab[:mark] // give the elements back
	}
	return Value{}, 0, false
}

// fastHeader parses the "$n\r\n" or "*n\r\n" header at src[p]; it returns n
// and the index after the header.
func fastHeader(src []byte, p int) (int64, int, bool) {
	end := p + 1
	for end < len(src) && end-p <= headerMax && src[end] != '\r' {
		end++
	}
	if end+1 >= len(src) || src[end] != '\r' || src[end+1] != '\n' {
		return 0, 0, false
	}
	n, ok := parseLen(src[p+1 : end])
	return n, end + 2, ok
}

// badLen turns a header whose line is too long into a protocol error named
// msg; a need-more (nil) stays nil.
func badLen(err error, msg string) error {
	if err != nil {
		return protoErr(msg)
	}
	return nil
}

// lineEnd returns the index of the CR ending the line that starts at c.pos,
// or -1 when the line is not complete yet. A line whose text (after the type
// byte) is over maxLen-1 bytes is an error wrapping ErrFrameTooLarge; a CR
// not followed by LF, or an LF alone, is a protocol error (a line holds
// neither). The search resumes where the last call stopped, so a long line
// arriving piecewise is scanned once.
func (c *Codec) lineEnd(src []byte, maxLen int) (int, error) {
	from := max(c.pos+1, c.line)
	bound := c.pos + maxLen + 1 // the CR must come before bound
	stop := min(len(src), bound)
	if from > stop {
		from = stop
	}
	seg := src[from:stop]
	cr := bytes.IndexByte(seg, '\r')
	scanned := seg
	if cr >= 0 {
		scanned = seg[:cr]
	}
	if bytes.IndexByte(scanned, '\n') >= 0 {
		return -1, protoErr("unexpected LF")
	}
	if cr < 0 {
		if len(src) >= bound {
			return -1, tooLarge("line too long")
		}
		c.line = stop
		return -1, nil
	}
	cr += from
	if cr+1 == len(src) {
		c.line = cr
		return -1, nil
	}
	if src[cr+1] != '\n' {
		return -1, protoErr("expected LF after CR")
	}
	c.line = 0
	return cr, nil
}

// parseLen parses a length as Redis does: an optional '-' and digits without
// leading zeros, at most 18 of them so that it cannot overflow.
func parseLen(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 18 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	if neg {
		if n == 0 {
			return 0, false
		}
		n = -n
	}
	return n, true
}

// build turns the elements recorded from index i on into a Value whose
// strings alias src.
func (c *Codec) build(src []byte, i int) (Value, int) {
	e := c.elems[i]
	switch e.kind {
	case KindArray:
		if e.null {
			return Value{Kind: KindArray, Null: true}, i + 1
		}
		vs := c.alloc(int(e.n))
		i++
		for k := range vs {
			vs[k], i = c.build(src, i)
		}
		return Value{Kind: KindArray, Array: vs}, i
	case KindInt:
		return Value{Kind: KindInt, Int: e.n}, i + 1
	case KindBulk:
		if e.null {
			return Value{Kind: KindBulk, Null: true}, i + 1
		}
	}
	return Value{Kind: e.kind, Str: src[e.start:e.end:e.end]}, i + 1
}

// alloc returns n fresh elements, carved from a slab to save allocations.
func (c *Codec) alloc(n int) []Value {
	if n > slabSize/4 {
		return make([]Value, n)
	}
	if n > cap(c.slab)-len(c.slab) {
		c.slab = make([]Value, 0, slabSize)
	}
	l := len(c.slab)
	c.slab = c.slab[:l+n]
	return c.slab[l : l+n : l+n]
}

// inline decodes an inline command: one line split into arguments as
// Redis's sdssplitargs does (spaces, "double quotes" with \n \r \t \b \a
// \xHH escapes, 'single quotes' with \').
func (c *Codec) inline(src []byte) (Value, int, error) {
	from := c.line
	i := bytes.IndexByte(src[from:], '\n')
	if i < 0 {
		if len(src) > c.cfg.MaxInlineLen {
			c.reset()
			return Value{}, 0, tooLarge("too big inline request")
		}
		c.line = len(src)
		return Value{}, 0, nil
	}
	end := from + i
	c.reset()
	if end > c.cfg.MaxInlineLen {
		return Value{}, 0, tooLarge("too big inline request")
	}
	line := src[:end]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	args, ok := c.splitArgs(line)
	if !ok {
		return Value{}, 0, protoErr("unbalanced quotes in request")
	}
	if len(args) == 0 {
		return Value{}, end + 1, codec.ErrSkip
	}
	return Value{Kind: KindArray, Array: args}, end + 1, nil
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\v' || b == '\f' || b == '\r'
}

func hexVal(b byte) (byte, bool) {
	switch {
	case b >= '0' && b <= '9':
		return b - '0', true
	case b >= 'a' && b <= 'f':
		return b - 'a' + 10, true
	case b >= 'A' && b <= 'F':
		return b - 'A' + 10, true
	}
	return 0, false
}

// splitArgs splits an inline line. Arguments without quotes alias line.
func (c *Codec) splitArgs(line []byte) ([]Value, bool) {
	var args [16][]byte
	list := args[:0]
	var quotedBuf []byte // the unquoted text of every quoted argument
	p := 0
	for {
		for p < len(line) && isSpace(line[p]) {
			p++
		}
		if p == len(line) || line[p] == 0 {
			break
		}
		arg, next, ok := splitOne(line, p, &quotedBuf)
		if !ok {
			return nil, false
		}
		list = append(list, arg)
		p = next
	}
	if len(list) == 0 {
		return nil, true
	}
	vs := c.alloc(len(list))
	for i, a := range list {
		vs[i] = Value{Kind: KindBulk, Str: a}
	}
	return vs, true
}

// splitOne reads the argument starting at line[p]; it returns it and the
// index after it. An argument without quotes aliases line.
func splitOne(line []byte, p int, buf *[]byte) (arg []byte, next int, ok bool) {
	start := p
	for p < len(line) {
		b := line[p]
		if b == ' ' || b == '\n' || b == '\r' || b == '\t' || b == 0 {
			break
		}
		if b == '"' || b == '\'' {
			// Unquoting never lengthens the text, so one buffer of the
			// line's length holds every quoted argument of the line.
			if *buf == nil {
				*buf = make([]byte, 0, len(line))
			}
			from := len(*buf)
			cur := append(*buf, line[start:p]...)
			cur, p, ok = quoted(line, p, cur)
			*buf = cur
			cur = cur[from:len(cur):len(cur)]
			// A closing quote must be followed by a space or the end.
			if !ok || (p < len(line) && line[p] != 0 && !isSpace(line[p])) {
				return nil, 0, false
			}
			return cur, p, true
		}
		p++
	}
	return line[start:p:p], p, true
}

// quoted appends the quoted string opening at line[p] to cur; it returns the
// index after the closing quote, or closed false.
func quoted(line []byte, p int, cur []byte) ([]byte, int, bool) {
	q := line[p]
	p++
	for p < len(line) {
		b := line[p]
		switch {
		case b == q:
			return cur, p + 1, true
		case b == '\\' && q == '\'' && p+1 < len(line) && line[p+1] == '\'':
			cur = append(cur, '\'')
			p += 2
		case b == '\\' && q == '"' && p+3 < len(line) && line[p+1] == 'x':
			hi, ok1 := hexVal(line[p+2])
			lo, ok2 := hexVal(line[p+3])
			if ok1 && ok2 {
				cur = append(cur, hi<<4|lo)
				p += 4
				continue
			}
			cur = append(cur, 'x')
			p += 2
		case b == '\\' && q == '"' && p+1 < len(line) && line[p+1] != 0:
			e := line[p+1]
			switch e {
			case 'n':
				e = '\n'
			case 'r':
				e = '\r'
			case 't':
				e = '\t'
			case 'b':
				e = '\b'
			case 'a':
				e = '\a'
			}
			cur = append(cur, e)
			p += 2
		case b == 0:
			return cur, p, false // Redis stops at NUL: unbalanced
		default:
			cur = append(cur, b)
			p++
		}
	}
	return cur, p, false
}

// Encode implements codec.Codec: it appends the RESP encoding of v to dst.
func (c *Codec) Encode(dst []byte, v Value) ([]byte, error) {
	return c.appendValue(dst, v, 0)
}

// AppendValue appends the encoding of v to dst under cfg's bounds; it is
// Encode without a Codec.
func AppendValue(dst []byte, v Value, cfg Config) ([]byte, error) {
	c := Codec{cfg: cfg.withDefaults()}
	return c.appendValue(dst, v, 0)
}

func (c *Codec) appendValue(dst []byte, v Value, depth int) ([]byte, error) {
	switch v.Kind {
	case KindSimple, KindError:
		if bytes.IndexByte(v.Str, '\r') >= 0 || bytes.IndexByte(v.Str, '\n') >= 0 {
			return dst, errorf(ErrInvalidValue, "%s holds CR or LF", v.Kind)
		}
		if len(v.Str) > c.cfg.MaxBulkLen {
			return dst, errorf(codec.ErrFrameTooLarge, "%s of %d bytes over %d", v.Kind, len(v.Str), c.cfg.MaxBulkLen)
		}
		dst = append(dst, byte(v.Kind))
		dst = append(dst, v.Str...)
		return append(dst, '\r', '\n'), nil
	case KindInt:
		dst = strconv.AppendInt(append(dst, ':'), v.Int, 10)
		return append(dst, '\r', '\n'), nil
	case KindBulk:
		if v.Null {
			return append(dst, "$-1\r\n"...), nil
		}
		if len(v.Str) > c.cfg.MaxBulkLen {
			return dst, errorf(codec.ErrFrameTooLarge, "bulk string of %d bytes over %d", len(v.Str), c.cfg.MaxBulkLen)
		}
		dst = strconv.AppendInt(append(dst, '$'), int64(len(v.Str)), 10)
		dst = append(dst, '\r', '\n')
		dst = append(dst, v.Str...)
		return append(dst, '\r', '\n'), nil
	case KindArray:
		if v.Null {
			return append(dst, "*-1\r\n"...), nil
		}
		if len(v.Array) > c.cfg.MaxArrayLen {
			return dst, errorf(codec.ErrFrameTooLarge, "array of %d elements over %d", len(v.Array), c.cfg.MaxArrayLen)
		}
		if depth >= c.cfg.MaxDepth {
			return dst, errorf(ErrInvalidValue, "arrays nested over %d deep", c.cfg.MaxDepth)
		}
		dst = strconv.AppendInt(append(dst, '*'), int64(len(v.Array)), 10)
		dst = append(dst, '\r', '\n')
		var err error
		for _, e := range v.Array {
			if dst, err = c.appendValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	}
	return dst, errorf(ErrInvalidValue, "unknown kind %d", byte(v.Kind))
}
