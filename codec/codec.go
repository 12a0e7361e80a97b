// Package codec defines how mai turns bytes into frames and frames into
// bytes, and provides built-in codecs for common framings. Package
// codec/codectest checks any Codec against the contract below.
package codec

import "errors"

// Codec decodes frames of type F from a connection's input and encodes
// frames of type F for its output. The engine makes one Codec per connection
// through a Factory, so a Codec may keep state between calls (a scan
// position, a handshake phase).
//
// Concurrency: the engine never calls Decode concurrently with Decode, nor
// Encode concurrently with Encode, on one Codec. Decode and Encode may run at
// the same time as each other (input is decoded on the read path while
// another goroutine sends). A Codec that a Factory hands to several
// connections must therefore be stateless.
type Codec[F any] interface {
	// Decode decodes at most one frame from the start of src, which holds
	// the bytes received so far that earlier calls did not consume.
	//
	// The engine never calls Decode with empty src. Decode reports:
	//
	//   - a frame: frame, n > 0, nil. The first n bytes of src, and no more,
	//     are consumed; 0 < n <= len(src). A frame never consumes 0 bytes.
	//   - need more bytes: n == 0 and err == nil. The returned frame should
	//     be the zero value (the engine ignores it; codectest insists). The
	//     engine calls Decode again with the same bytes plus what arrived
	//     since. A codec that implements Sizer lets the engine wait for the
	//     whole frame instead of calling again on every read.
	//   - bytes to drop: n > 0 and err == ErrSkip (the value itself, not
	//     wrapped). The first n bytes are
	//     discarded and no frame is delivered (a line over the limit being
	//     skipped, a keep-alive byte).
	//   - a protocol error: any other err (n is ignored). The engine delivers
	//     the frames decoded before it, reports the error (wrapped in
	//     mai.ErrProtocol) to the handler's OnError and closes the
	//     connection: no byte of src is decoded again. An oversized frame is
	//     reported as ErrFrameTooLarge as soon as the header tells its size,
	//     before the body is buffered.
	//
	// Ownership: src belongs to the engine and is valid only during the
	// call. The returned frame may alias src (zero-copy); the engine
	// guarantees such a frame stays valid until the OnFrame call that
	// receives it returns, so a handler that keeps a frame, or part of it,
	// past OnFrame must copy it. Decode must not modify src or keep it.
	// The engine does not call Decode again before the OnFrame of the
	// frame it returned has returned, so a codec may reuse scratch memory
	// of its own (an argument slice) from one frame to the next.
	//
	// End of input: when the peer closes, the engine decodes the whole
	// frames it still holds (input held back by a pause); if bytes remain
	// that no Decode call turned into a frame, it reports
	// mai.ErrPartialFrame. Decode is not told about EOF.
	Decode(src []byte) (frame F, n int, err error)

	// Encode appends the encoding of frame to dst and returns the extended
	// slice, as strconv.AppendInt and binary.Append do. dst comes from a
	// pooled buffer with room for typical frames, so steady-state encoding
	// allocates nothing. On error the engine discards whatever Encode
	// appended and reports the error (wrapped in mai.ErrEncode) to the
	// caller of Send; the connection stays open. Encode must not modify
	// frame (Strings passes it a string's memory), and must not keep dst or
	// frame after returning. A frame over the codec's maximum is refused with
	// ErrFrameTooLarge.
	Encode(dst []byte, frame F) ([]byte, error)
}

// Factory returns the Codec for one new connection. The engine calls it once
// per connection, from any goroutine; it must be safe for concurrent use.
type Factory[F any] func() Codec[F]

// Share returns a Factory that hands the same Codec to every connection.
// Use it only for a stateless Codec.
func Share[F any](c Codec[F]) Factory[F] {
	return func() Codec[F] { return c }
}

// Sizer is implemented by a Codec that can tell a frame's full encoded size
// from its first bytes (a length-prefixed codec, from its header). After
// Decode asked for more bytes, the engine calls FrameSize with the same src;
// when it returns a size, the engine reserves room for the whole frame once
// and does not call Decode again until that many bytes are buffered, so a
// large frame arriving in small pieces costs O(size), not O(size²).
//
// FrameSize returns the total number of bytes, counted from src[0], that the
// frame starting at src[0] occupies, or 0 when src is too short to tell. It
// must not keep src. A size over the codec's maximum is reported by Decode as
// ErrFrameTooLarge, not by FrameSize.
type Sizer interface {
	FrameSize(src []byte) int
}

// MaxSizer is implemented by a Codec with a largest frame. MaxFrameSize
// returns the largest encoded frame, header and delimiter included, that
// Decode accepts, or 0 if it has no limit. The engine uses it as its own
// frame limit when mai.WithMaxFrameSize is not given, so the two limits
// cannot disagree. It must be safe for concurrent use.
type MaxSizer interface {
	MaxFrameSize() int
}

// ErrSkip is returned by Decode, with n > 0, to discard n bytes without
// delivering a frame. It is not a failure.
var ErrSkip = errors.New("codec: skip bytes")

// ErrFrameTooLarge is returned by Decode when a frame's header declares a
// size over the codec's maximum, and by Encode for a frame over the maximum.
// The engine's error for it matches mai.ErrFrameTooLarge as well: mai
// defines mai.ErrFrameTooLarge as this value.
var ErrFrameTooLarge = errors.New("mai: frame too large")
