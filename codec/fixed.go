package codec

import "fmt"

// FixedLengthConfig configures FixedLength.
type FixedLengthConfig struct {
	// Length is the size of every frame in bytes, and so also the largest
	// frame. It must be positive.
	Length int
}

// FixedLength is a Codec for []byte frames of exactly Length bytes each, in
// the manner of Netty's FixedLengthFrameDecoder.
//
// Decode returns a frame that aliases src (no copy, no allocation), so it is
// valid only as long as src is (under the engine: until OnFrame returns); it
// has no spare capacity, so appending to it copies. FixedLength implements Sizer, so the engine buffers a large
// frame once. It holds only its configuration: it is safe for concurrent use
// and may be shared by all connections (Factory does that).
type FixedLength struct {
	n int
}

// NewFixedLength returns a FixedLength for cfg, or an error if cfg.Length is
// not positive.
func NewFixedLength(cfg FixedLengthConfig) (*FixedLength, error) {
	if cfg.Length <= 0 {
		return nil, fmt.Errorf("codec: FixedLength Length %d must be positive", cfg.Length)
	}
	return &FixedLength{n: cfg.Length}, nil
}

// Factory returns a Factory that shares c between connections (c is
// stateless).
func (c *FixedLength) Factory() Factory[[]byte] { return Share[[]byte](c) }

// Decode implements Codec: it returns src[:Length] (aliasing src) and
// n = Length once src holds Length bytes, and asks for more before that. It
// never fails.
func (c *FixedLength) Decode(src []byte) ([]byte, int, error) {
	if len(src) < c.n {
		return nil, 0, nil
	}
	return src[:c.n:c.n], c.n, nil
}

// FrameSize implements Sizer: every frame is Length bytes.
func (c *FixedLength) FrameSize([]byte) int { return c.n }

// Encode implements Codec: it appends frame, which must hold exactly Length
// bytes (a longer one is refused with ErrFrameTooLarge). It does not modify
// frame and allocates nothing when dst has room.
func (c *FixedLength) Encode(dst, frame []byte) ([]byte, error) {
	switch {
	case len(frame) > c.n:
		return dst, fmt.Errorf("%w: %d-byte frame, FixedLength Length is %d", ErrFrameTooLarge, len(frame), c.n)
	case len(frame) < c.n:
		return dst, fmt.Errorf("codec: %d-byte frame, FixedLength Length is %d", len(frame), c.n)
	}
	return append(dst, frame...), nil
}

// MaxFrameSize implements MaxSizer: every frame is Length bytes.
func (c *FixedLength) MaxFrameSize() int { return c.n }
