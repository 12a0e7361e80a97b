package codec

import "unsafe"

// Strings adapts a Factory of []byte codecs to string frames: each
// connection gets a Codec[string] around its own Codec[[]byte] from f, so
// stateful codecs keep working.
//
// Decode copies each decoded frame into a new string: one allocation of the
// frame's length per non-empty frame, after which the string is the
// handler's to keep (it does not alias the engine's buffer). Encode passes
// the inner Encode a []byte that shares the string's memory, without
// copying or allocating; this is sound because Encode must not modify its
// frame nor keep it (every built-in codec honours that). Errors, ErrSkip
// and need-more answers pass through unchanged.
//
// The adapter implements Sizer and MaxSizer by asking the inner codec, and
// answers 0 ("unknown", "no limit") when the inner codec does not
// implement them.
func Strings(f Factory[[]byte]) Factory[string] {
	return func() Codec[string] {
		return stringCodec{f()}
	}
}

type stringCodec struct {
	inner Codec[[]byte]
}

func (c stringCodec) Decode(src []byte) (string, int, error) {
	frame, n, err := c.inner.Decode(src)
	if err != nil || n == 0 {
		return "", n, err
	}
	return string(frame), n, nil
}

func (c stringCodec) Encode(dst []byte, frame string) ([]byte, error) {
	return c.inner.Encode(dst, unsafe.Slice(unsafe.StringData(frame), len(frame)))
}

// FrameSize implements Sizer through the inner codec.
func (c stringCodec) FrameSize(src []byte) int {
	if s, ok := c.inner.(Sizer); ok {
		return s.FrameSize(src)
	}
	return 0
}

// MaxFrameSize implements MaxSizer through the inner codec.
func (c stringCodec) MaxFrameSize() int {
	if m, ok := c.inner.(MaxSizer); ok {
		return m.MaxFrameSize()
	}
	return 0
}
