package codec

import (
	"bytes"
	"errors"
	"fmt"
	"math"
)

// LineEnding selects how Lines ends a line.
type LineEnding int

const (
	// LF ends a line at "\n". A "\r" before it is part of the line. Encode
	// appends "\n".
	LF LineEnding = iota

	// CRLF ends a line only at "\r\n"; a bare "\n" or "\r" is part of the
	// line. Encode appends "\r\n".
	CRLF

	// LFOrCRLF ends a line at "\n" and drops one "\r" just before it, as
	// bufio.ScanLines does. Encode appends "\r\n", so that a line that
	// itself ends in "\r" survives the round trip.
	LFOrCRLF
)

// String returns "LF", "CRLF" or "LFOrCRLF".
func (e LineEnding) String() string {
	switch e {
	case LF:
		return "LF"
	case CRLF:
		return "CRLF"
	case LFOrCRLF:
		return "LFOrCRLF"
	}
	return fmt.Sprintf("LineEnding(%d)", int(e))
}

// LinesConfig configures Lines.
type LinesConfig struct {
	// Ending is the line ending; the zero value is LF.
	Ending LineEnding

	// MaxLength is the most bytes a line may hold, its line ending not
	// counted. It must be positive. Decode detects a longer line once it
	// has seen MaxLength bytes (plus the length of the line ending, less
	// one) without a line ending, so the engine never buffers more than
	// MaxLength+2 bytes of one line.
	MaxLength int

	// SkipTooLong makes Decode discard a line over MaxLength, up to and
	// including its line ending, and go on with the next line, instead of
	// failing with ErrFrameTooLarge. The discarded bytes are dropped as they
	// arrive (with ErrSkip), so a long line is never buffered.
	SkipTooLong bool
}

// Lines is a Codec for lines of text (any bytes without the line ending)
// as []byte frames, the line ending stripped.
//
// Decode returns a line that aliases src (no copy, no allocation), so it is
// valid only as long as src is (under the engine: until OnFrame returns); it
// has no spare capacity, so appending to it copies. Lines is stateful: after asking for more bytes it
// remembers how far it has looked, so a long line that arrives in small
// pieces is scanned once, O(length) in all, not once per piece. It relies
// on the Decode contract for this: after Decode asks for more bytes, the
// next call's src starts with the same bytes.
//
// A *Lines therefore serves one connection: use Factory to give each
// connection its own. Decode must not be called concurrently with itself;
// Encode uses only the configuration and may run at any time, concurrently
// with Decode or with itself.
type Lines struct {
	ending     LineEnding
	max        int
	skip       bool
	scanned    int  // src[:scanned] holds no line ending; valid after a need-more
	discarding bool // inside a too-long line that is being skipped
}

var errLineEnding = errors.New("codec: line contains a line ending")

// NewLines returns a Lines for cfg, or an error naming the first invalid
// setting.
func NewLines(cfg LinesConfig) (*Lines, error) {
	switch {
	case cfg.Ending != LF && cfg.Ending != CRLF && cfg.Ending != LFOrCRLF:
		return nil, fmt.Errorf("codec: Lines Ending %v is not LF, CRLF or LFOrCRLF", cfg.Ending)
	case cfg.MaxLength <= 0:
		return nil, fmt.Errorf("codec: Lines MaxLength %d must be positive", cfg.MaxLength)
	case cfg.MaxLength > math.MaxInt-2:
		return nil, fmt.Errorf("codec: Lines MaxLength %d is too large", cfg.MaxLength)
	}
	return &Lines{ending: cfg.Ending, max: cfg.MaxLength, skip: cfg.SkipTooLong}, nil
}

// MaxFrameSize implements MaxSizer: MaxLength plus the longest line ending.
func (l *Lines) MaxFrameSize() int { return l.max + 2 }

// Factory returns a Factory that makes a new Lines, with l's configuration
// and a fresh scan state, for each connection. It is safe for concurrent
// use.
func (l *Lines) Factory() Factory[[]byte] {
	ending, maxLen, skip := l.ending, l.max, l.skip
	return func() Codec[[]byte] {
		return &Lines{ending: ending, max: maxLen, skip: skip}
	}
}

// line delivers src[:length], consuming n bytes.
func (l *Lines) line(src []byte, length, n int) ([]byte, int, error) {
	l.scanned = 0
	return src[:length:length], n, nil
}

// Decode implements Codec. It returns the first line of src without its
// line ending, and n = the line's length plus the ending's. Without a
// complete line it asks for more bytes, unless the line is already known to
// be over MaxLength: then it fails with ErrFrameTooLarge, or with
// SkipTooLong drops bytes (ErrSkip) up to the end of that line. A line may
// be empty.
func (l *Lines) Decode(src []byte) ([]byte, int, error) {
	if l.discarding {
		return l.discard(src)
	}
	// A line of at most max bytes has its "\n" at index max (LF) or max+1
	// (the others) at the latest: look no further than that.
	limit := l.max + 1
	if l.ending != LF {
		limit = l.max + 2
	}
	end := min(len(src), limit)
	i := l.scanned
	if i > end {
		i = 0 // src is not what the last call saw: the caller broke the contract
	}
	for i < end {
		j := bytes.IndexByte(src[i:end], '\n')
		if j < 0 {
			break
		}
		j += i
		cr := j > 0 && src[j-1] == '\r'
		switch {
		case l.ending == LF:
			return l.line(src, j, j+1)
		case cr:
			return l.line(src, j-1, j+1)
		case l.ending == LFOrCRLF:
			if j <= l.max {
				return l.line(src, j, j+1)
			}
			return l.tooLong(src) // a bare "\n" after max+1 bytes
		}
		i = j + 1 // CRLF: a bare "\n" belongs to the line
	}
	if end < limit {
		l.scanned = end
		return nil, 0, nil
	}
	return l.tooLong(src)
}

func (l *Lines) tooLong(src []byte) ([]byte, int, error) {
	l.scanned = 0
	if !l.skip {
		return nil, 0, fmt.Errorf("%w: line longer than %d bytes", ErrFrameTooLarge, l.max)
	}
	l.discarding = true
	return l.discard(src)
}

// discard drops the bytes of a too-long line, through its line ending.
func (l *Lines) discard(src []byte) ([]byte, int, error) {
	for i := 0; i < len(src); {
		j := bytes.IndexByte(src[i:], '\n')
		if j < 0 {
			break
		}
		j += i
		if l.ending != CRLF || (j > 0 && src[j-1] == '\r') {
			l.discarding = false
			return nil, j + 1, ErrSkip
		}
		i = j + 1
	}
	n := len(src)
	if l.ending == CRLF && src[n-1] == '\r' {
		n-- // keep a "\r" that the next byte may turn into "\r\n"
	}
	if n == 0 {
		return nil, 0, nil
	}
	return nil, n, ErrSkip
}

// Encode implements Codec: it appends line and the line ending to dst. It
// refuses a line over MaxLength (ErrFrameTooLarge) and a line that contains
// its line ending ("\n" for LF and LFOrCRLF, "\r\n" for CRLF), which would
// decode as two lines. It does not modify line, allocates nothing when dst
// has room, and is safe for concurrent use.
func (l *Lines) Encode(dst, line []byte) ([]byte, error) {
	if len(line) > l.max {
		return dst, fmt.Errorf("%w: %d-byte line, Lines MaxLength is %d", ErrFrameTooLarge, len(line), l.max)
	}
	if l.ending == CRLF {
		if bytes.Contains(line, crlf) {
			return dst, errLineEnding
		}
	} else if bytes.IndexByte(line, '\n') >= 0 {
		return dst, errLineEnding
	}
	dst = append(dst, line...)
	if l.ending == LF {
		return append(dst, '\n'), nil
	}
	return append(dst, '\r', '\n'), nil
}

var crlf = []byte("\r\n")
