package timerwheel

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// The project figure: 100,000 connections, each with an idle timeout pushed
// forward on every frame. Only the timer machinery is measured (no
// sockets): CPU per reset (ns/op) and heap per connection (B/conn), for the
// wheel used lazily, the wheel used eagerly, and one time.AfterFunc timer
// per connection.
//
//	go test -run='^$' -bench=. -benchmem ./internal/timerwheel/
//
// Sub-benchmarks of BenchmarkIdleReset (one wheel of 1 ms x 256 slots,
// idle timeout 30 s, connections visited round robin):
//
//	wheel-lazy          a frame stores w.CoarseNow() in the connection; the
//	                    watchdog armed at +30s is not touched and nothing
//	                    fires during the run. Run is running (and ticking,
//	                    since the coarse clock is in use).
//	wheel-lazy-precise  the same, stamping with the precise w.Now().
//	wheel-lazy-fire     wheel-lazy with a virtual clock advanced by every
//	                    frame so that each connection sees 10 frames per
//	                    timeout: watchdogs keep firing and re-arming during
//	                    the run. The benchmark goroutine plays Run's part
//	                    (refreshing the coarse clock and processing each
//	                    tick), so ns/op includes the amortized fire + re-arm
//	                    work, reported as rearms/op.
//	wheel-schedule      a frame calls w.Schedule(&c.idle, w.CoarseNow()+30s).
//	afterfunc           one time.AfterFunc per connection; a frame calls
//	                    t.Reset(30s).
//	*-parallel          the same from GOMAXPROCS goroutines.
//
// B/conn is the live heap after building the 100k armed connections (each
// connection struct holds only its timer state, plus a slice slot), GC'd
// before and after.

const (
	benchConns   = 100_000
	benchTimeout = int64(30 * time.Second)
	benchRes     = time.Millisecond
	benchSlots   = 256
	// frames each connection receives per idle timeout in wheel-lazy-fire.
	benchFramesPerTimeout = 10
)

// wheelConn is the timer state a connection embeds with the wheel.
type wheelConn struct {
	idle Timer
	last atomic.Int64 // wheel clock of the last frame
}

// afConn is the timer state of a connection with one time.AfterFunc.
type afConn struct {
	t *time.Timer
}

// heapPerConn returns the live heap retained by build, per connection.
func heapPerConn(build func()) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	build()
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / benchConns
}

// wheelSetup builds a wheel with benchConns connections whose lazy
// watchdog is armed at now+timeout; the watchdogs count re-arms and idle
// connections in *rearms and *idles.
func wheelSetup(b *testing.B, rearms, idles *int64) (*Wheel, []*wheelConn) {
	var w *Wheel
	var conns []*wheelConn
	perConn := heapPerConn(func() {
		w = New(benchRes, benchSlots)
		f := idleCallback(w, rearms, idles) // shared by all connections
		conns = make([]*wheelConn, benchConns)
		now := w.Now()
		for i := range conns {
			c := &wheelConn{}
			c.last.Store(now)
			c.idle.Init(f, c)
			w.Schedule(&c.idle, now+benchTimeout)
			conns[i] = c
		}
	})
	b.Cleanup(func() { b.ReportMetric(perConn, "B/conn") }) // after ResetTimer
	return w, conns
}

// runWheel runs w until the benchmark ends.
func runWheel(b *testing.B, w *Wheel) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); w.Run(stop) }()
	b.Cleanup(func() { close(stop); <-done })
}

// idleCallback is the lazy watchdog: re-arm at last+timeout if there was
// activity since it was armed, else treat the connection as idle (here:
// re-arm a full timeout, as if a new connection took its place).
func idleCallback(w *Wheel, rearms, idles *int64) func(*Timer, int64) {
	return func(t *Timer, now int64) {
		c := t.Arg().(*wheelConn)
		if d := c.last.Load() + benchTimeout; d > now {
			*rearms++
			w.Schedule(t, d)
			return
		}
		*idles++
		c.last.Store(now)
		w.Schedule(t, now+benchTimeout)
	}
}

func BenchmarkIdleReset(b *testing.B) {
	b.Run("wheel-lazy", benchWheelLazy)
	b.Run("wheel-lazy-precise", benchWheelLazyPrecise)
	b.Run("wheel-lazy-fire", benchWheelLazyFire)
	b.Run("wheel-schedule", benchWheelSchedule)
	b.Run("afterfunc", benchAfterFunc)
	b.Run("wheel-lazy-parallel", benchWheelLazyParallel)
	b.Run("wheel-schedule-parallel", benchWheelScheduleParallel)
	b.Run("afterfunc-parallel", benchAfterFuncParallel)
}

func benchWheelLazy(b *testing.B) {
	var rearms, idles int64
	w, conns := wheelSetup(b, &rearms, &idles)
	runWheel(b, w)
	b.ResetTimer()
	j := 0
	for range b.N {
		conns[j].last.Store(w.CoarseNow())
		if j++; j == len(conns) {
			j = 0
		}
	}
}

func benchWheelLazyPrecise(b *testing.B) {
	var rearms, idles int64
	w, conns := wheelSetup(b, &rearms, &idles)
	runWheel(b, w)
	b.ResetTimer()
	j := 0
	for range b.N {
		conns[j].last.Store(w.Now())
		if j++; j == len(conns) {
			j = 0
		}
	}
}

func benchWheelLazyFire(b *testing.B) {
	var rearms, idles int64
	w, conns := wheelSetup(b, &rearms, &idles)
	// No Run: the benchmark goroutine drives the wheel with a virtual
	// clock that starts at the real one, doing at each virtual tick what
	// Run does when it is ticking.
	res := int64(benchRes)
	dt := benchTimeout / (benchFramesPerTimeout * benchConns)
	vnow := w.Now()
	nextTick := (vnow/res + 1) * res
	w.raiseCoarse(vnow)
	w.ticking.Store(true)
	j := 0
	frame := func() {
		vnow += dt
		conns[j].last.Store(w.CoarseNow())
		if j++; j == len(conns) {
			j = 0
		}
		if vnow >= nextTick {
			w.raiseCoarse(vnow)
			w.used.Swap(false)
			w.advance(vnow)
			nextTick = (vnow/res + 1) * res
		}
	}
	// Warm up for two timeouts so that deadlines are spread as in a
	// steady state instead of all due at the initial +30s.
	for range 2 * benchFramesPerTimeout * benchConns {
		frame()
	}
	rearms, idles = 0, 0
	b.ResetTimer()
	for range b.N {
		frame()
	}
	b.StopTimer()
	b.ReportMetric(float64(rearms)/float64(b.N), "rearms/op")
	if idles != 0 {
		b.Fatalf("%d connections went idle; the frame rate should keep all alive", idles)
	}
	if w.Len() != benchConns {
		b.Fatalf("Len = %d, want %d", w.Len(), benchConns)
	}
}

func benchWheelSchedule(b *testing.B) {
	var rearms, idles int64
	w, conns := wheelSetup(b, &rearms, &idles)
	runWheel(b, w)
	b.ResetTimer()
	j := 0
	for range b.N {
		w.Schedule(&conns[j].idle, w.CoarseNow()+benchTimeout)
		if j++; j == len(conns) {
			j = 0
		}
	}
}

// afSetup builds benchConns connections with one AfterFunc timer each.
func afSetup(b *testing.B) []*afConn {
	var conns []*afConn
	var idles atomic.Int64
	perConn := heapPerConn(func() {
		conns = make([]*afConn, benchConns)
		for i := range conns {
			c := &afConn{}
			c.t = time.AfterFunc(time.Duration(benchTimeout), func() {
				idles.Add(1)
				_ = c // what an engine's callback would need
			})
			conns[i] = c
		}
	})
	b.Cleanup(func() {
		b.ReportMetric(perConn, "B/conn") // after ResetTimer
		for _, c := range conns {
			c.t.Stop()
		}
	})
	return conns
}

func benchAfterFunc(b *testing.B) {
	conns := afSetup(b)
	b.ResetTimer()
	j := 0
	for range b.N {
		conns[j].t.Reset(time.Duration(benchTimeout))
		if j++; j == len(conns) {
			j = 0
		}
	}
}

// parallelConns runs body over the connections from GOMAXPROCS goroutines,
// each walking its own stride of the connections.
func parallelConns(b *testing.B, body func(j int)) {
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		j := int(next.Add(7919)) % benchConns
		for pb.Next() {
			body(j)
			if j++; j == benchConns {
				j = 0
			}
		}
	})
}

func benchWheelLazyParallel(b *testing.B) {
	var rearms, idles int64
	w, conns := wheelSetup(b, &rearms, &idles)
	runWheel(b, w)
	parallelConns(b, func(j int) { conns[j].last.Store(w.CoarseNow()) })
}

func benchWheelScheduleParallel(b *testing.B) {
	var rearms, idles int64
	w, conns := wheelSetup(b, &rearms, &idles)
	runWheel(b, w)
	parallelConns(b, func(j int) { w.Schedule(&conns[j].idle, w.CoarseNow()+benchTimeout) })
}

func benchAfterFuncParallel(b *testing.B) {
	conns := afSetup(b)
	parallelConns(b, func(j int) { conns[j].t.Reset(time.Duration(benchTimeout)) })
}

// BenchmarkClock is the cost of the clock reads a lazy reset may use.
func BenchmarkClock(b *testing.B) {
	b.Run("Now", func(b *testing.B) {
		w := New(benchRes, benchSlots)
		var sink int64
		for range b.N {
			sink += w.Now()
		}
		_ = sink
	})
	b.Run("CoarseNow", func(b *testing.B) {
		w := New(benchRes, benchSlots)
		runWheel(b, w)
		var sink int64
		for range b.N {
			sink += w.CoarseNow()
		}
		_ = sink
	})
}
