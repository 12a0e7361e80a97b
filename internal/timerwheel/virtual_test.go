package timerwheel

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// These tests drive the wheel with a virtual clock through advance (what Run
// calls on every wake-up), so exact firing ticks can be asserted without
// any real time passing.

// modelTick is the tick at which the model expects a timer scheduled at
// deadline, when the wheel has processed ticks up to elapsed, to fire.
func modelTick(res, elapsed, deadline int64) int64 {
	tick := int64(0)
	if deadline > 0 {
		tick = deadline / res
		if deadline%res != 0 {
			tick++
		}
	}
	tick = min(tick, math.MaxInt64/res)
	return max(tick, elapsed+1)
}

// TestVirtualExactTicks checks, for deadlines on every level of the wheel,
// that a timer fires exactly when the clock reaches its tick: not one
// nanosecond before, and at the first advance at or after it.
func TestVirtualExactTicks(t *testing.T) {
	const ms = int64(time.Millisecond)
	tests := []struct {
		name     string
		res      time.Duration
		slots    int
		deadline int64
	}{
		{"first tick", time.Millisecond, 64, 1},
		{"exact tick", time.Millisecond, 64, 5 * ms},
		{"just after tick", time.Millisecond, 64, 5*ms + 1},
		{"last slot of level 0", time.Millisecond, 64, 63 * ms},
		{"one revolution", time.Millisecond, 64, 64 * ms},
		{"one revolution and a bit", time.Millisecond, 64, 64*ms + 1},
		{"two revolutions", time.Millisecond, 64, 128*ms + 7},
		{"level 2", time.Millisecond, 64, 4096*ms + 3},
		{"level 3 unaligned", time.Millisecond, 64, 300000*ms + 123},
		{"30s idle timeout", time.Millisecond, 256, 30000*ms + 1},
		{"one hour", 10 * time.Millisecond, 64, int64(time.Hour) + 1},
		{"one year", time.Millisecond, 64, int64(365 * 24 * time.Hour)},
		{"nanosecond resolution", time.Nanosecond, 64, 1<<40 + 12345},
		{"max deadline", time.Nanosecond, 64, math.MaxInt64},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := New(tc.res, tc.slots)
			res := int64(tc.res)
			var fired []int64
			var tm Timer
			tm.Init(func(_ *Timer, now int64) { fired = append(fired, now) }, nil)
			w.Schedule(&tm, tc.deadline)
			due := modelTick(res, 0, tc.deadline) * res

			// Approach the tick by halving the remaining distance, which
			// crosses every level boundary on the way.
			for now := int64(0); now < due; now += max((due-now)/2, 1) {
				w.advance(now)
				if len(fired) != 0 {
					t.Fatalf("fired at %d, before its tick %d (deadline %d)", fired[0], due, tc.deadline)
				}
				if now == due-1 {
					break
				}
				if (due-now)/2 == 0 {
					now = due - 2 // next step: due-1
				}
			}
			w.advance(due - 1)
			if len(fired) != 0 {
				t.Fatalf("fired at %d, 1ns before its tick %d", fired[0], due)
			}
			w.advance(due)
			if len(fired) != 1 || fired[0] != due {
				t.Fatalf("fired %v, want once at %d", fired, due)
			}
			if fired[0] < tc.deadline && tc.deadline <= (math.MaxInt64/res)*res {
				t.Fatalf("fired at %d before deadline %d", fired[0], tc.deadline)
			}
			if w.Len() != 0 {
				t.Fatalf("Len = %d after firing, want 0", w.Len())
			}
		})
	}
}

// TestVirtualModel runs random Schedule/Stop/advance sequences, including
// re-arming from callbacks and huge jumps of the clock, against a simple
// model: a timer fires at the first advance whose tick reaches its deadline
// tick, in tick order, and timers of the same tick in scheduling order.
func TestVirtualModel(t *testing.T) {
	tests := []struct {
		name  string
		res   time.Duration
		slots int
		seed  uint64
	}{
		{"1ms x64", time.Millisecond, 64, 1},
		{"1ms x256", time.Millisecond, 256, 2},
		{"10ms x1000", 10 * time.Millisecond, 1000, 3},
		{"1us x64", time.Microsecond, 64, 4},
		{"1ns x64", time.Nanosecond, 64, 5},
		{"1s x65536", time.Second, 1 << 16, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tc.seed, 99))
			res := int64(tc.res)
			w := New(tc.res, tc.slots)
			// scaled returns a random duration below res<<k.
			scaled := func(k int) int64 {
				limit := int64(math.MaxInt64 / 1024)
				if k < 63 && res < limit>>k {
					limit = res << k
				}
				return rng.Int64N(limit)
			}
			// delay returns a random duration spanning many levels.
			delay := func() int64 {
				if rng.IntN(50) == 0 {
					return rng.Int64N(math.MaxInt64 / 4) // far future
				}
				return scaled(rng.IntN(30))
			}
			const n = 300
			timers := make([]Timer, n)
			type arming struct{ tick, seq int64 }
			model := map[int]arming{} // armed timer -> expected tick
			var seq int64
			arm := func(i int, tick int64) { seq++; model[i] = arming{tick, seq} }
			type firing struct {
				idx int
				now int64
			}
			var fired []firing
			var now, elapsed int64
			for i := range timers {
				timers[i].Init(func(tm *Timer, at int64) {
					idx := tm.Arg().(int)
					fired = append(fired, firing{idx, at})
					delete(model, idx)
					if idx%7 == 0 && rng.IntN(2) == 0 { // re-arm from the callback
						d := at + delay()
						if d < 0 { // overflow
							d = math.MaxInt64
						}
						if w.Schedule(tm, d) {
							t.Errorf("re-arm of fired timer %d reported it armed", idx)
						}
						arm(idx, modelTick(res, at/res, d))
					}
				}, i)
			}
			for step := range 30000 {
				switch op := rng.IntN(10); {
				case op < 5:
					i := rng.IntN(n)
					d := now + delay()
					if d < 0 {
						d = math.MaxInt64
					}
					_, armed := model[i]
					if was := w.Schedule(&timers[i], d); was != armed {
						t.Fatalf("step %d: Schedule reported armed=%v, model %v", step, was, armed)
					}
					arm(i, modelTick(res, elapsed, d))
				case op < 7:
					i := rng.IntN(n)
					_, armed := model[i]
					if stopped := w.Stop(&timers[i]); stopped != armed {
						t.Fatalf("step %d: Stop = %v, model armed %v", step, stopped, armed)
					}
					delete(model, i)
				default:
					dt := scaled(rng.IntN(22))
					if rng.IntN(100) == 0 {
						dt = scaled(40)
					}
					if now > math.MaxInt64-dt {
						t.Fatalf("step %d: clock exhausted", step)
					}
					now += dt
					nowTick := now / res
					want := map[int]arming{}
					for i, a := range model {
						if a.tick <= nowTick {
							want[i] = a
						}
					}
					fired = fired[:0]
					w.advance(now)
					elapsed = max(elapsed, nowTick)
					if len(fired) != len(want) {
						t.Fatalf("step %d: advance(%d) fired %d timers, want %d", step, now, len(fired), len(want))
					}
					last := arming{-1, -1}
					for _, f := range fired {
						a, ok := want[f.idx]
						if !ok {
							t.Fatalf("step %d: timer %d fired unexpectedly", step, f.idx)
						}
						if f.now != now {
							t.Fatalf("step %d: callback now = %d, want %d", step, f.now, now)
						}
						if a.tick < last.tick || a.tick == last.tick && a.seq < last.seq {
							t.Fatalf("step %d: timer %d %+v fired after %+v", step, f.idx, a, last)
						}
						last = a
					}
				}
				if w.Len() != len(model) {
					t.Fatalf("step %d: Len = %d, model %d", step, w.Len(), len(model))
				}
			}
		})
	}
}

// TestVirtualManyInOneSlot fires many timers sharing one tick, scheduled
// two levels up and cascaded down into that tick, where the first timer of
// each pair to fire stops its partner, which is due in the same batch.
func TestVirtualManyInOneSlot(t *testing.T) {
	const ms = int64(time.Millisecond)
	w := New(time.Millisecond, 64)
	const n = 10000
	timers := make([]Timer, n)
	var fired []int
	for i := range timers {
		timers[i].Init(func(tm *Timer, _ int64) {
			idx := tm.Arg().(int)
			fired = append(fired, idx)
			if !w.Stop(&timers[(idx+n/2)%n]) {
				t.Errorf("timer %d: Stop of its due partner returned false", idx)
			}
		}, i)
	}
	// All due at tick 5000 (level 2 seen from tick 0).
	for i := range timers {
		w.Schedule(&timers[i], 5000*ms-int64(i%1000))
	}
	w.advance(4999 * ms)
	if len(fired) != 0 {
		t.Fatalf("%d fired early", len(fired))
	}
	w.advance(5000 * ms)
	if len(fired) != n/2 || w.Len() != 0 {
		t.Fatalf("fired %d, Len %d; want %d, 0", len(fired), w.Len(), n/2)
	}
	seen := map[int]bool{}
	for _, idx := range fired {
		seen[idx%(n/2)] = true
	}
	if len(seen) != n/2 {
		t.Fatalf("%d pairs fired, want %d (exactly one timer of each pair)", len(seen), n/2)
	}
}
