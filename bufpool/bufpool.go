// Package bufpool provides a bounded pool of *bytebufferpool.ByteBuffer for
// the engine's partial frames and outbound queues.
//
// Unlike sync.Pool, a Pool pre-allocates buffers, keeps at most a fixed
// number of idle buffers (it never grows without bound and is not emptied by
// the garbage collector), and refuses to keep a buffer that grew far beyond
// the usual size, so one large frame does not pin its memory in the pool.
package bufpool

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/valyala/bytebufferpool"
)

// Buffer is the pooled buffer type. Its B field is the byte slice.
type Buffer = bytebufferpool.ByteBuffer

// Config sizes a Pool.
type Config struct {
	// InitialSize is the capacity of a newly allocated buffer. Must be > 0.
	InitialSize int
	// Preallocate is the number of buffers allocated by New, as many of
	// them as MaxIdleBytes holds. Must be in [0, MaxIdle].
	Preallocate int
	// MaxIdle is the most buffers the pool keeps; buffers put beyond it are
	// dropped (left to the garbage collector). 0 keeps none.
	MaxIdle int
	// MaxSize is the largest capacity the pool keeps; a buffer that grew
	// beyond it is dropped on Put. 0 means 16 * InitialSize. Must be at
	// least InitialSize.
	MaxSize int
	// MaxIdleBytes bounds the total capacity of the idle buffers: a Put
	// that would go over it drops the buffer. 0 means MaxIdle *
	// InitialSize, so a pool of grown buffers holds no more memory than a
	// full pool of fresh ones.
	MaxIdleBytes int
}

// Stats are the pool's counters since New.
type Stats struct {
	Gets      uint64 // calls to Get
	Misses    uint64 // Gets that found no idle buffer and allocated one
	Puts      uint64 // calls to Put with a non-nil buffer
	Drops     uint64 // Puts whose buffer was not kept: pool full or buffer too large
	Idle      int    // buffers currently idle in the pool
	IdleBytes int    // their total capacity
}

// Pool is a bounded LIFO pool of buffers. It is safe for concurrent use.
// The zero Pool is not usable; call New.
type Pool struct {
	initialSize int
	maxSize     int

	maxIdleBytes int

	idleMu    sync.Mutex // guards idle and idleBytes
	idle      []*Buffer  // LIFO stack; cap is MaxIdle
	idleBytes int        // sum of cap(B) over idle

	gets, misses, puts, drops atomic.Uint64
}

// New returns a Pool for cfg, or an error if cfg is invalid.
func New(cfg Config) (*Pool, error) {
	if cfg.MaxSize == 0 {
		cfg.MaxSize = 16 * cfg.InitialSize
	}
	if cfg.MaxIdleBytes == 0 {
		cfg.MaxIdleBytes = cfg.MaxIdle * cfg.InitialSize
	}
	switch {
	case cfg.InitialSize <= 0:
		return nil, fmt.Errorf("bufpool: InitialSize %d must be positive", cfg.InitialSize)
	case cfg.MaxIdle < 0:
		return nil, fmt.Errorf("bufpool: MaxIdle %d must not be negative", cfg.MaxIdle)
	case cfg.Preallocate < 0 || cfg.Preallocate > cfg.MaxIdle:
		return nil, fmt.Errorf("bufpool: Preallocate %d must be in [0, MaxIdle %d]", cfg.Preallocate, cfg.MaxIdle)
	case cfg.MaxSize < cfg.InitialSize:
		return nil, fmt.Errorf("bufpool: MaxSize %d is under InitialSize %d", cfg.MaxSize, cfg.InitialSize)
	case cfg.MaxIdleBytes < 0:
		return nil, fmt.Errorf("bufpool: MaxIdleBytes %d must not be negative", cfg.MaxIdleBytes)
	}
	p := &Pool{
		initialSize:  cfg.InitialSize,
		maxSize:      cfg.MaxSize,
		maxIdleBytes: cfg.MaxIdleBytes,
		idle:         make([]*Buffer, 0, cfg.MaxIdle),
	}
	for i := 0; i < cfg.Preallocate && p.idleBytes+cfg.InitialSize <= p.maxIdleBytes; i++ {
		p.idle = append(p.idle, p.alloc())
		p.idleBytes += cfg.InitialSize
	}
	return p, nil
}

func (p *Pool) alloc() *Buffer {
	return &Buffer{B: make([]byte, 0, p.initialSize)}
}

// Get returns an empty buffer (len(B) == 0) with capacity at least
// InitialSize. The caller owns it until it calls Put.
func (p *Pool) Get() *Buffer {
	p.gets.Add(1)
	p.idleMu.Lock()
	if n := len(p.idle); n > 0 {
		b := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.idleBytes -= cap(b.B)
		p.idleMu.Unlock()
		return b
	}
	p.idleMu.Unlock()
	p.misses.Add(1)
	return p.alloc()
}

// Put returns b to the pool. The caller must not use b, or any slice of its
// B, afterwards. A nil b is ignored. A buffer whose capacity is over MaxSize
// or under InitialSize (one the pool did not make: Get's promise holds), or
// that finds the pool full (MaxIdle buffers, or MaxIdleBytes), is dropped.
func (p *Pool) Put(b *Buffer) {
	if b == nil {
		return
	}
	p.puts.Add(1)
	if cap(b.B) > p.maxSize || cap(b.B) < p.initialSize {
		p.drops.Add(1)
		return
	}
	b.B = b.B[:0]
	p.idleMu.Lock()
	if len(p.idle) < cap(p.idle) && p.idleBytes+cap(b.B) <= p.maxIdleBytes {
		p.idle = append(p.idle, b)
		p.idleBytes += cap(b.B)
		p.idleMu.Unlock()
		return
	}
	p.idleMu.Unlock()
	p.drops.Add(1)
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	p.idleMu.Lock()
	idle, idleBytes := len(p.idle), p.idleBytes
	p.idleMu.Unlock()
	return Stats{
		IdleBytes: idleBytes,
		Gets:      p.gets.Load(),
		Misses:    p.misses.Load(),
		Puts:      p.puts.Load(),
		Drops:     p.drops.Load(),
		Idle:      idle,
	}
}
