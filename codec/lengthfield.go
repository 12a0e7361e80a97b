package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
)

// LengthFieldConfig describes a length-prefixed framing, in the manner of
// Netty's LengthFieldBasedFrameDecoder and tokio's LengthDelimitedCodec.
//
// A frame on the wire is laid out as
//
//	| Offset bytes | length field (Width bytes) | rest of the frame |
//	0              Offset                       Offset+Width       total
//
// The header is the Offset+Width bytes up to the end of the length field.
// The total wire size of a frame is computed from the field's unsigned
// value v as
//
//	total = v + Adjustment + Offset + Width   (IncludesHeader false)
//	total = v + Adjustment                    (IncludesHeader true)
//
// in exact arithmetic: no combination of values overflows. Decode delivers
// the wire bytes [Strip, total) of each frame.
//
// The common layouts:
//
//	body prefixed by its 4-byte big-endian length:  {Width: 4, Strip: 4}
//	the same, length counting itself:               {Width: 4, IncludesHeader: true, Strip: 4}
//	1 type byte, then a 2-byte length of the body,
//	frame delivered with its header:                {Offset: 1, Width: 2}
type LengthFieldConfig struct {
	// Offset is the number of bytes before the length field, in
	// [0, 2^30].
	Offset int

	// Width is the size of the length field in bytes: 1, 2, 3, 4 or 8. The
	// field is an unsigned integer.
	Width int

	// LittleEndian selects little-endian byte order for the length field.
	// The default is big-endian (network byte order).
	LittleEndian bool

	// Adjustment is added to the field's value to get the number of bytes
	// that follow the length field (or, with IncludesHeader, the number of
	// bytes of the whole frame). It may be negative: -2 for a field that
	// counts a 2-byte checksum the sender does not include, and so on.
	Adjustment int64

	// IncludesHeader reports that the field's value counts the whole frame,
	// the Offset+Width header bytes included, instead of only the bytes
	// after the length field. It is shorthand for an Adjustment smaller by
	// Offset+Width.
	IncludesHeader bool

	// Strip is the number of bytes removed from the start of each frame
	// before Decode delivers it, in [0, 2^30]: 0 delivers the whole frame,
	// header included; Offset+Width delivers what follows the length field.
	// Strip may be larger than Offset+Width (the next bytes are dropped as
	// well) or cut through the length field.
	Strip int

	// MaxLength is the largest frame, in bytes, as Decode delivers it and as
	// Encode takes it: that is, after Strip. It must be positive. Decode
	// rejects a frame whose length field promises more with ErrFrameTooLarge
	// as soon as the header has arrived, so the engine never buffers more
	// than Strip+MaxLength bytes for one frame. Counting the delivered
	// frame, not the wire frame, makes the limit the same number on both
	// sides: a body of MaxLength bytes encodes and decodes.
	//
	// A MaxLength larger than the length field can express is allowed; the
	// effective maximum is then the largest frame the field can describe
	// (see (*LengthField).MaxLength) and Encode refuses larger frames with
	// ErrFrameTooLarge instead of truncating their length.
	MaxLength int
}

// LengthField is a length-prefixed Codec for []byte frames; see
// LengthFieldConfig for the layout.
//
// Decode returns a frame that aliases src (no copy, no allocation), so it is
// valid only as long as src is (under the engine: until OnFrame returns); it
// has no spare capacity, so appending to it copies instead of overwriting
// the next frame's bytes. It implements Sizer, so the engine buffers a large
// frame once instead of re-reading its header on every read.
//
// Encode appends the Strip bytes that Decode drops, then frame, and then
// stores the computed length into the field's position. Those two pieces
// are:
//
//   - the bytes of the header that Decode strips and the frame does not
//     carry (before the length field, and any after it up to Strip) are
//     written as zero;
//   - when Strip is under Offset+Width, frame must start with the rest of the
//     header (the bytes from Strip to Offset+Width); the bytes it carries at
//     the length field's position are a placeholder, replaced in the output
//     (frame itself is not modified).
//
// So every frame Decode returns encodes back to the same frame, and the
// usual configurations (Strip equal to Offset+Width, or Strip 0) need
// nothing else. Encode refuses a frame too short to carry its share of the
// header or for a negative field value, and a frame over MaxLength or over
// what the field can express with ErrFrameTooLarge; it allocates nothing
// when dst has room.
//
// A LengthField holds only its configuration: it is safe for concurrent use
// and may be shared by all connections (Factory does that).
type LengthField struct {
	offset int    // bytes before the field
	width  int    // field width
	end    int    // offset + width: header size
	strip  int    // bytes dropped from each decoded frame
	little bool   // little-endian field
	be32   bool   // a 4-byte big-endian field, read and written without field's switch
	k      int64  // total = v + k, exact
	vMin   uint64 // smallest valid field value
	vMax   uint64 // largest valid field value
	lo     int    // smallest valid total: max(end, strip)
	maxLen int    // effective MaxLength: the largest frame Decode can deliver
	minLen int    // the shortest frame Encode accepts: its total is at least lo and k
	padded bool   // the Strip header bytes include some outside the field: Encode zeroes them
}

// maxHeaderBytes bounds Offset and Strip so that header arithmetic stays far
// from int overflow on every platform.
const maxHeaderBytes = 1 << 30

// NewLengthField returns a LengthField for cfg, or an error naming the first
// invalid setting. A configuration for which no field value describes a
// valid frame (a frame shorter than its header, or longer than MaxLength,
// whatever the value) is rejected.
func NewLengthField(cfg LengthFieldConfig) (*LengthField, error) {
	switch cfg.Width {
	case 1, 2, 3, 4, 8:
	default:
		return nil, fmt.Errorf("codec: LengthField Width %d must be 1, 2, 3, 4 or 8", cfg.Width)
	}
	switch {
	case cfg.Offset < 0 || cfg.Offset > maxHeaderBytes:
		return nil, fmt.Errorf("codec: LengthField Offset %d must be in [0, %d]", cfg.Offset, maxHeaderBytes)
	case cfg.Strip < 0 || cfg.Strip > maxHeaderBytes:
		return nil, fmt.Errorf("codec: LengthField Strip %d must be in [0, %d]", cfg.Strip, maxHeaderBytes)
	case cfg.MaxLength <= 0:
		return nil, fmt.Errorf("codec: LengthField MaxLength %d must be positive", cfg.MaxLength)
	case cfg.MaxLength > math.MaxInt-cfg.Strip:
		return nil, fmt.Errorf("codec: LengthField MaxLength %d plus Strip %d overflows int", cfg.MaxLength, cfg.Strip)
	}
	c := &LengthField{
		offset: cfg.Offset,
		width:  cfg.Width,
		end:    cfg.Offset + cfg.Width,
		strip:  cfg.Strip,
		little: cfg.LittleEndian,
		be32:   cfg.Width == 4 && !cfg.LittleEndian,
		lo:     max(cfg.Offset+cfg.Width, cfg.Strip),
	}

	// Work out the valid range of field values once, in exact arithmetic:
	// a frame is valid when lo <= total <= Strip+MaxLength, where
	// total = v + k and 0 <= v <= fieldMax.
	k := big.NewInt(cfg.Adjustment)
	if !cfg.IncludesHeader {
		k.Add(k, big.NewInt(int64(c.end)))
	}
	fieldMax := new(big.Int).Lsh(big.NewInt(1), uint(8*cfg.Width))
	fieldMax.Sub(fieldMax, big.NewInt(1))
	vMin := new(big.Int).Sub(big.NewInt(int64(c.lo)), k)
	if vMin.Sign() < 0 {
		vMin.SetInt64(0)
	}
	vMax := new(big.Int).Sub(big.NewInt(int64(cfg.Strip+cfg.MaxLength)), k)
	if vMax.Cmp(fieldMax) > 0 {
		vMax.Set(fieldMax)
	}
	if vMin.Cmp(vMax) > 0 {
		return nil, fmt.Errorf("codec: LengthField: no value of a %d-byte length field gives a frame of %d to %d bytes on the wire (check Adjustment %d, IncludesHeader, Strip %d and MaxLength %d)",
			cfg.Width, c.lo, cfg.Strip+cfg.MaxLength, cfg.Adjustment, cfg.Strip, cfg.MaxLength)
	}
	// The range is not empty, so lo-k <= Strip+MaxLength-k, and k fits an
	// int64: k <= Strip+MaxLength <= MaxInt, and k >= Adjustment.
	c.k = k.Int64()
	c.vMin = vMin.Uint64()
	c.vMax = vMax.Uint64()
	// The largest total is vMax+k <= Strip+MaxLength, computed mod 2^64
	// where the exact result is in range.
	c.maxLen = int(c.vMax+uint64(c.k)) - c.strip
	// Likewise the smallest, vMin+k = max(lo, k) >= Strip.
	c.minLen = int(c.vMin+uint64(c.k)) - c.strip
	c.padded = c.offset > 0 && c.strip > 0 || c.strip > c.end
	return c, nil
}

// MaxLength returns the largest frame, after Strip, that Decode delivers and
// Encode accepts: the configured MaxLength, or less when the length field
// cannot express that much. It is safe for concurrent use.
func (c *LengthField) MaxLength() int { return c.maxLen }

// MaxFrameSize implements MaxSizer: the largest frame on the wire, header
// included (MaxLength plus the Strip bytes Decode removes).
func (c *LengthField) MaxFrameSize() int { return c.maxLen + c.strip }

// Factory returns a Factory that shares c between connections (c is
// stateless).
func (c *LengthField) Factory() Factory[[]byte] { return Share[[]byte](c) }

// field reads the length field from b, which holds exactly c.width bytes.
func (c *LengthField) field(b []byte) uint64 {
	switch c.width {
	case 1:
		return uint64(b[0])
	case 2:
		if c.little {
			return uint64(binary.LittleEndian.Uint16(b))
		}
		return uint64(binary.BigEndian.Uint16(b))
	case 3:
		if c.little {
			return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16
		}
		return uint64(b[2]) | uint64(b[1])<<8 | uint64(b[0])<<16
	case 4:
		if c.little {
			return uint64(binary.LittleEndian.Uint32(b))
		}
		return uint64(binary.BigEndian.Uint32(b))
	default:
		if c.little {
			return binary.LittleEndian.Uint64(b)
		}
		return binary.BigEndian.Uint64(b)
	}
}

// putField stores v, which fits the field, into b (c.width bytes).
func (c *LengthField) putField(b []byte, v uint64) {
	switch c.width {
	case 1:
		b[0] = byte(v)
	case 2:
		if c.little {
			binary.LittleEndian.PutUint16(b, uint16(v))
		} else {
			binary.BigEndian.PutUint16(b, uint16(v))
		}
	case 3:
		if c.little {
			b[0], b[1], b[2] = byte(v), byte(v>>8), byte(v>>16)
		} else {
			b[0], b[1], b[2] = byte(v>>16), byte(v>>8), byte(v)
		}
	case 4:
		if c.little {
			binary.LittleEndian.PutUint32(b, uint32(v))
		} else {
			binary.BigEndian.PutUint32(b, uint32(v))
		}
	default:
		if c.little {
			binary.LittleEndian.PutUint64(b, v)
		} else {
			binary.BigEndian.PutUint64(b, v)
		}
	}
}

// errZeroLengthField is what a LengthField that NewLengthField did not
// make reports: its zero value has no field.
var errZeroLengthField = errors.New("codec: LengthField is a zero value: make it with NewLengthField")

// total returns the wire size of the frame whose header src holds
// (len(src) >= c.end), or -1 when the field's value is over the maximum,
// -2 when it is under the minimum, and -3 for a zero LengthField.
func (c *LengthField) total(src []byte) (int, uint64) {
	var v uint64
	if c.be32 { // the common case, kept inline
		v = uint64(binary.BigEndian.Uint32(src[c.offset:c.end]))
	} else {
		if c.width == 0 {
			return -3, 0
		}
		v = c.field(src[c.offset:c.end])
	}
	switch {
	case v > c.vMax:
		return -1, v
	case v < c.vMin:
		return -2, v
	}
	// vMin <= v <= vMax, so lo <= v+k <= Strip+MaxLength: the sum,
	// computed mod 2^64, is exact.
	return int(v + uint64(c.k)), v
}

// Decode implements Codec. It asks for more bytes until the header has
// arrived, then fails at once if the length field describes a frame over
// MaxLength (ErrFrameTooLarge) or shorter than the header and Strip (a
// protocol error); otherwise it asks for more until the whole frame has
// arrived, and returns src[Strip:total] (aliasing src) with n = total.
// Decode is safe for concurrent use.
func (c *LengthField) Decode(src []byte) ([]byte, int, error) {
	if len(src) < c.end {
		return nil, 0, nil
	}
	n, v := c.total(src)
	switch {
	case n == -1:
		return nil, 0, fmt.Errorf("%w: length field value %d is over %d (MaxLength %d)", ErrFrameTooLarge, v, c.vMax, c.maxLen)
	case n == -3:
		return nil, 0, errZeroLengthField
	case n < 0:
		return nil, 0, fmt.Errorf("codec: length field value %d is under %d: the frame would be shorter than its header and Strip (%d bytes)", v, c.vMin, c.lo)
	case len(src) < n:
		return nil, 0, nil
	}
	return src[c.strip:n:n], n, nil
}

// FrameSize implements Sizer: it returns the wire size of the frame at the
// start of src, or 0 when src is shorter than the header or the header is
// invalid (which Decode reports). It does not keep src and is safe for
// concurrent use.
func (c *LengthField) FrameSize(src []byte) int {
	if len(src) < c.end {
		return 0
	}
	if n, _ := c.total(src); n > 0 {
		return n
	}
	return 0
}

// Encode implements Codec; see LengthField for what it writes. It does not
// modify frame and is safe for concurrent use.
func (c *LengthField) Encode(dst, frame []byte) ([]byte, error) {
	if len(frame) > c.maxLen || len(frame) < c.minLen || c.width == 0 {
		return dst, c.frameSizeError(len(frame))
	}
	// minLen <= len(frame) <= maxLen, so vMin <= v <= vMax; the
	// subtraction mod 2^64 is exact.
	v := uint64(c.strip+len(frame)) - uint64(c.k)
	start := len(dst)
	dst = slices.Grow(dst, c.strip+len(frame))[:start+c.strip]
	if c.padded {
		c.clearPadding(dst[start:])
	}
	dst = append(dst, frame...)
	c.putFieldAt(dst[start:], v)
	return dst, nil
}

// EncodeHeader appends to dst the Strip header bytes that Encode writes
// before the frame, and returns frame itself as the payload that follows
// them: header and payload together are Encode's output, and an invalid
// frame gives Encode's error. The engine uses it to write a large frame
// straight from the caller's bytes, without copying it into the outbound
// buffer. When the length field is not stripped (Strip < Offset+Width) it
// lies inside the frame's bytes, so EncodeHeader appends the whole
// encoding, as Encode does, and returns no payload. It does not modify
// frame and is safe for concurrent use.
func (c *LengthField) EncodeHeader(dst, frame []byte) ([]byte, []byte, error) {
	if c.end > c.strip {
		b, err := c.Encode(dst, frame)
		return b, nil, err
	}
	if len(frame) > c.maxLen || len(frame) < c.minLen || c.width == 0 {
		return dst, nil, c.frameSizeError(len(frame))
	}
	start := len(dst)
	dst = slices.Grow(dst, c.strip)[:start+c.strip]
	if c.padded {
		c.clearPadding(dst[start:])
	}
	c.putFieldAt(dst[start:], uint64(c.strip+len(frame))-uint64(c.k))
	return dst, frame, nil
}

// frameSizeError is Encode's error for an n-byte frame outside
// [minLen, maxLen].
//
//go:noinline
func (c *LengthField) frameSizeError(n int) error {
	switch {
	case c.width == 0:
		return errZeroLengthField
	case n > c.maxLen:
		return fmt.Errorf("%w: %d-byte frame, LengthField MaxLength is %d", ErrFrameTooLarge, n, c.maxLen)
	case c.strip+n < c.lo:
		return fmt.Errorf("codec: %d-byte frame is shorter than the %d header bytes it must carry", n, c.lo-c.strip)
	}
	return fmt.Errorf("codec: %d-byte frame is too short for the length field: Adjustment needs at least %d bytes", n, c.k-int64(c.strip))
}

// clearPadding zeroes the header bytes, starting at h[0], that the length
// field does not cover. Only a header with such bytes needs it (usually
// none has): clearing is a runtime call, dearer than the rest.
//
//go:noinline
func (c *LengthField) clearPadding(h []byte) {
	clear(h[:min(c.offset, c.strip)])
	if c.strip > c.end {
		clear(h[c.end:c.strip])
	}
}

// putFieldAt stores v into the length field of the encoding that starts
// at b[0].
func (c *LengthField) putFieldAt(b []byte, v uint64) {
	if c.be32 {
		binary.BigEndian.PutUint32(b[c.offset:c.end], uint32(v))
	} else {
		c.putField(b[c.offset:c.end], v)
	}
}
