package bufpool_test

import (
	"sync"
	"testing"

	"github.com/mai-go/mai/bufpool"
	"github.com/valyala/bytebufferpool"
)

// go test -run='^$' -bench=. -benchmem ./bufpool/
//
// Each op takes a buffer, writes 64 bytes into it and gives it back, in
// steady state, with bufpool.Pool, a sync.Pool of *bytebufferpool.ByteBuffer
// and bytebufferpool's own Get/Put; serially and from all Ps in parallel.

const benchSize = 4096

var payload = make([]byte, 64)

type pool interface {
	Get() *bufpool.Buffer
	Put(*bufpool.Buffer)
}

type syncPool struct{ p sync.Pool }

func newSyncPool() *syncPool {
	return &syncPool{p: sync.Pool{New: func() any {
		return &bytebufferpool.ByteBuffer{B: make([]byte, 0, benchSize)}
	}}}
}

func (s *syncPool) Get() *bufpool.Buffer { return s.p.Get().(*bytebufferpool.ByteBuffer) }

func (s *syncPool) Put(b *bufpool.Buffer) {
	b.B = b.B[:0]
	s.p.Put(b)
}

type bbp struct{}

func (bbp) Get() *bufpool.Buffer  { return bytebufferpool.Get() }
func (bbp) Put(b *bufpool.Buffer) { bytebufferpool.Put(b) }

func benchPools(b *testing.B) []struct {
	name string
	p    pool
} {
	bp, err := bufpool.New(bufpool.Config{InitialSize: benchSize, Preallocate: 64, MaxIdle: 1024})
	if err != nil {
		b.Fatal(err)
	}
	return []struct {
		name string
		p    pool
	}{
		{"bufpool", bp},
		{"sync.Pool", newSyncPool()},
		{"bytebufferpool", bbp{}},
	}
}

func BenchmarkPool(b *testing.B) {
	for _, tc := range benchPools(b) {
		p := tc.p
		b.Run(tc.name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf := p.Get()
				buf.B = append(buf.B, payload...)
				p.Put(buf)
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					buf := p.Get()
					buf.B = append(buf.B, payload...)
					p.Put(buf)
				}
			})
		})
		// Several buffers out at once, as with a batch of queued frames.
		b.Run(tc.name+"/batch8", func(b *testing.B) {
			var held [8]*bufpool.Buffer
			b.ReportAllocs()
			for b.Loop() {
				for i := range held {
					held[i] = p.Get()
					held[i].B = append(held[i].B, payload...)
				}
				for i := range held {
					p.Put(held[i])
				}
			}
		})
	}
}
