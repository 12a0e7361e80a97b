package main

// Facts about netpoll v0.7.5 that a zero-copy echo of large payloads on
// mai's netpoll transport would rest on (see README.md, s4): a payload can
// be lent to the write queue as a netpoll Slice of the input instead of
// being copied, and stay valid after the input's Release.

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/cloudwego/netpoll"
)

// TestNetpollSliceOutlivesRelease checks that Slice of an input held in one
// buffer node aliases the bytes Peek returned, and that they stay valid
// after the input is skipped and released and its memory is under reuse
// pressure, until the slice is released. It also checks the test a
// transport would use to tell a one-node Peek (its bytes are the node's)
// from a multi-node one (a copy that Release frees): Peek(1) points at the
// same byte.
func TestNetpollSliceOutlivesRelease(t *testing.T) {
	lb := netpoll.NewLinkBuffer(1 << 20)
	data := bytes.Repeat([]byte("abcdefgh"), 24<<10) // 192 KiB
	w, _ := lb.Malloc(len(data))
	copy(w, data)
	if err := lb.Flush(); err != nil {
		t.Fatal(err)
	}
	buf, _ := lb.Peek(lb.Len())
	if p1, _ := lb.Peek(1); unsafe.SliceData(p1) != unsafe.SliceData(buf) {
		t.Fatal("a one-node Peek is not the node's memory")
	}
	const off, n = 1000, 64 << 10
	_ = lb.Skip(off)
	s, err := lb.Slice(n)
	if err != nil {
		t.Fatal(err)
	}
	sp, _ := s.Peek(n)
	if unsafe.SliceData(sp) != &buf[off] {
		t.Fatal("the slice does not alias the input")
	}
	_ = lb.Skip(lb.Len())
	_ = lb.Release()
	for range 100 { // reuse pressure on netpoll's buffer cache
		x := netpoll.NewLinkBuffer(1 << 20)
		m, _ := x.Malloc(1 << 20)
		for i := range m {
			m[i] = 'Z'
		}
		_ = x.Flush()
		_ = x.Skip(x.Len())
		_ = x.Release()
	}
	if !bytes.Equal(sp, data[off:off+n]) {
		t.Fatal("lent bytes changed after the input's Release")
	}
	_ = s.Skip(s.Len())
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}

	// Two nodes: Peek copies, and the copy is not the node's memory.
	two := netpoll.NewLinkBuffer(4 << 10)
	for range 2 {
		w, _ := two.Malloc(8 << 10)
		copy(w, data)
		_ = two.Flush()
	}
	all, _ := two.Peek(two.Len())
	if p1, _ := two.Peek(1); unsafe.SliceData(p1) == unsafe.SliceData(all) {
		t.Skip("netpoll kept 16 KiB written in two flushes in one node; the multi-node case is not exercised")
	}
}

// BenchmarkNetpollSlice is the cost of lending a 64 KiB payload (Slice,
// then Skip and Release of the slice once written) against copying it.
func BenchmarkNetpollSlice(b *testing.B) {
	b.Run("slice", func(b *testing.B) {
		lb := netpoll.NewLinkBuffer(1 << 20)
		b.ReportAllocs()
		for b.Loop() {
			if lb.Len() < 64<<10 { // refill 16 payloads, untimed
				b.StopTimer()
				_ = lb.Release()
				w, _ := lb.Malloc(1 << 20)
				clear(w)
				_ = lb.Flush()
				b.StartTimer()
			}
			s, _ := lb.Slice(64 << 10)
			_ = s.Skip(s.Len())
			_ = s.Release()
		}
	})
	b.Run("copy", func(b *testing.B) {
		src, dst := make([]byte, 64<<10), make([]byte, 64<<10)
		b.ReportAllocs()
		for b.Loop() {
			copy(dst, src)
		}
	})
}
