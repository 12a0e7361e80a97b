package stats

import "math/bits"

// subBits sets the histogram's precision: 2^subBits buckets per power of
// two, so a recorded value is off by at most 1/2^subBits (about 3%).
const subBits = 5

const subCount = 1 << subBits

// numBuckets covers values up to 2^50 ns (13 days).
const numBuckets = (50 - subBits + 1) * subCount

// Hist is a log-linear histogram of durations in nanoseconds. It is not
// safe for concurrent use: keep one per goroutine and Merge them.
type Hist struct {
	counts [numBuckets]uint32
	n      uint64
}

func bucketOf(v int64) int {
	if v < subCount {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - subBits - 1 // v>>e is in [subCount, 2*subCount)
	i := (e+1)*subCount + int(uint64(v)>>e) - subCount
	if i >= numBuckets {
		return numBuckets - 1
	}
	return i
}

// bucketMid returns the middle of bucket i's range.
func bucketMid(i int) float64 {
	if i < subCount {
		return float64(i)
	}
	e := i/subCount - 1
	low := uint64(i%subCount+subCount) << e
	return float64(low) + float64(uint64(1)<<e)/2
}

// Record adds one value in nanoseconds.
func (h *Hist) Record(ns int64) {
	h.counts[bucketOf(ns)]++
	h.n++
}

// Count returns the number of values recorded.
func (h *Hist) Count() uint64 { return h.n }

// Merge adds o's values to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// Quantile returns the value at quantile q (0..1), in nanoseconds, or 0 if
// nothing was recorded.
func (h *Hist) Quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return bucketMid(i)
		}
	}
	return bucketMid(numBuckets - 1)
}
