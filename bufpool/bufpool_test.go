package bufpool_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/mai-go/mai/bufpool"
)

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  bufpool.Config
		want string // substring of the error; "" for valid
	}{
		{"minimal", bufpool.Config{InitialSize: 1}, ""},
		{"typical", bufpool.Config{InitialSize: 4096, Preallocate: 16, MaxIdle: 64, MaxSize: 1 << 20}, ""},
		{"MaxSize defaults", bufpool.Config{InitialSize: 4096, MaxIdle: 1}, ""},
		{"MaxSize equal to InitialSize", bufpool.Config{InitialSize: 4096, MaxSize: 4096}, ""},
		{"Preallocate equal to MaxIdle", bufpool.Config{InitialSize: 1, Preallocate: 3, MaxIdle: 3}, ""},
		{"zero InitialSize", bufpool.Config{}, "InitialSize 0 must be positive"},
		{"negative InitialSize", bufpool.Config{InitialSize: -1}, "InitialSize -1 must be positive"},
		{"negative MaxIdle", bufpool.Config{InitialSize: 1, MaxIdle: -1}, "MaxIdle -1 must not be negative"},
		{"negative Preallocate", bufpool.Config{InitialSize: 1, Preallocate: -1, MaxIdle: 1}, "Preallocate -1"},
		{"Preallocate over MaxIdle", bufpool.Config{InitialSize: 1, Preallocate: 2, MaxIdle: 1}, "Preallocate 2"},
		{"MaxSize under InitialSize", bufpool.Config{InitialSize: 4096, MaxSize: 100}, "MaxSize 100 is under InitialSize 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := bufpool.New(tt.cfg)
			switch {
			case tt.want == "" && (err != nil || p == nil):
				t.Fatalf("New(%+v) = %v, %v; want a pool", tt.cfg, p, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "bufpool: ")):
				t.Fatalf("New(%+v) error = %v, want one with %q", tt.cfg, err, tt.want)
			}
		})
	}
}

func mustNew(t *testing.T, cfg bufpool.Config) *bufpool.Pool {
	t.Helper()
	p, err := bufpool.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGetPutStats(t *testing.T) {
	tests := []struct {
		name  string
		cfg   bufpool.Config
		steps string // g = Get, p = Put the most recent buffer still out, n = Put(nil), G = grow the most recent buffer still out to 1 MiB
		want  bufpool.Stats
	}{
		{"preallocated hit", bufpool.Config{InitialSize: 64, Preallocate: 1, MaxIdle: 1}, "gp",
			bufpool.Stats{Gets: 1, Puts: 1, Idle: 1, IdleBytes: 64}},
		{"miss", bufpool.Config{InitialSize: 64, MaxIdle: 1}, "gp",
			bufpool.Stats{Gets: 1, Misses: 1, Puts: 1, Idle: 1, IdleBytes: 64}},
		{"MaxIdle bound", bufpool.Config{InitialSize: 64, MaxIdle: 2}, "gggppp",
			bufpool.Stats{Gets: 3, Misses: 3, Puts: 3, Drops: 1, Idle: 2, IdleBytes: 128}},
		{"MaxIdle 0 keeps none", bufpool.Config{InitialSize: 64}, "gpgp",
			bufpool.Stats{Gets: 2, Misses: 2, Puts: 2, Drops: 2}},
		{"MaxSize drop", bufpool.Config{InitialSize: 64, MaxIdle: 4, MaxSize: 1024}, "gGp",
			bufpool.Stats{Gets: 1, Misses: 1, Puts: 1, Drops: 1}},
		{"nil Put ignored", bufpool.Config{InitialSize: 64, MaxIdle: 4}, "nn",
			bufpool.Stats{}},
		{"reuse after Put", bufpool.Config{InitialSize: 64, MaxIdle: 4}, "gpgpgp",
			bufpool.Stats{Gets: 3, Misses: 1, Puts: 3, Idle: 1, IdleBytes: 64}},
		{"MaxIdleBytes bound: a grown buffer is kept, the next one dropped", bufpool.Config{InitialSize: 64, MaxIdle: 4, MaxSize: 4 << 20, MaxIdleBytes: 2 << 20}, "gGgGpp",
			bufpool.Stats{Gets: 2, Misses: 2, Puts: 2, Drops: 1, Idle: 1, IdleBytes: -1}}, // -1: one grown buffer, over 1 MiB
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, tt.cfg)
			var out []*bufpool.Buffer
			for _, s := range tt.steps {
				switch s {
				case 'g':
					b := p.Get()
					if len(b.B) != 0 || cap(b.B) < tt.cfg.InitialSize {
						t.Fatalf("Get: len %d cap %d", len(b.B), cap(b.B))
					}
					b.B = append(b.B, "dirty"...)
					out = append(out, b)
				case 'G':
					b := out[len(out)-1]
					b.B = append(b.B, make([]byte, 1<<20)...)
				case 'p':
					p.Put(out[len(out)-1])
					out = out[:len(out)-1]
				case 'n':
					p.Put(nil)
				}
			}
			got := p.Stats()
			if tt.want.IdleBytes == -1 {
				if got.IdleBytes <= 1<<20 || got.IdleBytes > 2<<20 {
					t.Fatalf("IdleBytes = %d, want one grown buffer", got.IdleBytes)
				}
				got.IdleBytes = -1
			}
			if got != tt.want {
				t.Fatalf("Stats = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPreallocate(t *testing.T) {
	p := mustNew(t, bufpool.Config{InitialSize: 128, Preallocate: 3, MaxIdle: 5})
	if s := p.Stats(); s.Idle != 3 || s.Gets != 0 || s.Misses != 0 {
		t.Fatalf("after New: %+v", s)
	}
	seen := map[*bufpool.Buffer]bool{}
	for range 3 {
		b := p.Get()
		if seen[b] {
			t.Fatal("the same buffer twice")
		}
		seen[b] = true
		if cap(b.B) != 128 {
			t.Fatalf("cap %d", cap(b.B))
		}
	}
	if s := p.Stats(); s.Idle != 0 || s.Misses != 0 {
		t.Fatalf("after 3 Gets: %+v", s)
	}
	p.Get()
	if s := p.Stats(); s.Misses != 1 {
		t.Fatalf("after 4 Gets: %+v", s)
	}
}

func TestPutResetsLength(t *testing.T) {
	p := mustNew(t, bufpool.Config{InitialSize: 16, MaxIdle: 1})
	b := p.Get()
	b.B = append(b.B, "leftover"...)
	p.Put(b)
	if b2 := p.Get(); b2 != b || len(b2.B) != 0 {
		t.Fatalf("Get after Put: same %v, len %d", b2 == b, len(b2.B))
	}
}

// TestConcurrent hammers one pool from several goroutines; run with -race.
// The counters must add up and the idle count stay within MaxIdle.
func TestConcurrent(t *testing.T) {
	const workers, rounds, maxIdle = 8, 2000, 4
	p := mustNew(t, bufpool.Config{InitialSize: 64, Preallocate: 2, MaxIdle: maxIdle, MaxSize: 256})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var held []*bufpool.Buffer
			for i := range rounds {
				b := p.Get()
				b.B = append(b.B, byte(w), byte(i))
				if i%97 == 0 {
					b.B = append(b.B, make([]byte, 512)...) // grows past MaxSize
				}
				held = append(held, b)
				if len(held) == 3 || i == rounds-1 {
					for _, h := range held {
						if h.B[0] != byte(w) {
							t.Errorf("buffer shared between goroutines")
						}
						p.Put(h)
					}
					held = held[:0]
				}
				if s := p.Stats(); s.Idle > maxIdle {
					t.Errorf("Idle %d over MaxIdle", s.Idle)
				}
			}
		}()
	}
	wg.Wait()
	s := p.Stats()
	if s.Gets != workers*rounds || s.Puts != workers*rounds {
		t.Fatalf("Stats %+v: want %d Gets and Puts", s, workers*rounds)
	}
	// Every buffer taken out came back: the ones kept plus the ones dropped
	// equal the ones allocated plus the preallocated.
	if uint64(s.Idle)+s.Drops != s.Misses+2 {
		t.Fatalf("Stats %+v: Idle + Drops != Misses + Preallocate", s)
	}
}

// TestPutForeignBuffer: a buffer under InitialSize, which the pool did not
// make, is dropped, so that Get keeps its promise of at least InitialSize.
func TestPutForeignBuffer(t *testing.T) {
	p, err := bufpool.New(bufpool.Config{InitialSize: 4096, MaxIdle: 4})
	if err != nil {
		t.Fatal(err)
	}
	p.Put(&bufpool.Buffer{})
	p.Put(&bufpool.Buffer{B: make([]byte, 10, 100)})
	if b := p.Get(); cap(b.B) < 4096 {
		t.Fatalf("Get returned capacity %d after a foreign Put, want at least InitialSize 4096", cap(b.B))
	}
	if s := p.Stats(); s.Drops != 2 {
		t.Errorf("drops %d, want the 2 foreign buffers", s.Drops)
	}
}
