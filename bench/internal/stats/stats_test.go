package stats

import (
	"math"
	"testing"
)

func TestHistQuantiles(t *testing.T) {
	var h Hist
	for v := int64(1); v <= 100000; v++ {
		h.Record(v * 1000) // 1 µs .. 100 ms
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		want := q * 100000 * 1000
		got := h.Quantile(q)
		if math.Abs(got-want)/want > 1.0/subCount {
			t.Errorf("q%.3f = %.0f, want %.0f within %.1f%%", q, got, want, 100.0/subCount)
		}
	}
	var o Hist
	o.Merge(&h)
	if o.Count() != h.Count() || o.Quantile(0.5) != h.Quantile(0.5) {
		t.Error("Merge lost values")
	}
	if (&Hist{}).Quantile(0.5) != 0 {
		t.Error("empty histogram")
	}
	for _, v := range []int64{-5, 0, 31, 32, 33, 1 << 40, math.MaxInt64} {
		if i := bucketOf(v); i < 0 || i >= numBuckets {
			t.Errorf("bucketOf(%d) = %d", v, i)
		}
	}
}

func TestProc(t *testing.T) {
	if _, err := ProcCPU(0); err != nil {
		t.Fatal(err)
	}
	if rss, err := RSSKiB(0); err != nil || rss <= 0 {
		t.Fatal(rss, err)
	}
	cpus, err := SystemCPU()
	if err != nil || len(cpus) == 0 || cpus[0].Idle+cpus[0].Busy() == 0 {
		t.Fatal(cpus, err)
	}
}
