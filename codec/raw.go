package codec

import "fmt"

// RawConfig configures Raw.
type RawConfig struct {
	// MaxLength is the largest frame Decode delivers. It must be positive.
	MaxLength int
}

// Raw is a Codec without framing: Decode delivers whatever bytes have
// arrived, up to MaxLength at a time, as one []byte frame, and Encode writes
// a frame's bytes as they are. Frame boundaries are not preserved: two
// frames sent together may arrive as one, and one as two. It suits proxies
// and byte-stream protocols.
//
// Decode returns a frame that aliases src (no copy, no allocation), so it is
// valid only as long as src is (under the engine: until OnFrame returns); it
// has no spare capacity, so appending to it copies. Raw holds only its configuration: it is safe for
// concurrent use and may be shared by all connections (Factory does that).
type Raw struct {
	max int
}

// NewRaw returns a Raw for cfg, or an error if cfg.MaxLength is not
// positive.
func NewRaw(cfg RawConfig) (*Raw, error) {
	if cfg.MaxLength <= 0 {
		return nil, fmt.Errorf("codec: Raw MaxLength %d must be positive", cfg.MaxLength)
	}
	return &Raw{max: cfg.MaxLength}, nil
}

// Factory returns a Factory that shares c between connections (c is
// stateless).
func (c *Raw) Factory() Factory[[]byte] { return Share[[]byte](c) }

// Decode implements Codec: it returns the first min(len(src), MaxLength)
// bytes of src (aliasing src) and consumes them. It never asks for more
// and never fails.
func (c *Raw) Decode(src []byte) ([]byte, int, error) {
	n := min(len(src), c.max)
	return src[:n:n], n, nil
}

// Encode implements Codec: it appends frame (an empty frame appends nothing
// and so never reaches the peer). A frame over MaxLength is refused with
// ErrFrameTooLarge. It does not modify frame and allocates nothing when dst
// has room.
func (c *Raw) Encode(dst, frame []byte) ([]byte, error) {
	if len(frame) > c.max {
		return dst, c.tooLarge(len(frame))
	}
	return append(dst, frame...), nil
}

// EncodeHeader is Encode split into a header and a payload (see
// LengthField.EncodeHeader): a Raw frame has no header, so it returns dst
// unchanged and frame as the payload, or Encode's error.
func (c *Raw) EncodeHeader(dst, frame []byte) ([]byte, []byte, error) {
	if len(frame) > c.max {
		return dst, nil, c.tooLarge(len(frame))
	}
	return dst, frame, nil
}

//go:noinline
func (c *Raw) tooLarge(n int) error {
	return fmt.Errorf("%w: %d-byte frame, Raw MaxLength is %d", ErrFrameTooLarge, n, c.max)
}

// MaxFrameSize implements MaxSizer.
func (c *Raw) MaxFrameSize() int { return c.max }
