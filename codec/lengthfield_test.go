package codec_test

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/mai-go/mai/codec"
)

func TestNewLengthFieldValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  codec.LengthFieldConfig
		want string // substring of the error; "" for a valid config
	}{
		{"minimal", codec.LengthFieldConfig{Width: 4, Strip: 4, MaxLength: 1}, ""},
		{"width 0", codec.LengthFieldConfig{Width: 0, MaxLength: 10}, "Width 0"},
		{"width 5", codec.LengthFieldConfig{Width: 5, MaxLength: 10}, "Width 5"},
		{"width 16", codec.LengthFieldConfig{Width: 16, MaxLength: 10}, "Width 16"},
		{"negative offset", codec.LengthFieldConfig{Width: 2, Offset: -1, MaxLength: 10}, "Offset -1"},
		{"huge offset", codec.LengthFieldConfig{Width: 2, Offset: 1<<30 + 1, MaxLength: 10}, "Offset"},
		{"negative strip", codec.LengthFieldConfig{Width: 2, Strip: -1, MaxLength: 10}, "Strip -1"},
		{"huge strip", codec.LengthFieldConfig{Width: 2, Strip: 1<<30 + 1, MaxLength: 10}, "Strip"},
		{"zero max", codec.LengthFieldConfig{Width: 2}, "MaxLength 0 must be positive"},
		{"negative max", codec.LengthFieldConfig{Width: 2, MaxLength: -5}, "MaxLength -5 must be positive"},
		{"max plus strip overflows", codec.LengthFieldConfig{Width: 8, Strip: 8, MaxLength: math.MaxInt}, "overflows int"},
		{"max int without strip", codec.LengthFieldConfig{Width: 8, MaxLength: math.MaxInt}, ""},
		{"max smaller than header kept", codec.LengthFieldConfig{Width: 4, MaxLength: 3}, "no value"},
		{"max equal to header kept", codec.LengthFieldConfig{Width: 4, MaxLength: 4}, ""},
		{"adjustment too negative for width", codec.LengthFieldConfig{Width: 1, Strip: 1, Adjustment: -300, MaxLength: 10}, "no value"},
		{"adjustment too large", codec.LengthFieldConfig{Width: 4, Strip: 4, Adjustment: 1 << 40, MaxLength: 10}, "no value"},
		{"adjustment max int64", codec.LengthFieldConfig{Width: 8, Strip: 8, Adjustment: math.MaxInt64, MaxLength: 10}, "no value"},
		{"adjustment min int64 width 8", codec.LengthFieldConfig{Width: 8, Strip: 8, Adjustment: math.MinInt64, MaxLength: 10}, ""},
		{"adjustment min int64 width 4", codec.LengthFieldConfig{Width: 4, Strip: 4, Adjustment: math.MinInt64, MaxLength: 10}, "no value"},
		{"includes header needs a value of at least the header", codec.LengthFieldConfig{Width: 1, Offset: 2, IncludesHeader: true, Strip: 3, MaxLength: 1}, ""},
		{"strip through the field", codec.LengthFieldConfig{Width: 4, Strip: 2, MaxLength: 10}, ""},
		{"strip past the header", codec.LengthFieldConfig{Width: 2, Strip: 5, MaxLength: 10}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := codec.NewLengthField(tt.cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("NewLengthField(%+v) = %v, want no error", tt.cfg, err)
			case tt.want == "" && c == nil:
				t.Fatal("nil codec without error")
			case tt.want != "" && err == nil:
				t.Fatalf("NewLengthField(%+v) succeeded, want an error with %q", tt.cfg, tt.want)
			case tt.want != "" && (!strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "codec: ")):
				t.Fatalf("NewLengthField(%+v) = %q, want an error starting \"codec: \" with %q", tt.cfg, err, tt.want)
			}
		})
	}
}

// TestLengthFieldLayouts decodes and encodes the usual layouts byte for byte.
func TestLengthFieldLayouts(t *testing.T) {
	const body = "HELLO, WORLD" // 12 bytes
	tests := []struct {
		name    string
		cfg     codec.LengthFieldConfig
		wire    string // a frame on the wire
		frame   string // what Decode delivers
		encoded string // what Encode(frame) writes (zeros for stripped unknown bytes)
	}{
		{"2-byte length, header kept", codec.LengthFieldConfig{Width: 2, MaxLength: 100},
			"\x00\x0c" + body, "\x00\x0c" + body, "\x00\x0c" + body},
		{"2-byte length, header stripped", codec.LengthFieldConfig{Width: 2, Strip: 2, MaxLength: 100},
			"\x00\x0c" + body, body, "\x00\x0c" + body},
		{"length counts the header (adjustment)", codec.LengthFieldConfig{Width: 2, Adjustment: -2, MaxLength: 100},
			"\x00\x0e" + body, "\x00\x0e" + body, "\x00\x0e" + body},
		{"length counts the header (IncludesHeader)", codec.LengthFieldConfig{Width: 2, IncludesHeader: true, MaxLength: 100},
			"\x00\x0e" + body, "\x00\x0e" + body, "\x00\x0e" + body},
		{"2 bytes before a 3-byte length", codec.LengthFieldConfig{Offset: 2, Width: 3, MaxLength: 100},
			"\xca\xfe\x00\x00\x0c" + body, "\xca\xfe\x00\x00\x0c" + body, "\xca\xfe\x00\x00\x0c" + body},
		{"2 bytes between length and body", codec.LengthFieldConfig{Width: 3, Adjustment: 2, MaxLength: 100},
			"\x00\x00\x0c\xca\xfe" + body, "\x00\x00\x0c\xca\xfe" + body, "\x00\x00\x0c\xca\xfe" + body},
		{"offset 1, adjustment 1, strip 3", codec.LengthFieldConfig{Offset: 1, Width: 2, Adjustment: 1, Strip: 3, MaxLength: 100},
			"\xca\x00\x0c\xfe" + body, "\xfe" + body, "\x00\x00\x0c\xfe" + body},
		{"offset 1, length counts all, strip 3", codec.LengthFieldConfig{Offset: 1, Width: 2, Adjustment: -3, Strip: 3, MaxLength: 100},
			"\xca\x00\x10\xfe" + body, "\xfe" + body, "\x00\x00\x10\xfe" + body},
		{"little-endian 4-byte", codec.LengthFieldConfig{Width: 4, LittleEndian: true, Strip: 4, MaxLength: 100},
			"\x0c\x00\x00\x00" + body, body, "\x0c\x00\x00\x00" + body},
		{"8-byte big-endian", codec.LengthFieldConfig{Width: 8, Strip: 8, MaxLength: 100},
			"\x00\x00\x00\x00\x00\x00\x00\x0c" + body, body, "\x00\x00\x00\x00\x00\x00\x00\x0c" + body},
		{"strip cuts the field", codec.LengthFieldConfig{Width: 2, Strip: 1, MaxLength: 100},
			"\x00\x0c" + body, "\x0c" + body, "\x00\x0c" + body},
		{"strip past the field", codec.LengthFieldConfig{Width: 1, Strip: 3, MaxLength: 100},
			"\x0cxy" + body[2:], body[2:], "\x0c\x00\x00" + body[2:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := codec.NewLengthField(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			wire := []byte(tt.wire)
			frame, n, err := c.Decode(wire)
			if err != nil || n != len(wire) || string(frame) != tt.frame {
				t.Fatalf("Decode(%q) = %q, %d, %v; want %q, %d, nil", wire, frame, n, err, tt.frame, len(wire))
			}
			// The frame aliases the input.
			if len(frame) > 0 && &frame[0] != &wire[tt.cfg.Strip] {
				t.Error("Decode copied the frame")
			}
			for k := 1; k < len(wire); k++ {
				if f, n, err := c.Decode(wire[:k]); f != nil || n != 0 || err != nil {
					t.Fatalf("Decode(%d of %d bytes) = %q, %d, %v; want need-more", k, len(wire), f, n, err)
				}
				want := 0
				if k >= tt.cfg.Offset+tt.cfg.Width {
					want = len(wire)
				}
				if got := c.FrameSize(wire[:k]); got != want {
					t.Fatalf("FrameSize(%d of %d bytes) = %d, want %d", k, len(wire), got, want)
				}
			}
			in := []byte(tt.frame)
			enc, err := c.Encode([]byte("pre"), in)
			if err != nil || string(enc) != "pre"+tt.encoded {
				t.Fatalf("Encode(%q) = %q, %v; want %q", tt.frame, enc, err, "pre"+tt.encoded)
			}
			if string(in) != tt.frame {
				t.Fatalf("Encode modified its frame: %q", in)
			}
		})
	}
}

// putField writes v into a width-byte field, independently of the codec.
func putField(b []byte, v uint64, little bool) {
	for i := range b {
		shift := 8 * (len(b) - 1 - i)
		if little {
			shift = 8 * i
		}
		b[i] = byte(v >> shift)
	}
}

// TestLengthFieldMatrix builds wire frames by hand for every width,
// endianness, adjustment sign, header counting and strip, and checks that
// Decode reads them and Encode writes them.
func TestLengthFieldMatrix(t *testing.T) {
	for _, width := range []int{1, 2, 3, 4, 8} {
		for _, little := range []bool{false, true} {
			for _, adj := range []int64{-3, 0, 2} {
				for _, incl := range []bool{false, true} {
					for _, offset := range []int{0, 2} {
						end := offset + width
						// Strip: none, 1, inside the field (offset+1, the
						// same as 1 when offset is 0), the header, beyond it.
						for _, strip := range slices.Compact([]int{0, 1, offset + 1, end, end + 2}) {
							cfg := codec.LengthFieldConfig{Offset: offset, Width: width, LittleEndian: little,
								Adjustment: adj, IncludesHeader: incl, Strip: strip, MaxLength: 300}
							t.Run(fmt.Sprintf("%+v", cfg), func(t *testing.T) { testMatrixCase(t, cfg) })
						}
					}
				}
			}
		}
	}
}

func testMatrixCase(t *testing.T, cfg codec.LengthFieldConfig) {
	c, err := codec.NewLengthField(cfg)
	if err != nil {
		t.Fatal(err)
	}
	end := cfg.Offset + cfg.Width
	fieldMax := uint64(math.MaxUint64)
	if cfg.Width < 8 {
		fieldMax = 1<<(8*cfg.Width) - 1
	}
	tested := 0
	for _, restLen := range []int{0, 1, 2, 3, 10, 200} {
		// The frame on the wire: offset bytes, the field, restLen bytes.
		total := end + restLen
		v := int64(restLen) - cfg.Adjustment
		if cfg.IncludesHeader {
			v += int64(end)
		}
		if v < 0 || uint64(v) > fieldMax || total < cfg.Strip || total-cfg.Strip > 300 {
			continue // not a valid frame for this configuration
		}
		wire := make([]byte, total)
		for i := range wire {
			wire[i] = byte('a' + i%26)
		}
		putField(wire[cfg.Offset:end], uint64(v), cfg.LittleEndian)
		// Followed by the start of another frame.
		input := append(bytes.Clone(wire), 0xff)

		frame, n, err := c.Decode(input)
		if err != nil || n != total || !bytes.Equal(frame, wire[cfg.Strip:]) {
			t.Fatalf("Decode(% x) = % x, %d, %v; want % x, %d", input, frame, n, err, wire[cfg.Strip:], total)
		}
		if got := c.FrameSize(input[:end]); got != total {
			t.Fatalf("FrameSize = %d, want %d", got, total)
		}
		if _, n, err := c.Decode(wire[:total-1]); total-1 > 0 && (n != 0 || err != nil) {
			t.Fatalf("Decode of a truncated frame = %d, %v; want need-more", n, err)
		}
		// Encode writes the field and zeros for the stripped bytes it does
		// not know.
		want := bytes.Clone(wire)
		for i := 0; i < cfg.Strip && i < total; i++ {
			if i < cfg.Offset || i >= end {
				want[i] = 0
			}
		}
		enc, err := c.Encode(nil, frame)
		if err != nil || !bytes.Equal(enc, want) {
			t.Fatalf("Encode(% x) = % x, %v; want % x", frame, enc, err, want)
		}
		// The same into a reused buffer whose spare capacity holds old
		// bytes, after a frame already in it, as the engine's pool does.
		dirty := bytes.Repeat([]byte{0xee}, 2*(total+8))
		enc, err = c.Encode(dirty[:3], frame)
		if err != nil || !bytes.Equal(enc[:3], []byte{0xee, 0xee, 0xee}) || !bytes.Equal(enc[3:], want) {
			t.Fatalf("Encode into a used buffer = % x, %v; want ee ee ee % x", enc, err, want)
		}
		tested++
	}
	if tested < 3 {
		t.Fatalf("only %d frame sizes are valid for this configuration", tested)
	}
}

func TestLengthFieldLimits(t *testing.T) {
	t.Run("max counts the delivered frame", func(t *testing.T) {
		// tokio-rs/tokio#4815: with a negative adjustment, a frame of
		// exactly the maximum must encode and decode.
		c, err := codec.NewLengthField(codec.LengthFieldConfig{Width: 4, Adjustment: -4, Strip: 4, MaxLength: 10})
		if err != nil {
			t.Fatal(err)
		}
		enc := mustEncode(t, c, []byte("0123456789"))
		if string(enc) != "\x00\x00\x00\x0e0123456789" {
			t.Fatalf("Encode = %q", enc)
		}
		if f, n, err := c.Decode(enc); string(f) != "0123456789" || n != 14 || err != nil {
			t.Fatalf("Decode = %q, %d, %v", f, n, err)
		}
		if _, err := c.Encode(nil, []byte("0123456789A")); !isTooLarge(err) {
			t.Fatalf("Encode of 11 bytes = %v, want ErrFrameTooLarge", err)
		}
		if _, _, err := c.Decode([]byte("\x00\x00\x00\x0f")); !isTooLarge(err) {
			t.Fatalf("Decode of an 11-byte header = %v, want ErrFrameTooLarge", err)
		}
	})
	t.Run("positive adjustment counts against the max", func(t *testing.T) {
		c, err := codec.NewLengthField(codec.LengthFieldConfig{Width: 4, Adjustment: 2, Strip: 4, MaxLength: 10})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Decode([]byte("\x00\x00\x00\x08")); err != nil {
			t.Fatalf("Decode of a 10-byte header = %v", err)
		}
		if _, _, err := c.Decode([]byte("\x00\x00\x00\x09")); !isTooLarge(err) {
			t.Fatalf("Decode of an 11-byte header = %v, want ErrFrameTooLarge", err)
		}
		if _, err := c.Encode(nil, []byte("0")); err == nil || isTooLarge(err) {
			t.Fatalf("Encode of a frame shorter than the adjustment = %v, want a plain error", err)
		}
	})
	t.Run("max over what the field can express", func(t *testing.T) {
		// tokio-rs/tokio#5080: never truncate the length.
		c, err := codec.NewLengthField(codec.LengthFieldConfig{Width: 1, Strip: 1, MaxLength: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if c.MaxLength() != 255 {
			t.Fatalf("MaxLength() = %d, want 255", c.MaxLength())
		}
		mustEncode(t, c, make([]byte, 255))
		if _, err := c.Encode(nil, make([]byte, 256)); !isTooLarge(err) {
			t.Fatalf("Encode of 256 bytes = %v, want ErrFrameTooLarge", err)
		}
		c, err = codec.NewLengthField(codec.LengthFieldConfig{Width: 2, IncludesHeader: true, Strip: 2, MaxLength: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if c.MaxLength() != 65535-2 {
			t.Fatalf("MaxLength() = %d, want %d", c.MaxLength(), 65535-2)
		}
		if _, err := c.Encode(nil, make([]byte, 65534)); !isTooLarge(err) {
			t.Fatalf("Encode of 65534 bytes = %v, want ErrFrameTooLarge", err)
		}
	})
	t.Run("8-byte lengths near 2^64", func(t *testing.T) {
		c, err := codec.NewLengthField(codec.LengthFieldConfig{Width: 8, Strip: 8, MaxLength: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		for _, hdr := range []string{
			"\xff\xff\xff\xff\xff\xff\xff\xff",
			"\xff\xff\xff\xff\xff\xff\xff\xf8", // + 8 would wrap to 0
			"\x80\x00\x00\x00\x00\x00\x00\x00",
			"\x7f\xff\xff\xff\xff\xff\xff\xff", // would be negative as an int64 + 8
			"\x00\x00\x00\x00\x00\x10\x00\x01",
		} {
			if _, _, err := c.Decode([]byte(hdr)); !isTooLarge(err) {
				t.Errorf("Decode(% x) = %v, want ErrFrameTooLarge", hdr, err)
			}
			if n := c.FrameSize([]byte(hdr)); n != 0 {
				t.Errorf("FrameSize(% x) = %d, want 0", hdr, n)
			}
		}
		if f, n, err := c.Decode([]byte("\x00\x00\x00\x00\x00\x10\x00\x00")); f != nil || n != 0 || err != nil {
			t.Errorf("Decode of a header of the max = %q, %d, %v; want need-more", f, n, err)
		}
	})
	t.Run("adjustment of MinInt64", func(t *testing.T) {
		// total = v - 2^63 + 8: only field values from 2^63 on are valid.
		c, err := codec.NewLengthField(codec.LengthFieldConfig{Width: 8, Strip: 8, Adjustment: math.MinInt64, MaxLength: 100})
		if err != nil {
			t.Fatal(err)
		}
		enc := mustEncode(t, c, []byte("hello"))
		if string(enc) != "\x80\x00\x00\x00\x00\x00\x00\x05hello" {
			t.Fatalf("Encode = % x", enc)
		}
		if f, n, err := c.Decode(enc); string(f) != "hello" || n != 13 || err != nil {
			t.Fatalf("Decode = %q, %d, %v", f, n, err)
		}
		if _, _, err := c.Decode([]byte("\x7f\xff\xff\xff\xff\xff\xff\xffhello")); err == nil || isTooLarge(err) {
			t.Fatalf("Decode of a value under the minimum = %v, want a protocol error", err)
		}
		if _, _, err := c.Decode([]byte("\xff\xff\xff\xff\xff\xff\xff\xff")); !isTooLarge(err) {
			t.Fatalf("Decode of 2^64-1 = %v, want ErrFrameTooLarge", err)
		}
	})
	t.Run("header shorter than itself", func(t *testing.T) {
		c, err := codec.NewLengthField(codec.LengthFieldConfig{Width: 2, IncludesHeader: true, Strip: 2, MaxLength: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, hdr := range []string{"\x00\x00", "\x00\x01"} {
			if _, _, err := c.Decode([]byte(hdr)); err == nil || isTooLarge(err) || !strings.HasPrefix(err.Error(), "codec: ") {
				t.Errorf("Decode(% x) = %v, want a protocol error", hdr, err)
			}
		}
		if f, n, err := c.Decode([]byte("\x00\x02")); f == nil || len(f) != 0 || n != 2 || err != nil {
			t.Errorf("Decode of an empty frame = %q, %d, %v", f, n, err)
		}
	})
	t.Run("encode a frame shorter than its header", func(t *testing.T) {
		c, err := codec.NewLengthField(codec.LengthFieldConfig{Offset: 1, Width: 2, MaxLength: 100})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Encode(nil, []byte("ab")); err == nil || isTooLarge(err) {
			t.Fatalf("Encode of 2 bytes with a 3-byte header kept = %v, want an error", err)
		}
		enc := mustEncode(t, c, []byte("T??body"))
		if string(enc) != "T\x00\x04body" {
			t.Fatalf("Encode = %q", enc)
		}
	})
}

// TestLengthFieldZeroValue: a LengthField that NewLengthField did not make
// (a zero value, &codec.LengthField{}) reports an error from every method
// instead of panicking.
func TestLengthFieldZeroValue(t *testing.T) {
	var c codec.LengthField
	for _, src := range [][]byte{nil, {1}, {0, 0, 0, 4, 'a'}} {
		if _, n, err := c.Decode(src); err == nil && len(src) > 0 {
			t.Errorf("Decode(%v): n %d, no error", src, n)
		}
		if n := c.FrameSize(src); n != 0 {
			t.Errorf("FrameSize(%v) = %d, want 0", src, n)
		}
	}
	for _, f := range [][]byte{nil, {}, []byte("frame")} {
		if b, err := c.Encode(nil, f); err == nil {
			t.Errorf("Encode(%q) = %v, no error", f, b)
		}
		if h, p, err := c.EncodeHeader(nil, f); err == nil {
			t.Errorf("EncodeHeader(%q) = %v, %v, no error", f, h, p)
		}
	}
}
