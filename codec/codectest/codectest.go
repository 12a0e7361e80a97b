package codectest

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"reflect"
	"runtime/debug"
	"testing"

	"github.com/mai-go/mai/codec"
)

// Option adjusts the checks of Run, Check and Fuzz.
type Option func(*config)

type config struct {
	equal         any // func(a, b F) bool, checked against F by newSuite
	oversized     [][]byte
	unframed      bool
	skipReencode  bool
	seed          uint64
	garbageRounds int
	allocLimit    uint64
}

// Equal sets how frames are compared. F must be the codec's frame type. The
// default compares []byte frames with bytes.Equal (nil equals empty),
// strings with ==, and other types with reflect.DeepEqual.
func Equal[F any](eq func(a, b F) bool) Option {
	return func(c *config) { c.equal = eq }
}

// Oversized adds inputs that the codec must reject with
// codec.ErrFrameTooLarge (errors.Is), typically a header that declares a
// frame far over the codec's maximum, such as 4 GiB. The kit also checks
// that decoding such an input allocates less than AllocLimit.
func Oversized(inputs ...[]byte) Option {
	return func(c *config) { c.oversized = append(c.oversized, inputs...) }
}

// Unframed declares a codec that does not keep frame boundaries, such as
// codec.Raw: frames sent together may be decoded as one, and one as
// several. The kit then compares the concatenated encodings of the decoded
// frames with the encoded input instead of comparing frames one by one.
func Unframed() Option {
	return func(c *config) { c.unframed = true }
}

// SkipReencode turns off the check that a frame decoded from arbitrary
// input (Garbage, Fuzz) encodes and decodes back to itself, for codecs
// whose Encode legitimately refuses some frames that Decode accepts.
func SkipReencode() Option {
	return func(c *config) { c.skipReencode = true }
}

// Seed sets the seed of the Garbage check's pseudo-random inputs; the
// default is 1. The same seed gives the same inputs.
func Seed(seed uint64) Option {
	return func(c *config) { c.seed = seed }
}

// GarbageRounds sets how many pseudo-random inputs the Garbage check tries;
// the default is 256.
func GarbageRounds(n int) Option {
	return func(c *config) { c.garbageRounds = n }
}

// AllocLimit sets the most bytes that decoding one Oversized input may
// allocate; the default is 64 KiB.
func AllocLimit(bytes uint64) Option {
	return func(c *config) { c.allocLimit = bytes }
}

// suite holds what every check needs.
type suite[F any] struct {
	fac     codec.Factory[F]
	samples []F
	cfg     config
	eq      func(a, b F) bool
}

func newSuite[F any](fac codec.Factory[F], samples []F, opts []Option) (*suite[F], error) {
	if fac == nil {
		return nil, errors.New("codectest: nil Factory")
	}
	if len(samples) == 0 {
		return nil, errors.New("codectest: no samples")
	}
	s := &suite[F]{
		fac:     fac,
		samples: samples,
		cfg:     config{seed: 1, garbageRounds: 256, allocLimit: 64 << 10},
	}
	for _, o := range opts {
		o(&s.cfg)
	}
	if s.cfg.equal != nil {
		eq, ok := s.cfg.equal.(func(a, b F) bool)
		if !ok {
			var zero F
			return nil, fmt.Errorf("codectest: Equal was given a %T, want a func(a, b %T) bool", s.cfg.equal, zero)
		}
		s.eq = eq
	} else {
		s.eq = defaultEqual[F]()
	}
	return s, nil
}

func defaultEqual[F any]() func(a, b F) bool {
	var zero F
	switch any(zero).(type) {
	case []byte:
		return func(a, b F) bool { return bytes.Equal(any(a).([]byte), any(b).([]byte)) }
	case string:
		return func(a, b F) bool { return any(a).(string) == any(b).(string) }
	}
	return func(a, b F) bool { return reflect.DeepEqual(a, b) }
}

type check struct {
	name string
	run  func() error
	skip string // reason to skip, if any
}

func (s *suite[F]) checks() []check {
	cs := []check{
		{name: "RoundTrip", run: s.roundTrip},
		{name: "Coalesced", run: s.coalesced},
		{name: "EverySplit", run: s.everySplit},
		{name: "ByteByByte", run: s.byteByByte},
		{name: "Truncated", run: s.truncated},
		{name: "Garbage", run: s.garbage},
		{name: "Oversized", run: s.oversized},
	}
	if len(s.cfg.oversized) == 0 {
		cs[len(cs)-1].skip = "no Oversized inputs given"
	}
	return cs
}

// Run checks the codecs that f makes against the codec contract, with
// samples as the frames to encode (at least one; include an empty frame, a
// long one, and any frame with bytes that look like framing). Each check is
// a subtest; see the package documentation for the list. Run calls t.Fatal
// in the subtest of a failing check; the message says what broke and on
// which input.
//
// EverySplit decodes the whole encoded stream once per byte position, so
// its cost grows with the square of the samples' total encoded size: keep
// that to a few KiB. Run does not call t.Parallel; the Oversized check
// measures allocation process-wide, so do not run it in parallel with
// other tests either.
func Run[F any](t *testing.T, f codec.Factory[F], samples []F, opts ...Option) {
	t.Helper()
	s, err := newSuite(f, samples, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range s.checks() {
		t.Run(c.name, func(t *testing.T) {
			if c.skip != "" {
				t.Skip(c.skip)
			}
			if err := c.run(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Check runs the same checks as Run outside a test and returns their
// failures joined (nil when the codec passes), each prefixed with
// "codectest: <check>: ".
func Check[F any](f codec.Factory[F], samples []F, opts ...Option) error {
	s, err := newSuite(f, samples, opts)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range s.checks() {
		if c.skip != "" {
			continue
		}
		if err := c.run(); err != nil {
			errs = append(errs, fmt.Errorf("codectest: %s: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}

// Fuzz makes f a fuzz target for the codecs that fac makes. The seed corpus
// is each sample's encoding and all of them back to back. Each fuzz input
// is decoded whole and, with a fresh codec, split into reads at points
// derived from the input; both must give the same frames and outcome, obey
// the Decode contract and not panic, and each decoded frame must encode and
// decode back to itself (unless SkipReencode). Unframed applies as for Run;
// Oversized and the Garbage options are ignored.
//
// Call it from a FuzzXxx function: func FuzzMine(f *testing.F) {
// codectest.Fuzz(f, factory, samples) }.
func Fuzz[F any](f *testing.F, fac codec.Factory[F], samples []F, opts ...Option) {
	f.Helper()
	s, err := newSuite(fac, samples, opts)
	if err != nil {
		f.Fatal(err)
	}
	stream, encs, err := s.encodeSamples()
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range encs {
		f.Add(e)
	}
	f.Add(stream)
	f.Fuzz(func(t *testing.T, data []byte) {
		h := fnv.New64a()
		h.Write(data)
		if err := s.fuzzOne(data, h.Sum64()); err != nil {
			t.Fatal(err)
		}
	})
}

// newCodec calls the Factory.
func (s *suite[F]) newCodec() (c codec.Codec[F], err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the Factory panicked: %v\n%s", r, debug.Stack())
		}
	}()
	c = s.fac()
	if c == nil {
		return nil, errors.New("the Factory returned a nil Codec")
	}
	return c, nil
}

// encode calls c.Encode, turning a panic into an error.
func (s *suite[F]) encode(c codec.Codec[F], dst []byte, f F) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("Encode(%s) panicked: %v\n%s", show(f), r, debug.Stack())
		}
	}()
	return c.Encode(dst, f)
}

// headerEncoder is a codec that can split its encoding of a frame into a
// header and a payload, as codec.LengthField.EncodeHeader does.
type headerEncoder[F any] interface {
	EncodeHeader(dst []byte, frame F) (header []byte, payload []byte, err error)
}

// encodeHeader calls c's EncodeHeader, turning a panic into an error.
func (s *suite[F]) encodeHeader(c headerEncoder[F], dst []byte, f F) (hdr, payload []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("EncodeHeader(%s) panicked: %v\n%s", show(f), r, debug.Stack())
		}
	}()
	return c.EncodeHeader(dst, f)
}

// sameAsHeader checks, when c has an EncodeHeader method, that its header
// and payload for f are enc, f's encoding by Encode, and that it appends
// to dst as Encode does.
func (s *suite[F]) sameAsHeader(c codec.Codec[F], f F, enc []byte) error {
	he, ok := c.(headerEncoder[F])
	if !ok {
		return nil
	}
	prefix := []byte{0xfe, 0xed}
	hdr, payload, err := s.encodeHeader(he, append(make([]byte, 0, 8), prefix...), f)
	if err != nil {
		return fmt.Errorf("EncodeHeader(%s) failed where Encode did not: %w", show(f), err)
	}
	if err := appendedTo(hdr, prefix); err != nil {
		return fmt.Errorf("EncodeHeader(%s) %w", show(f), err)
	}
	got := append(bytes.Clone(hdr[len(prefix):]), payload...)
	if !bytes.Equal(got, enc) {
		return fmt.Errorf("EncodeHeader(%s) gave header %s and payload %s; Encode gave %s", show(f), show(hdr[len(prefix):]), show(payload), show(enc))
	}
	return nil
}

// appendedTo checks that out, an encoder's result for dst, starts with
// dst's bytes: the encoder appended to dst.
func appendedTo(out, dst []byte) error {
	if len(out) < len(dst) || !bytes.Equal(out[:len(dst)], dst) {
		return fmt.Errorf("did not append to dst: dst was %s, result starts %s", show(dst), show(out[:min(len(out), len(dst))]))
	}
	return nil
}

// encodeSamples encodes every sample with one codec, as a connection's
// sender would: it returns the whole stream and each sample's encoding
// (from a fresh codec).
func (s *suite[F]) encodeSamples() (stream []byte, encs [][]byte, err error) {
	c, err := s.newCodec()
	if err != nil {
		return nil, nil, err
	}
	for i, smp := range s.samples {
		stream, err = s.encode(c, stream, smp)
		if err != nil {
			return nil, nil, fmt.Errorf("encoding sample %d %s: %w", i, show(smp), err)
		}
		one, err := s.newCodec()
		if err != nil {
			return nil, nil, err
		}
		e, err := s.encode(one, nil, smp)
		if err != nil {
			return nil, nil, fmt.Errorf("encoding sample %d %s: %w", i, show(smp), err)
		}
		encs = append(encs, e)
	}
	return stream, encs, nil
}

// show formats a frame or input for a failure message, shortened.
func show(v any) string {
	var s string
	switch v := v.(type) {
	case []byte:
		s = fmt.Sprintf("%q", v)
		if len(v) > 48 {
			s = fmt.Sprintf("%q...(%d bytes)", v[:48], len(v))
		}
		return s
	case string:
		s = fmt.Sprintf("%q", v)
		if len(v) > 48 {
			s = fmt.Sprintf("%q...(%d bytes)", v[:48], len(v))
		}
		return s
	}
	s = fmt.Sprintf("%+v", v)
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}
