package store

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"sync"
	"testing"
)

func TestParseInt(t *testing.T) {
	for _, c := range []struct {
		in string
		n  int64
		ok bool
	}{
		{"0", 0, true}, {"7", 7, true}, {"-7", -7, true},
		{"9223372036854775807", math.MaxInt64, true},
		{"-9223372036854775808", math.MinInt64, true},
		{"9223372036854775808", 0, false}, {"-9223372036854775809", 0, false},
		{"99999999999999999999", 0, false}, {"", 0, false}, {"-", 0, false},
		{"-0", 0, false}, {"01", 0, false}, {"+1", 0, false}, {" 1", 0, false},
		{"1 ", 0, false}, {"1a", 0, false}, {"184467440737095516160", 0, false},
	} {
		n, ok := ParseInt([]byte(c.in))
		if n != c.n || ok != c.ok {
			t.Errorf("ParseInt(%q) = %d, %v; want %d, %v", c.in, n, ok, c.n, c.ok)
		}
	}
}

func TestSetGetCopies(t *testing.T) {
	s := New(0)
	val := []byte("value")
	if ok, _, had := s.Set([]byte("k"), val, SetOptions{}); !ok || had {
		t.Fatal("Set")
	}
	copy(val, "XXXXX") // the caller's buffer is reused, as the engine's is
	got, ok := s.Get([]byte("k"))
	if !ok || string(got) != "value" {
		t.Fatalf("Get = %q, %v: Set did not copy", got, ok)
	}
	s.Set([]byte("k"), []byte("second"), SetOptions{})
	if string(got) != "value" {
		t.Fatalf("an earlier Get's slice changed to %q: values must be immutable", got)
	}
}

func TestIncrBy(t *testing.T) {
	s := New(1)
	if n, err := s.IncrBy([]byte("n"), 5); n != 5 || err != nil {
		t.Fatal(n, err)
	}
	if n, err := s.IncrBy([]byte("n"), -7); n != -2 || err != nil {
		t.Fatal(n, err)
	}
	s.Set([]byte("max"), []byte(strconv.FormatInt(math.MaxInt64, 10)), SetOptions{})
	if _, err := s.IncrBy([]byte("max"), 1); !errors.Is(err, ErrOverflow) {
		t.Fatal(err)
	}
	s.Set([]byte("min"), []byte(strconv.FormatInt(math.MinInt64, 10)), SetOptions{})
	if _, err := s.IncrBy([]byte("min"), -1); !errors.Is(err, ErrOverflow) {
		t.Fatal(err)
	}
	s.Set([]byte("s"), []byte("1.5"), SetOptions{})
	if _, err := s.IncrBy([]byte("s"), 1); !errors.Is(err, ErrNotInteger) {
		t.Fatal(err)
	}
}

// TestConcurrent hammers the store from several goroutines (bounded loops):
// increments are not lost, and MGet never sees half of an MSet.
func TestConcurrent(t *testing.T) {
	s := New(16)
	const workers, rounds = 8, 2000
	var wg sync.WaitGroup
	torn := make(chan string, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				if _, err := s.IncrBy([]byte("ctr"), 1); err != nil {
					torn <- err.Error()
					return
				}
				v := []byte(strconv.Itoa(w*rounds + i))
				s.MSet([][]byte{[]byte("a"), v, []byte("b"), v, []byte("c"), v})
				vals, found := s.MGet([][]byte{[]byte("c"), []byte("a"), []byte("b")})
				if !found[0] || !bytes.Equal(vals[0], vals[1]) || !bytes.Equal(vals[1], vals[2]) {
					torn <- "MGet saw " + string(bytes.Join(vals, []byte(",")))
					return
				}
				s.Del([]byte("k" + strconv.Itoa(i%10)))
				s.Set([]byte("k"+strconv.Itoa(i%10)), v, SetOptions{Mode: SetNX})
				s.Get([]byte("k" + strconv.Itoa(i%7)))
			}
		}()
	}
	wg.Wait()
	close(torn)
	for msg := range torn {
		t.Fatal(msg)
	}
	if v, _ := s.Get([]byte("ctr")); string(v) != strconv.Itoa(workers*rounds) {
		t.Fatalf("ctr = %s; want %d", v, workers*rounds)
	}
}

func TestExpiryAndSweep(t *testing.T) {
	s := New(2)
	now := int64(1000)
	s.SetClock(func() int64 { return now })
	for i := 0; i < 100; i++ {
		s.Set([]byte("e"+strconv.Itoa(i)), []byte("v"), SetOptions{ExpireAt: 2000})
	}
	s.Set([]byte("keep"), []byte("v"), SetOptions{})
	if s.PTTL([]byte("e1")) != 1000 || s.PTTL([]byte("keep")) != -1 || s.PTTL([]byte("none")) != -2 {
		t.Fatal("PTTL")
	}
	now = 2000
	if s.Exists([]byte("e1")) || s.PTTL([]byte("e1")) != -2 || s.Del([]byte("e2")) {
		t.Fatal("expired key still visible")
	}
	// A bounded sweep removes at most budget per shard per call.
	removed := s.Sweep(10)
	if removed > 20 || removed == 0 {
		t.Fatalf("Sweep(10) over 2 shards removed %d", removed)
	}
	for i := 0; i < 100 && s.Len() > 1; i++ {
		s.Sweep(10)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d after sweeping", s.Len())
	}
	if ok, old, had := s.Set([]byte("keep"), []byte("w"), SetOptions{Mode: SetXX, KeepTTL: true}); !ok || !had || string(old) != "v" {
		t.Fatal("SET XX KEEPTTL")
	}
	s.Flush()
	if s.Len() != 0 {
		t.Fatal("Flush")
	}
}

// TestNewShardBound: the shard count is bounded; for n over 1<<62 the
// rounding to a power of two once overflowed and never returned.
func TestNewShardBound(t *testing.T) {
	for _, n := range []int{1<<62 + 1, math.MaxInt, 1 << 30} {
		if got := len(New(n).shards); got != maxShards {
			t.Errorf("New(%d): %d shards, want %d", n, got, maxShards)
		}
	}
}
