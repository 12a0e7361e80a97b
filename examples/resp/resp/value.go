// Package resp is a RESP2 codec for mai: the Redis serialization protocol
// spoken by Redis clients and servers up to Redis 7 (without HELLO 3).
//
// One frame type, Value, covers requests and replies: simple strings,
// errors, integers, bulk strings (possibly null), and arrays (possibly null,
// possibly nested). Two codecs share it:
//
//   - ServerFactory decodes what a server reads: commands as arrays of bulk
//     strings, or inline commands ("PING\r\n", as typed in telnet), and
//     encodes any Value as a reply.
//   - ClientFactory decodes what a client reads: any reply, with nested
//     arrays, and encodes any Value (commands are arrays of bulk strings).
//
// Decoded strings alias the engine's input buffer (zero-copy), so a frame is
// valid only until the OnFrame call that received it returns: copy what you
// keep (Value.Clone, or copy the bytes of one argument, as a SET does).
//
// Both codecs are stateful, so a Factory returns a fresh codec per
// connection: Decode remembers how far it has checked a partial frame, and a
// large frame arriving piecewise costs O(size) in total, not O(size²).
package resp

import (
	"bytes"
	"strconv"
)

// Kind is the type of a Value: the RESP type byte.
type Kind byte

// The RESP2 types.
const (
	KindSimple Kind = '+' // simple string: +OK\r\n
	KindError  Kind = '-' // error: -ERR message\r\n
	KindInt    Kind = ':' // integer: :42\r\n
	KindBulk   Kind = '$' // bulk string: $3\r\nfoo\r\n, null: $-1\r\n
	KindArray  Kind = '*' // array: *2\r\n..., null: *-1\r\n
)

func (k Kind) String() string {
	switch k {
	case KindSimple:
		return "simple"
	case KindError:
		return "error"
	case KindInt:
		return "integer"
	case KindBulk:
		return "bulk"
	case KindArray:
		return "array"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one RESP value. The zero Value is invalid (Kind 0); build values
// with the constructors or set Kind and the field that goes with it.
//
// Str holds the text of a simple string or error (no CR or LF) and the bytes
// of a bulk string; Int the integer; Array the elements of an array. Null is
// meaningful for KindBulk and KindArray only. A decoded Value's Str may
// alias the input: see the package comment.
type Value struct {
	Kind  Kind
	Null  bool
	Int   int64
	Str   []byte
	Array []Value
}

// Simple returns a simple string.
func Simple(s string) Value { return Value{Kind: KindSimple, Str: []byte(s)} }

// Error returns an error value; msg conventionally starts with an upper-case
// code such as "ERR" or "WRONGTYPE".
func Error(msg string) Value { return Value{Kind: KindError, Str: []byte(msg)} }

// Int returns an integer.
func Int(n int64) Value { return Value{Kind: KindInt, Int: n} }

// Bulk returns a bulk string over b (not copied).
func Bulk(b []byte) Value { return Value{Kind: KindBulk, Str: b} }

// BulkString returns a bulk string holding a copy of s.
func BulkString(s string) Value { return Value{Kind: KindBulk, Str: []byte(s)} }

// NullBulk returns the null bulk string ($-1), Redis's "nil" reply.
func NullBulk() Value { return Value{Kind: KindBulk, Null: true} }

// Array returns an array of vs (not copied).
func Array(vs ...Value) Value {
	if vs == nil {
		vs = []Value{}
	}
	return Value{Kind: KindArray, Array: vs}
}

// NullArray returns the null array (*-1).
func NullArray() Value { return Value{Kind: KindArray, Null: true} }

// Command returns a command: an array of bulk strings, one per argument.
func Command(args ...string) Value {
	vs := make([]Value, len(args))
	for i, a := range args {
		vs[i] = BulkString(a)
	}
	return Value{Kind: KindArray, Array: vs}
}

// EncodedLen returns the number of bytes Encode appends for v (for a valid
// v; limits are not checked).
func EncodedLen(v Value) int {
	switch v.Kind {
	case KindSimple, KindError:
		return len(v.Str) + 3
	case KindInt:
		return decimalLen(v.Int) + 3
	case KindBulk:
		if v.Null {
			return 5
		}
		return decimalLen(int64(len(v.Str))) + len(v.Str) + 5
	case KindArray:
		if v.Null {
			return 5
		}
		n := decimalLen(int64(len(v.Array))) + 3
		for _, e := range v.Array {
			n += EncodedLen(e)
		}
		return n
	}
	return 0
}

func decimalLen(n int64) int {
	d := 1
	if n < 0 {
		d++
		if n == -1<<63 {
			return 20
		}
		n = -n
	}
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// IsNull reports whether v is a null bulk string or a null array.
func (v Value) IsNull() bool { return v.Null && (v.Kind == KindBulk || v.Kind == KindArray) }

// Text returns the string of a simple string, error or bulk string, and the
// decimal form of an integer; "" otherwise.
func (v Value) Text() string {
	switch v.Kind {
	case KindInt:
		return strconv.FormatInt(v.Int, 10)
	case KindSimple, KindError, KindBulk:
		return string(v.Str)
	}
	return ""
}

// Clone returns a deep copy of v that shares no memory with it: use it to
// keep a decoded Value past OnFrame. The copy of a whole tree is made in one
// allocation for the bytes and one for the elements.
func (v Value) Clone() Value {
	nb, nv := v.size()
	c := cloner{b: make([]byte, 0, nb)}
	if nv > 0 {
		c.v = make([]Value, 0, nv)
	}
	return c.clone(v)
}

func (v Value) size() (nbytes, nvalues int) {
	nbytes = len(v.Str)
	for _, e := range v.Array {
		b, n := e.size()
		nbytes += b
		nvalues += n + 1
	}
	return nbytes, nvalues
}

type cloner struct {
	b []byte
	v []Value
}

func (c *cloner) clone(v Value) Value {
	out := Value{Kind: v.Kind, Null: v.Null, Int: v.Int}
	if v.Str != nil {
		start := len(c.b)
		c.b = append(c.b, v.Str...)
		out.Str = c.b[start:len(c.b):len(c.b)]
	}
	if v.Array != nil {
		start := len(c.v)
		c.v = c.v[:start+len(v.Array)]
		for i, e := range v.Array {
			c.v[start+i] = c.clone(e)
		}
		out.Array = c.v[start : start+len(v.Array) : start+len(v.Array)]
	}
	return out
}

// Equal reports whether a and b are the same RESP value. A nil and an empty
// Str or Array are equal; Str is ignored for nulls, integers and arrays, and
// Int for everything but integers.
func Equal(a, b Value) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case KindInt:
		return a.Int == b.Int
	case KindSimple, KindError:
		return bytes.Equal(a.Str, b.Str)
	case KindBulk:
		if a.Null || b.Null {
			return a.Null == b.Null
		}
		return bytes.Equal(a.Str, b.Str)
	case KindArray:
		if a.Null || b.Null {
			return a.Null == b.Null
		}
		if len(a.Array) != len(b.Array) {
			return false
		}
		for i := range a.Array {
			if !Equal(a.Array[i], b.Array[i]) {
				return false
			}
		}
		return true
	}
	return true
}

// String formats v for humans, in the style of redis-cli: quoted strings,
// (integer) n, (error) msg, (nil), and arrays as [a b c].
func (v Value) String() string { return string(v.appendHuman(nil)) }

func (v Value) appendHuman(b []byte) []byte {
	switch v.Kind {
	case KindSimple:
		return append(b, v.Str...)
	case KindError:
		return append(append(b, "(error) "...), v.Str...)
	case KindInt:
		return strconv.AppendInt(append(b, "(integer) "...), v.Int, 10)
	case KindBulk:
		if v.Null {
			return append(b, "(nil)"...)
		}
		return strconv.AppendQuote(b, string(v.Str))
	case KindArray:
		if v.Null {
			return append(b, "(nil array)"...)
		}
		b = append(b, '[')
		for i, e := range v.Array {
			if i > 0 {
				b = append(b, ' ')
			}
			b = e.appendHuman(b)
		}
		return append(b, ']')
	}
	return append(b, "(invalid)"...)
}
