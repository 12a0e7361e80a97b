// Package codectest checks a codec.Codec against the contract documented in
// package codec. Run it from a test on your own codec:
//
//	func TestMyCodec(t *testing.T) {
//		codectest.Run(t, myFactory, []MyFrame{{...}, {...}},
//			codectest.Oversized(hugeHeader))
//	}
//
// and turn the codec into a fuzz target in one line:
//
//	func FuzzMyCodec(f *testing.F) { codectest.Fuzz(f, myFactory, samples) }
//
// The checks, each a subtest of Run:
//
//   - RoundTrip: each sample encodes (appending to a non-empty dst, the same
//     bytes every time) and decodes back to itself, consuming every byte. A
//     codec with an EncodeHeader method (as codec.LengthField has) splits
//     exactly Encode's bytes into its header and payload, here and wherever
//     the kit re-encodes a decoded frame (the fuzz target too). This is
//     stricter than the engine, which calls EncodeHeader only on
//     codec.LengthField and codec.Raw themselves: a codec that embeds one
//     of them and changes Encode must change EncodeHeader to match (or
//     wrap the built-in instead of embedding it) to pass.
//   - Coalesced: all samples encoded back to back in one buffer decode, in
//     one read, to the samples in order.
//   - EverySplit: that buffer, cut into two reads at every byte position,
//     decodes to the same frames.
//   - ByteByByte: that buffer, fed one byte per read, decodes to the same
//     frames.
//   - Truncated: each sample's encoding cut short asks for more bytes: no
//     error and no frame.
//   - Garbage: seeded pseudo-random inputs (random bytes, and the samples'
//     encoding mutated, truncated or prefixed) never make the codec panic
//     or break the contract; decoding them whole or split into random reads
//     gives the same frames and the same outcome; every decoded frame
//     encodes and decodes back to itself.
//   - Oversized: each input given with Oversized is rejected with
//     codec.ErrFrameTooLarge, fed whole or byte by byte, and decoding it
//     allocates less than AllocLimit (64 KiB by default).
//
// The kit feeds a codec as the engine does: it keeps the bytes Decode did
// not consume and calls Decode again with those bytes plus the next read;
// after Decode asks for more, a codec that implements codec.Sizer is asked
// for the frame size, and Decode is not called again until that many bytes
// are buffered. A fresh codec from the Factory decodes each stream. In the
// split checks the kit also moves the pending bytes to a new buffer
// before each read and overwrites consumed and old bytes, so a codec that
// keeps src, or a frame it returned, across calls is caught; frames are
// compared while they are valid (at delivery, as OnFrame would see them).
//
// On every Decode call the kit checks the contract: n is never negative nor
// over len(src); a frame consumes at least one byte; ErrSkip (the exact
// value) comes with 0 < n <= len(src); Decode does not modify src; and, a
// little stricter than the contract, a need-more answer carries the zero
// frame. For a Sizer, FrameSize after a need-more is 0 or more than
// len(src), and the frame then decoded is exactly that size.
//
// Panics in the codec are recovered and reported with the input that
// caused them.
package codectest
