package codec

import (
	"bytes"
	"errors"
	"fmt"
	"math"
)

// DelimiterConfig configures Delimiter.
type DelimiterConfig struct {
	// Delimiters are the byte strings that end a frame: at least one, none
	// empty. The first is the one Encode normally writes.
	Delimiters [][]byte

	// MaxLength is the most bytes a frame may hold before its delimiter. It
	// must be positive. Decode detects a longer frame once it has seen
	// MaxLength bytes plus the longest delimiter's length without a
	// delimiter, so the engine never buffers more than that for one frame.
	MaxLength int

	// KeepDelimiter makes Decode deliver each frame with its delimiter, and
	// Encode take frames that end with one.
	KeepDelimiter bool
}

// Delimiter is a Codec for []byte frames ended by one of several delimiters
// (byte strings), in the manner of Netty's DelimiterBasedFrameDecoder.
//
// A frame ends at the earliest delimiter in the input; when two delimiters
// start at the same byte (such as "\r" and "\r\n"), the longer wins.
// Decode's answer never depends on how the input was split into reads: when
// the input ends inside a delimiter that would win over the one found so
// far, Decode asks for more bytes first. So with delimiters "\r" and "\r\n",
// a frame that ends in "\r" is delivered once the next byte shows that no
// "\n" follows.
//
// Decode returns a frame that aliases src (no copy, no allocation), so it is
// valid only as long as src is (under the engine: until OnFrame returns); it
// has no spare capacity, so appending to it copies. Delimiter is stateful: after asking for more bytes it
// remembers how far it has looked, so a long frame that arrives in small
// pieces is scanned once, O(length) in all. It relies on the Decode
// contract for this: after Decode asks for more bytes, the next call's src
// starts with the same bytes.
//
// A *Delimiter therefore serves one connection: use Factory to give each
// connection its own. Decode must not be called concurrently with itself;
// Encode uses only the configuration and may run at any time, concurrently
// with Decode or with itself.
type Delimiter struct {
	delims  [][]byte // owned copies
	longest int      // length of the longest delimiter
	max     int
	keep    bool
	scanned int // no delimiter starts before it; valid after a need-more
}

var (
	errDelimiterInFrame = errors.New("codec: frame contains a delimiter")
	errNoDelimiter      = errors.New("codec: frame does not end with its only delimiter")
)

// NewDelimiter returns a Delimiter for cfg, or an error naming the first
// invalid setting. It copies cfg.Delimiters.
func NewDelimiter(cfg DelimiterConfig) (*Delimiter, error) {
	switch {
	case len(cfg.Delimiters) == 0:
		return nil, errors.New("codec: Delimiter needs at least one delimiter")
	case cfg.MaxLength <= 0:
		return nil, fmt.Errorf("codec: Delimiter MaxLength %d must be positive", cfg.MaxLength)
	}
	d := &Delimiter{max: cfg.MaxLength, keep: cfg.KeepDelimiter}
	for i, delim := range cfg.Delimiters {
		if len(delim) == 0 {
			return nil, fmt.Errorf("codec: Delimiter delimiter %d is empty", i)
		}
		d.delims = append(d.delims, bytes.Clone(delim))
		d.longest = max(d.longest, len(delim))
	}
	if d.max > math.MaxInt-d.longest {
		return nil, fmt.Errorf("codec: Delimiter MaxLength %d is too large", cfg.MaxLength)
	}
	return d, nil
}

// MaxFrameSize implements MaxSizer: MaxLength plus the longest delimiter.
func (d *Delimiter) MaxFrameSize() int { return d.max + d.longest }

// Factory returns a Factory that makes a new Delimiter, with d's
// configuration and a fresh scan state, for each connection. The
// connections share the delimiters, which are never modified. It is safe
// for concurrent use.
func (d *Delimiter) Factory() Factory[[]byte] {
	proto := *d
	proto.scanned = 0
	return func() Codec[[]byte] {
		c := proto
		return &c
	}
}

// match returns the earliest complete delimiter that starts in
// [start, MaxLength] in src, the longest one at a tie, as its position and
// length, or -1.
func (d *Delimiter) match(src []byte, start int) (pos, length int) {
	pos = -1
	for _, delim := range d.delims {
		end := min(len(src), d.max+len(delim))
		if pos >= 0 {
			end = min(end, pos+len(delim)) // only an earlier or equal start matters
		}
		if end-start < len(delim) {
			continue
		}
		i := bytes.Index(src[start:end], delim)
		if i < 0 {
			continue
		}
		i += start
		if pos < 0 || i < pos || len(delim) > length {
			pos, length = i, len(delim)
		}
	}
	return pos, length
}

// pending returns the first position p >= from where src ends inside a
// delimiter (src[p:] is a proper prefix of one), or len(src).
func (d *Delimiter) pending(src []byte, from int) int {
	for p := max(from, len(src)-d.longest+1); p < len(src); p++ {
		tail := src[p:]
		for _, delim := range d.delims {
			if len(delim) > len(tail) && bytes.HasPrefix(delim, tail) {
				return p
			}
		}
	}
	return len(src)
}

// Decode implements Codec. It returns the first frame of src, without its
// delimiter unless KeepDelimiter, and n = the frame's length plus the
// delimiter's. Without a complete frame it asks for more bytes, unless the
// frame is already known to be over MaxLength: then it fails with
// ErrFrameTooLarge. A frame may be empty.
func (d *Delimiter) Decode(src []byte) ([]byte, int, error) {
	start := d.scanned
	if start > len(src) {
		start = 0 // src is not what the last call saw: the caller broke the contract
	}
	pos, length := d.match(src, start)
	if pos >= 0 {
		if p := d.pending(src, start); p <= pos {
			// A delimiter starting earlier, or a longer one at pos, may
			// still complete.
			d.scanned = p
			return nil, 0, nil
		}
		d.scanned = 0
		n := pos + length
		if d.keep {
			return src[:n:n], n, nil
		}
		return src[:pos:pos], n, nil
	}
	p := d.pending(src, start)
	if p > d.max {
		d.scanned = 0
		return nil, 0, fmt.Errorf("%w: frame longer than %d bytes before its delimiter", ErrFrameTooLarge, d.max)
	}
	d.scanned = p
	return nil, 0, nil
}

// Encode implements Codec. Without KeepDelimiter it appends frame and the
// first delimiter after which the output decodes back to frame (normally
// the first of Delimiters); it refuses a frame that contains a delimiter.
// With KeepDelimiter it appends frame as is, and refuses a frame that does
// not end with its first and only delimiter. A frame over MaxLength (the
// delimiter not counted) is refused with ErrFrameTooLarge.
//
// When one delimiter is a prefix of another ("\r" and "\r\n"), a frame
// that ends with the shorter one decodes only once a byte of the next frame
// has arrived, and the next frame must not start with the rest of the longer
// one. Encode does not modify frame, allocates nothing when dst has room,
// and is safe for concurrent use.
func (d *Delimiter) Encode(dst, frame []byte) ([]byte, error) {
	if d.keep {
		pos, length := d.match(frame, 0)
		switch {
		case pos >= 0 && pos+length == len(frame):
			return append(dst, frame...), nil
		case pos < 0 && len(frame) > d.max:
			return dst, fmt.Errorf("%w: %d-byte frame, Delimiter MaxLength is %d", ErrFrameTooLarge, len(frame), d.max)
		}
		return dst, errNoDelimiter
	}
	if len(frame) > d.max {
		return dst, fmt.Errorf("%w: %d-byte frame, Delimiter MaxLength is %d", ErrFrameTooLarge, len(frame), d.max)
	}
	start := len(dst)
	for _, delim := range d.delims {
		dst = append(dst[:start], frame...)
		dst = append(dst, delim...)
		if pos, length := d.match(dst[start:], 0); pos == len(frame) && length == len(delim) {
			return dst, nil
		}
	}
	return dst[:start], errDelimiterInFrame
}
