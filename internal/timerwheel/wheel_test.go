package timerwheel

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// guard bounds every wait: it only turns a hang into a failure.
const guard = 5 * time.Second

// startRun runs w in a goroutine and returns a function that stops Run and
// waits for it to return. The stop function also runs at cleanup.
func startRun(t *testing.T, w *Wheel) (stop func()) {
	t.Helper()
	stopc := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(stopc)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(stopc)
			select {
			case <-done:
			case <-time.After(guard):
				t.Errorf("Run did not return within %v of stop", guard)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// recv waits for a value from c, failing after guard.
func recv[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(guard):
		t.Fatalf("timed out after %v waiting for %s", guard, what)
		panic("unreachable")
	}
}

type fireEvent struct {
	arg      any
	now      int64 // callback argument
	clock    int64 // w.Now() inside the callback
	deadline int64
}

// newRecorder returns a callback that sends each firing on a channel. The
// deadline is read from *deadlines[arg], set before Schedule.
func newRecorder(w *Wheel, deadlines map[any]int64, mu *sync.Mutex) (func(*Timer, int64), chan fireEvent) {
	c := make(chan fireEvent, 1024)
	return func(t *Timer, now int64) {
		mu.Lock()
		d := deadlines[t.Arg()]
		mu.Unlock()
		c <- fireEvent{t.Arg(), now, w.Now(), d}
	}, c
}

func TestFiresNotEarly(t *testing.T) {
	tests := []struct {
		name  string
		res   time.Duration
		slots int
		after time.Duration
	}{
		{"past deadline", time.Millisecond, 64, -time.Second},
		{"now", time.Millisecond, 64, 0},
		{"sub-tick", time.Millisecond, 64, 300 * time.Microsecond},
		{"few ticks", time.Millisecond, 64, 5 * time.Millisecond},
		{"level 1", time.Millisecond, 64, 70 * time.Millisecond},          // beyond one revolution (64ms)
		{"two revolutions", time.Millisecond, 64, 150 * time.Millisecond}, // cascades twice
		{"coarse", 20 * time.Millisecond, 64, 50 * time.Millisecond},
		{"fine", 100 * time.Microsecond, 64, 30 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := New(tc.res, tc.slots)
			startRun(t, w)
			var mu sync.Mutex
			deadlines := map[any]int64{}
			f, c := newRecorder(w, deadlines, &mu)
			var tm Timer
			tm.Init(f, 1)
			d := w.Now() + int64(tc.after)
			mu.Lock()
			deadlines[1] = d
			mu.Unlock()
			w.Schedule(&tm, d)
			ev := recv(t, c, "timer")
			if ev.now < d || ev.clock < d {
				t.Fatalf("fired early: now=%d clock=%d deadline=%d", ev.now, ev.clock, d)
			}
			if w.Len() != 0 {
				t.Fatalf("Len = %d after firing", w.Len())
			}
		})
	}
}

func TestFiringOrder(t *testing.T) {
	w := New(time.Millisecond, 64)
	startRun(t, w)
	const n = 40
	order := make(chan int, n)
	timers := make([]Timer, n)
	base := w.Now() + int64(20*time.Millisecond)
	for _, i := range rand.New(rand.NewPCG(7, 7)).Perm(n) { // scheduled out of order
		timers[i].Init(func(t *Timer, _ int64) { order <- t.Arg().(int) }, i)
		w.Schedule(&timers[i], base+int64(i)*int64(3*time.Millisecond))
	}
	for want := range n {
		if got := recv(t, order, "firing"); got != want {
			t.Fatalf("fired timer %d, want %d (deadline order)", got, want)
		}
	}
}

// TestStopAndReschedule uses a sentinel timer due after the timer under
// test: timers fire in deadline order, so once the sentinel fired, the
// timer under test would have fired if it was going to.
func TestStopAndReschedule(t *testing.T) {
	ms := int64(time.Millisecond)
	tests := []struct {
		name       string
		first      int64 // first deadline, relative
		second     int64 // re-Schedule deadline, relative; 0: none
		stop       bool
		wantFire   bool
		wantStop   bool // Stop's result
		wantArmed  bool // re-Schedule's result
		sentinelAt int64
	}{
		{name: "stop before fire", first: 20 * ms, stop: true, wantStop: true, sentinelAt: 60 * ms},
		{name: "stop far timer", first: 3600_000 * ms, stop: true, wantStop: true, sentinelAt: 10 * ms},
		{name: "move earlier", first: 3600_000 * ms, second: 10 * ms, wantFire: true, wantArmed: true, sentinelAt: 60 * ms},
		{name: "move later", first: 10 * ms, second: 80 * ms, wantFire: true, wantArmed: true, sentinelAt: 120 * ms},
		{name: "move later then stop", first: 10 * ms, second: 80 * ms, stop: true, wantArmed: true, wantStop: true, sentinelAt: 120 * ms},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := New(time.Millisecond, 64)
			startRun(t, w)
			fired := make(chan int64, 2)
			sentinel := make(chan struct{})
			var tm, sen Timer
			tm.Init(func(_ *Timer, now int64) { fired <- now }, nil)
			sen.Init(func(*Timer, int64) { close(sentinel) }, nil)
			start := w.Now()
			w.Schedule(&tm, start+tc.first)
			deadline := start + tc.first
			if tc.second != 0 {
				deadline = start + tc.second
				if got := w.Schedule(&tm, deadline); got != tc.wantArmed {
					t.Fatalf("re-Schedule returned %v, want %v", got, tc.wantArmed)
				}
			}
			if tc.stop {
				if got := w.Stop(&tm); got != tc.wantStop {
					t.Fatalf("Stop = %v, want %v", got, tc.wantStop)
				}
				if w.Stop(&tm) {
					t.Fatal("second Stop returned true")
				}
			}
			w.Schedule(&sen, start+tc.sentinelAt)
			recv(t, sentinel, "sentinel")
			select {
			case now := <-fired:
				if !tc.wantFire {
					t.Fatal("stopped timer fired")
				}
				if now < deadline {
					t.Fatalf("fired at %d before its (moved) deadline %d", now, deadline)
				}
			default:
				if tc.wantFire {
					t.Fatal("timer did not fire before the later sentinel")
				}
			}
			if w.Len() != 0 {
				t.Fatalf("Len = %d, want 0", w.Len())
			}
		})
	}
}

func TestRearmFromCallback(t *testing.T) {
	w := New(time.Millisecond, 64)
	startRun(t, w)
	const rounds = 5
	done := make(chan int64)
	var count int
	var last int64
	var tm Timer
	tm.Init(func(t *Timer, now int64) {
		if now < last {
			panic("fired before its re-armed deadline")
		}
		count++
		if count == rounds {
			done <- now
			return
		}
		last = now + int64(3*time.Millisecond)
		if w.Schedule(t, last) {
			panic("a firing timer must not be reported armed")
		}
	}, nil)
	w.Schedule(&tm, w.Now()+int64(time.Millisecond))
	recv(t, done, "fifth firing")
	if w.Len() != 0 || w.Stop(&tm) {
		t.Fatalf("timer still armed after the last round (Len %d)", w.Len())
	}
}

func TestStopFromOtherCallback(t *testing.T) {
	ms := int64(time.Millisecond)
	w := New(time.Millisecond, 64)
	startRun(t, w)
	var a, b, sen Timer
	stopped := make(chan bool, 1)
	bFired := make(chan struct{}, 1)
	sentinel := make(chan struct{})
	a.Init(func(*Timer, int64) { stopped <- w.Stop(&b) }, nil)
	b.Init(func(*Timer, int64) { bFired <- struct{}{} }, nil)
	sen.Init(func(*Timer, int64) { close(sentinel) }, nil)
	start := w.Now()
	w.Schedule(&a, start+10*ms)
	w.Schedule(&b, start+10*ms+1) // same tick or later: collected after a
	w.Schedule(&sen, start+40*ms)
	if !recv(t, stopped, "a's callback") {
		t.Fatal("Stop(b) from a's callback returned false")
	}
	recv(t, sentinel, "sentinel")
	select {
	case <-bFired:
		t.Fatal("b fired although a stopped it")
	default:
	}
}

// TestStopOwnTimerWhileFiring documents the race semantics: inside (or
// concurrently with) its own callback, Stop reports false.
func TestStopOwnTimerWhileFiring(t *testing.T) {
	w := New(time.Millisecond, 64)
	startRun(t, w)
	res := make(chan bool)
	var tm Timer
	tm.Init(func(t *Timer, _ int64) { res <- w.Stop(t) }, nil)
	w.Schedule(&tm, 0)
	if recv(t, res, "callback") {
		t.Fatal("Stop of the firing timer returned true")
	}
}

func TestManyTimersRealClock(t *testing.T) {
	w := New(time.Millisecond, 64)
	startRun(t, w)
	const n = 20000
	var wg sync.WaitGroup
	wg.Add(n)
	var early atomic.Int64
	timers := make([]Timer, n)
	deadline := w.Now() + int64(100*time.Millisecond) // > one revolution
	for i := range timers {
		d := deadline + int64(i%3)*int64(time.Microsecond) // one slot
		timers[i].Init(func(_ *Timer, now int64) {
			if now < d {
				early.Add(1)
			}
			wg.Done()
		}, nil)
		w.Schedule(&timers[i], d)
	}
	waitGroup(t, &wg)
	if early.Load() != 0 {
		t.Fatalf("%d timers fired early", early.Load())
	}
	if w.Len() != 0 {
		t.Fatalf("Len = %d", w.Len())
	}
}

func waitGroup(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	recv(t, done, "WaitGroup")
}

// TestConcurrentScheduleStop hammers shared timers from many goroutines
// while Run fires them (run with -race). Every arming must end exactly once:
// fired, stopped (Stop returned true) or replaced (Schedule returned true).
func TestConcurrentScheduleStop(t *testing.T) {
	w := New(100*time.Microsecond, 64)
	stop := startRun(t, w)
	const (
		goroutines = 8
		ntimers    = 256
		ops        = 3000
	)
	type counted struct {
		tm                           Timer
		arms, fires, stops, replaced atomic.Int64
		rearmBudget                  atomic.Int64
	}
	timers := make([]counted, ntimers)
	schedule := func(c *counted, d int64) {
		c.arms.Add(1)
		if w.Schedule(&c.tm, d) {
			c.replaced.Add(1)
		}
	}
	for i := range timers {
		c := &timers[i]
		c.rearmBudget.Store(3)
		c.tm.Init(func(_ *Timer, now int64) {
			c.fires.Add(1)
			if c.rearmBudget.Add(-1) >= 0 {
				schedule(c, now+int64(time.Millisecond))
			}
		}, nil)
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			// A private timer waited for now and then makes Run interleave
			// with the workers even with GOMAXPROCS=1.
			var private Timer
			fired := make(chan struct{}, 1)
			private.Init(func(*Timer, int64) { fired <- struct{}{} }, nil)
			for op := range ops {
				if op%300 == 0 {
					w.Schedule(&private, w.Now()+rng.Int64N(int64(time.Millisecond)))
					select {
					case <-fired:
					case <-time.After(guard):
						t.Error("private timer did not fire")
						return
					}
				}
				c := &timers[rng.IntN(ntimers)]
				switch rng.IntN(3) {
				case 0, 1:
					schedule(c, w.Now()+rng.Int64N(int64(5*time.Millisecond)))
				default:
					if w.Stop(&c.tm) {
						c.stops.Add(1)
					}
				}
				_ = w.Len()
			}
		}()
	}
	waitGroup(t, &wg)
	stop() // Run has returned: no callback is running any more
	var fires int64
	for i := range timers {
		c := &timers[i]
		if w.Stop(&c.tm) {
			c.stops.Add(1)
		}
		if a, e := c.arms.Load(), c.fires.Load()+c.stops.Load()+c.replaced.Load(); a != e {
			t.Fatalf("timer %d: %d armings, %d fired + %d stopped + %d replaced",
				i, a, c.fires.Load(), c.stops.Load(), c.replaced.Load())
		}
		fires += c.fires.Load()
	}
	if w.Len() != 0 {
		t.Fatalf("Len = %d after stopping everything", w.Len())
	}
	t.Logf("%d shared timer firings", fires)
}

func TestRunStopsWithoutLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	w := New(time.Millisecond, 64)
	var far, soon Timer
	far.Init(func(*Timer, int64) {}, nil)
	fired := make(chan struct{})
	soon.Init(func(*Timer, int64) { close(fired) }, nil)
	w.Schedule(&far, w.Now()+int64(time.Hour))
	for range 3 { // Run can be restarted; each stop must return
		stopc := make(chan struct{})
		done := make(chan struct{})
		go func() { defer close(done); w.Run(stopc) }()
		close(stopc)
		recv(t, done, "Run to return")
	}
	// Run also returns while timers are due and after firing some.
	stopc := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); w.Run(stopc) }()
	w.Schedule(&soon, 0)
	recv(t, fired, "soon timer")
	close(stopc)
	recv(t, done, "Run to return")
	if !w.Stop(&far) {
		t.Fatal("far timer lost while Run was stopped")
	}
	// The goroutines above have returned; give them a moment to be reaped.
	end := time.Now().Add(guard)
	for runtime.NumGoroutine() > before && time.Now().Before(end) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines before, %d after", before, n)
	}
}

// TestIdleWheelSleeps checks through the onSleep hook that Run blocks
// without a deadline when the wheel is empty, sleeps until the earliest
// slot otherwise, and is woken only when an earlier deadline is scheduled.
func TestIdleWheelSleeps(t *testing.T) {
	w := New(time.Millisecond, 64)
	sleeps := make(chan time.Duration, 100)
	w.onSleep = func(d time.Duration) { sleeps <- d }
	startRun(t, w)

	if d := recv(t, sleeps, "first sleep"); d >= 0 {
		t.Fatalf("empty wheel sleeps %v, want no deadline", d)
	}
	var hour, twoHours, soon Timer
	nop := func(*Timer, int64) {}
	hour.Init(nop, nil)
	twoHours.Init(nop, nil)
	w.Schedule(&hour, w.Now()+int64(time.Hour)) // earlier than "never": wakes Run
	// Run sleeps until the timer's slot is cascaded (a level-3 slot spans
	// 4.4 min at 1ms x 64), so a bit less than the hour.
	if d := recv(t, sleeps, "sleep after scheduling"); d < 50*time.Minute || d > time.Hour {
		t.Fatalf("sleeps %v, want close to an hour", d)
	}
	wakeups := w.wakeups.Load()
	w.Schedule(&twoHours, w.Now()+int64(2*time.Hour)) // later: no wake-up
	w.Stop(&twoHours)                                 // stops never wake Run
	for range 1000 {
		w.Schedule(&twoHours, w.Now()+int64(2*time.Hour))
	}
	// Observation window: an idle wheel must not tick.
	time.Sleep(50 * time.Millisecond)
	if got := w.wakeups.Load(); got != wakeups {
		t.Fatalf("idle wheel woke up %d times in 50ms", got-wakeups)
	}
	select {
	case d := <-sleeps:
		t.Fatalf("unexpected sleep %v", d)
	default:
	}

	// A timer 30 ticks away costs a handful of wake-ups, not 30.
	fired := make(chan struct{})
	soon.Init(func(*Timer, int64) { close(fired) }, nil)
	w.Schedule(&soon, w.Now()+int64(30*time.Millisecond))
	recv(t, fired, "soon timer")
	if got := w.wakeups.Load() - wakeups; got > 4 {
		t.Fatalf("%d wake-ups for one timer 30 ticks away", got)
	}
}

func TestMisuse(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	w1, w2 := New(time.Millisecond, 64), New(time.Millisecond, 64)
	var tm, nocb Timer
	tm.Init(func(*Timer, int64) {}, nil)
	if w2.Stop(&tm) {
		t.Fatal("Stop of a never-scheduled timer returned true")
	}
	w1.Schedule(&tm, w1.Now()+int64(time.Hour))
	mustPanic("Schedule on a second wheel", func() { w2.Schedule(&tm, 0) })
	mustPanic("Stop on a second wheel", func() { w2.Stop(&tm) })
	mustPanic("Schedule without callback", func() { w1.Schedule(&nocb, 0) })
	mustPanic("zero resolution", func() { New(0, 64) })
	if !w1.Stop(&tm) {
		t.Fatal("Stop after misuse returned false")
	}
}

func TestNewShapes(t *testing.T) {
	tests := []struct {
		res        time.Duration
		slots      int
		wantSlots  int
		wantLevels int
	}{
		{time.Millisecond, 0, 64, 8},         // 44-bit ticks / 6 bits per level
		{time.Millisecond, 100, 128, 7},      // 44 / 7
		{time.Millisecond, 256, 256, 6},      // 44 / 8
		{time.Nanosecond, 64, 64, 11},        // 63 / 6
		{time.Second, 1 << 20, 1 << 16, 3},   // 34 / 16
		{10 * time.Millisecond, 512, 512, 5}, // 40 / 9
	}
	for _, tc := range tests {
		w := New(tc.res, tc.slots)
		if got := len(w.levels[0].slots); got != tc.wantSlots {
			t.Errorf("New(%v, %d): %d slots, want %d", tc.res, tc.slots, got, tc.wantSlots)
		}
		if got := len(w.levels); got != tc.wantLevels {
			t.Errorf("New(%v, %d): %d levels, want %d", tc.res, tc.slots, got, tc.wantLevels)
		}
		if w.Resolution() != tc.res {
			t.Errorf("Resolution = %v", w.Resolution())
		}
	}
	w := New(time.Millisecond, 64)
	a := w.Now()
	if b := w.Now(); b < a || a < 0 {
		t.Fatalf("clock not monotonic: %d then %d", a, b)
	}
}

// TestCoarseClock checks CoarseNow's guarantees (monotonic, never ahead of
// Now, refreshed while used) and that Run ticks only while it is used.
func TestCoarseClock(t *testing.T) {
	const res = time.Millisecond
	w := New(res, 64)

	// Without Run, CoarseNow is the precise clock.
	a := w.Now()
	c := w.CoarseNow()
	if b := w.Now(); c < a || c > b {
		t.Fatalf("CoarseNow without Run = %d, want within [%d, %d]", c, a, b)
	}

	sleeps := make(chan time.Duration, 1<<14)
	w.onSleep = func(d time.Duration) {
		select {
		case sleeps <- d:
		default:
		}
	}
	startRun(t, w)
	waitSleep := func(what string, ok func(time.Duration) bool) {
		t.Helper()
		for {
			if d := recv(t, sleeps, what); ok(d) {
				return
			}
		}
	}
	waitSleep("idle sleep", func(d time.Duration) bool { return d < 0 })

	// Using the coarse clock makes Run tick, and the clock advance.
	start := w.CoarseNow()
	waitSleep("ticking sleep", func(d time.Duration) bool { return d > 0 && d <= res })
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			end := time.Now().Add(guard)
			last := int64(0)
			for time.Now().Before(end) {
				c := w.CoarseNow()
				now := w.Now()
				switch {
				case c < last:
					errs <- "CoarseNow went backwards"
					return
				case c > now:
					errs <- "CoarseNow ahead of Now"
					return
				case now-c > int64(time.Second):
					errs <- "CoarseNow lags Now by more than 1s"
					return
				case c >= start+20*int64(res):
					return // refreshed 20 ticks' worth
				}
				last = c
			}
			errs <- "CoarseNow did not advance 20 ticks"
		}()
	}
	waitGroup(t, &wg)
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}

	// Once nobody reads it, Run stops ticking and sleeps without deadline.
	// (A sleep without deadline may also have been recorded earlier, if the
	// readers were descheduled for a whole tick, so wait for one after
	// which Run stays asleep for an observation window.)
	for attempt := 0; ; attempt++ {
		if attempt == 20 {
			t.Fatal("Run keeps waking up after the coarse clock went unused")
		}
		waitSleep("idle sleep after use", func(d time.Duration) bool { return d < 0 })
		wakeups := w.wakeups.Load()
		time.Sleep(30 * time.Millisecond) // observation window
		if w.wakeups.Load() == wakeups {
			break
		}
	}
	if w.ticking.Load() {
		t.Fatal("still ticking while idle")
	}
	if c, now := w.CoarseNow(), w.Now(); c > now || c < start {
		t.Fatalf("CoarseNow after idle = %d, want within [%d, %d]", c, start, now)
	}
}
