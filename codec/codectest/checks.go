package codectest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"

	"github.com/mai-go/mai/codec"
)

// expect compares the frames of one stream, at delivery, with what the
// samples say they should be.
type expect[F any] struct {
	s      *suite[F]
	frames []F // framed: the frames in order
	got    int

	enc     codec.Codec[F] // unframed: re-encodes each frame
	stream  []byte         // unframed: the expected concatenated encodings
	off     int
	scratch []byte
}

func (s *suite[F]) expect(frames []F, stream []byte) (*expect[F], error) {
	e := &expect[F]{s: s, frames: frames, stream: stream}
	if s.cfg.unframed {
		c, err := s.newCodec()
		if err != nil {
			return nil, err
		}
		e.enc = c
	}
	return e, nil
}

func (e *expect[F]) frame(f F) error {
	if !e.s.cfg.unframed {
		if e.got >= len(e.frames) {
			return fmt.Errorf("an extra frame %s after the %d expected", show(f), len(e.frames))
		}
		if want := e.frames[e.got]; !e.s.eq(f, want) {
			return fmt.Errorf("frame %d is %s, want %s", e.got, show(f), show(want))
		}
		e.got++
		return nil
	}
	b, err := e.s.encode(e.enc, e.scratch[:0], f)
	if err != nil {
		return fmt.Errorf("re-encoding decoded frame %s: %w", show(f), err)
	}
	e.scratch = b
	if !bytes.HasPrefix(e.stream[e.off:], b) {
		return fmt.Errorf("decoded frame %s re-encodes to %s, want the next bytes of the input %s", show(f), show(b), show(e.stream[e.off:]))
	}
	e.off += len(b)
	return nil
}

// done checks that every expected frame arrived and every byte was used.
func (e *expect[F]) done(fd *feeder[F]) error {
	if fd.err != nil {
		return fmt.Errorf("decoding failed: %w", fd.err)
	}
	if !e.s.cfg.unframed && e.got != len(e.frames) {
		return fmt.Errorf("decoded %d frames, want %d", e.got, len(e.frames))
	}
	if e.s.cfg.unframed && e.off != len(e.stream) {
		return fmt.Errorf("decoded frames re-encode to %d bytes, want %d", e.off, len(e.stream))
	}
	if p := fd.pending(); len(p) > 0 {
		return fmt.Errorf("%d bytes left undecoded: %s", len(p), show(p))
	}
	return nil
}

// decodeStream decodes input, fed in the given reads, with a fresh codec,
// and compares the frames with the expected ones.
func (s *suite[F]) decodeStream(frames []F, input []byte, move bool, reads func(feed func([]byte) error) error) error {
	c, err := s.newCodec()
	if err != nil {
		return err
	}
	e, err := s.expect(frames, input)
	if err != nil {
		return err
	}
	fd := newFeeder(c, move, e.frame)
	if err := reads(fd.feed); err != nil {
		return err
	}
	return e.done(fd)
}

func whole(input []byte) func(func([]byte) error) error {
	return func(feed func([]byte) error) error { return feed(input) }
}

func (s *suite[F]) roundTrip() error {
	prefix := []byte{0xde, 0xad, 0xbe, 0xef}
	for i, smp := range s.samples {
		c, err := s.newCodec()
		if err != nil {
			return err
		}
		dst := append(make([]byte, 0, 64), prefix...)
		out, err := s.encode(c, dst, smp)
		if err != nil {
			return fmt.Errorf("sample %d %s: Encode: %w", i, show(smp), err)
		}
		if err := appendedTo(out, prefix); err != nil {
			return fmt.Errorf("sample %d %s: Encode %w", i, show(smp), err)
		}
		enc := out[len(prefix):]
		again, err := s.encode(c, nil, smp)
		if err != nil {
			return fmt.Errorf("sample %d %s: second Encode: %w", i, show(smp), err)
		}
		if !bytes.Equal(again, enc) {
			return fmt.Errorf("sample %d %s: Encode gave %s, then %s", i, show(smp), show(enc), show(again))
		}
		if err := s.decodeStream(s.samples[i:i+1], enc, false, whole(enc)); err != nil {
			return fmt.Errorf("sample %d %s encoded as %s: %w", i, show(smp), show(enc), err)
		}
		if err := s.sameAsHeader(c, smp, enc); err != nil {
			return fmt.Errorf("sample %d: %w", i, err)
		}
	}
	return nil
}

func (s *suite[F]) coalesced() error {
	stream, _, err := s.encodeSamples()
	if err != nil {
		return err
	}
	if err := s.decodeStream(s.samples, stream, false, whole(stream)); err != nil {
		return fmt.Errorf("all samples in one read %s: %w", show(stream), err)
	}
	return nil
}

func (s *suite[F]) everySplit() error {
	stream, _, err := s.encodeSamples()
	if err != nil {
		return err
	}
	for i := 1; i < len(stream); i++ {
		err := s.decodeStream(s.samples, stream, true, func(feed func([]byte) error) error {
			if err := feed(stream[:i]); err != nil {
				return err
			}
			return feed(stream[i:])
		})
		if err != nil {
			return fmt.Errorf("%s split at byte %d of %d: %w", show(stream), i, len(stream), err)
		}
	}
	return nil
}

func (s *suite[F]) byteByByte() error {
	stream, _, err := s.encodeSamples()
	if err != nil {
		return err
	}
	err = s.decodeStream(s.samples, stream, true, func(feed func([]byte) error) error {
		for i := range stream {
			if err := feed(stream[i : i+1]); err != nil {
				return fmt.Errorf("at byte %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s fed one byte per read: %w", show(stream), err)
	}
	return nil
}

func (s *suite[F]) truncated() error {
	_, encs, err := s.encodeSamples()
	if err != nil {
		return err
	}
	for i, enc := range encs {
		for l := 1; l < len(enc); l++ {
			c, err := s.newCodec()
			if err != nil {
				return err
			}
			var got []string
			fd := newFeeder(c, true, func(f F) error {
				got = append(got, show(f))
				return nil
			})
			if err := fd.feed(enc[:l]); err != nil {
				return fmt.Errorf("sample %d cut to %d of %d bytes %s: %w", i, l, len(enc), show(enc[:l]), err)
			}
			if fd.err != nil {
				return fmt.Errorf("sample %d cut to %d of %d bytes %s: Decode failed instead of asking for more: %w", i, l, len(enc), show(enc[:l]), fd.err)
			}
			if !s.cfg.unframed && len(got) > 0 {
				return fmt.Errorf("sample %d cut to %d of %d bytes %s: decoded frame %s from a partial frame", i, l, len(enc), show(enc[:l]), got[0])
			}
		}
	}
	return nil
}

// garbage decodes pseudo-random inputs derived from the seed.
func (s *suite[F]) garbage() error {
	stream, _, err := s.encodeSamples()
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(s.cfg.seed, 0x6d61692d636f6465))
	for round := 0; round < s.cfg.garbageRounds; round++ {
		data := garbageInput(rng, round, stream)
		if err := s.fuzzOne(data, rng.Uint64()); err != nil {
			return fmt.Errorf("seed %d round %d: %w", s.cfg.seed, round, err)
		}
	}
	return nil
}

func garbageInput(rng *rand.Rand, round int, stream []byte) []byte {
	randomBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	switch {
	case round < 64: // runs of one byte value: headers that claim the most or the least
		v := []byte{0x00, 0xff, 0x7f, 0x80}[round%4]
		return bytes.Repeat([]byte{v}, 1+round/4*4)
	case len(stream) == 0 || round%4 == 0:
		return randomBytes(rng.IntN(257))
	case round%4 == 1: // a few bytes of the stream changed, inserted or removed
		b := bytes.Clone(stream)
		for k := 1 + rng.IntN(4); k > 0 && len(b) > 0; k-- {
			i := rng.IntN(len(b))
			switch rng.IntN(3) {
			case 0:
				b[i] = byte(rng.Uint32())
			case 1:
				b = append(b[:i], append([]byte{byte(rng.Uint32())}, b[i:]...)...)
			default:
				b = append(b[:i], b[i+1:]...)
			}
		}
		return b
	case round%4 == 2: // the stream cut short, then noise
		return append(bytes.Clone(stream[:rng.IntN(len(stream))]), randomBytes(rng.IntN(17))...)
	default: // noise, then the stream
		return append(randomBytes(1+rng.IntN(8)), stream...)
	}
}

// fuzzOne decodes data whole and split into reads chosen by splitSeed, and
// checks the contract, that both give the same frames and outcome, and that
// decoded frames round-trip.
func (s *suite[F]) fuzzOne(data []byte, splitSeed uint64) error {
	c1, err := s.newCodec()
	if err != nil {
		return err
	}
	var frames []F
	var reenc []byte // unframed: the decoded frames' encodings, concatenated
	one := newFeeder(c1, false, func(f F) error {
		frames = append(frames, f)
		if s.cfg.skipReencode {
			return nil
		}
		b, err := s.reencode(c1, f)
		reenc = append(reenc, b...)
		return err
	})
	if err := one.feed(data); err != nil {
		return fmt.Errorf("input %s in one read: %w", show(data), err)
	}

	c2, err := s.newCodec()
	if err != nil {
		return err
	}
	var e *expect[F]
	if !s.cfg.unframed || !s.cfg.skipReencode {
		e = &expect[F]{s: s, frames: frames, stream: reenc, enc: c2}
	}
	split := newFeeder(c2, true, func(f F) error {
		if e == nil {
			return nil
		}
		return e.frame(f)
	})
	rng := rand.New(rand.NewPCG(splitSeed, uint64(len(data))))
	var cuts []int
	for off := 0; off < len(data); {
		n := 1 + rng.IntN(max(1, len(data)/3))
		if rng.IntN(4) == 0 {
			n = 1
		}
		n = min(n, len(data)-off)
		cuts = append(cuts, off+n)
		if err := split.feed(data[off : off+n]); err != nil {
			return fmt.Errorf("input %s in reads ending at %v: %w", show(data), cuts, err)
		}
		off += n
	}
	differ := func(format string, args ...any) error {
		return fmt.Errorf("input %s decodes differently in one read and in reads ending at %v: %s", show(data), cuts, fmt.Sprintf(format, args...))
	}
	switch {
	case e != nil && !s.cfg.unframed && e.got != len(frames):
		return differ("%d frames, then %d", len(frames), e.got)
	case e != nil && s.cfg.unframed && e.off != len(reenc):
		return differ("frames re-encode to %d bytes, then %d", len(reenc), e.off)
	case (one.err == nil) != (split.err == nil),
		errors.Is(one.err, codec.ErrFrameTooLarge) != errors.Is(split.err, codec.ErrFrameTooLarge):
		return differ("error %v, then %v", one.err, split.err)
	case one.err == nil && len(one.pending()) != len(split.pending()):
		return differ("%d bytes left pending, then %d", len(one.pending()), len(split.pending()))
	}
	return nil
}

// reencode checks that a decoded frame encodes, and (framed) decodes back to
// itself; it returns the encoding. A frame whose end shows only with the
// next byte (a delimiter that is a prefix of another) may need the start of
// another frame behind it: the kit then appends its encoding again.
func (s *suite[F]) reencode(c codec.Codec[F], f F) ([]byte, error) {
	b, err := s.encode(c, nil, f)
	if err != nil {
		return nil, fmt.Errorf("decoded frame %s does not encode: %w (use SkipReencode if that is intended)", show(f), err)
	}
	if err := s.sameAsHeader(c, f, b); err != nil {
		return nil, err
	}
	if s.cfg.unframed {
		return b, nil
	}
	dec, err := s.newCodec()
	if err != nil {
		return nil, err
	}
	var got []F
	fd := newFeeder(dec, false, func(g F) error {
		got = append(got, g)
		return nil
	})
	err = fd.feed(b)
	if err == nil && fd.err == nil && len(got) == 0 && len(fd.pending()) == len(b) {
		err = fd.feed(b)
	}
	switch {
	case err != nil:
	case fd.err != nil:
		err = fmt.Errorf("decoding failed: %w", fd.err)
	case len(got) == 0:
		err = errors.New("no frame decoded")
	case !s.eq(got[0], f):
		err = fmt.Errorf("decoded %s", show(got[0]))
	case len(got) == 1 && len(fd.pending()) > 0 && fd.fed == len(b):
		err = fmt.Errorf("%d bytes left undecoded", len(fd.pending()))
	}
	if err != nil {
		return nil, fmt.Errorf("decoded frame %s re-encoded as %s: %w", show(f), show(b), err)
	}
	return b, nil
}

func (s *suite[F]) oversized() error {
	for i, in := range s.cfg.oversized {
		if len(in) == 0 {
			return fmt.Errorf("Oversized input %d is empty", i)
		}
		c, err := s.newCodec()
		if err != nil {
			return err
		}
		fd := newFeeder(c, false, nil)
		fd.cur = make([]byte, 0, len(in))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		verr := fd.feed(in)
		runtime.ReadMemStats(&after)
		if verr != nil {
			return fmt.Errorf("Oversized input %d %s: %w", i, show(in), verr)
		}
		if !errors.Is(fd.err, codec.ErrFrameTooLarge) {
			return fmt.Errorf("Oversized input %d %s in one read: Decode gave %s, want ErrFrameTooLarge", i, show(in), outcome(fd.err))
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > s.cfg.allocLimit {
			return fmt.Errorf("Oversized input %d %s: decoding it allocated %d bytes, over the limit of %d", i, show(in), n, s.cfg.allocLimit)
		}

		c, err = s.newCodec()
		if err != nil {
			return err
		}
		fd = newFeeder(c, true, nil)
		for j := range in {
			if err := fd.feed(in[j : j+1]); err != nil {
				return fmt.Errorf("Oversized input %d %s, byte %d of a byte per read: %w", i, show(in), j, err)
			}
		}
		if !errors.Is(fd.err, codec.ErrFrameTooLarge) {
			return fmt.Errorf("Oversized input %d %s one byte per read: Decode gave %s, want ErrFrameTooLarge", i, show(in), outcome(fd.err))
		}
	}
	return nil
}

func outcome(err error) string {
	if err == nil {
		return "no error"
	}
	return fmt.Sprintf("error %q", err)
}
