// Package timerwheel implements the engine's timers: a hierarchical hashed
// timing wheel driven by one goroutine.
//
// # Design
//
// The wheel counts time in ticks of a fixed resolution on its own monotonic
// clock (see [Wheel.Now]). It has several levels of 2^k slots each (k is
// chosen by [New]); a slot of level L covers 2^(k*L) ticks, and enough levels
// exist to cover every representable deadline, so nothing ever needs a
// "rounds" counter. A timer lives in the slot given by the highest tick digit
// in which its deadline differs from the wheel's current tick. When the wheel
// reaches the start of a slot of a level above 0, the slot's timers are
// re-inserted ("cascaded") into lower levels; when it reaches a timer's own
// tick, the timer fires. Each timer is cascaded at most once per level, so:
//
//   - Schedule and Stop are O(1): an intrusive doubly-linked list
//     insertion/removal plus a bitmap update, under the wheel's mutex.
//   - Processing a tick costs O(levels × slots/64) bitmap words to find the
//     next non-empty slot, plus O(1) per timer that is due or cascaded.
//     Timers that are not due are never visited at a tick (unlike a
//     single-level wheel with rounds, which rescans every entry of the slot
//     on every revolution).
//   - Run sleeps until the tick of the next non-empty slot; an empty or idle
//     wheel does not wake up. (A slot of a higher level is cascaded when it
//     starts, so a far timer costs at most one extra wake-up per level.)
//
// # Clocks
//
// [Wheel.Now] reads the monotonic clock. [Wheel.CoarseNow] is a tick-grained
// copy of it that costs a few atomic loads instead of a clock read; Run
// refreshes it on every tick only while it is being called, so it adds no
// wake-ups to an idle wheel.
//
// # Lazy reset
//
// Idle timeouts that are pushed forward on every frame should not call
// Schedule per frame. Store the activity time instead and let the watchdog
// re-arm itself when it fires (one atomic store per frame, about one wheel
// operation per timeout period):
//
//	type conn struct {
//		idle timerwheel.Timer
//		last atomic.Int64 // w.CoarseNow() of the last frame
//	}
//
//	// per frame:
//	c.last.Store(w.CoarseNow())
//
//	// once, when the connection is set up:
//	c.idle.Init(onIdle, c)
//	w.Schedule(&c.idle, w.Now()+int64(timeout))
//
//	func onIdle(t *timerwheel.Timer, now int64) {
//		c := t.Arg().(*conn)
//		if d := c.last.Load() + int64(timeout); d > now {
//			w.Schedule(t, d) // activity since arming: re-arm
//			return
//		}
//		c.closeIdle()
//	}
package timerwheel

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// Timer is an entry of a [Wheel]. It is meant to be embedded in the
// structure it times (a connection embeds its watchdogs) or allocated once
// per user timer; the wheel never allocates per timer.
//
// The zero value is an unarmed timer without a callback; call [Timer.Init]
// before the first Schedule. A Timer is bound to the first Wheel it is
// scheduled on and must only be used with that wheel afterwards (using it
// with another wheel panics). A Timer must not be copied after its first
// Schedule.
type Timer struct {
	f   func(t *Timer, now int64)
	arg any
	w   atomic.Pointer[Wheel] // owner, bound at the first Schedule

	// Guarded by the owner wheel's mu.
	next, prev *Timer
	when       int64 // deadline in ticks
	slot       int32 // slot index within level
	level      int8  // level index, or dueLevel when in the due list
	armed      bool
}

// dueLevel marks a timer that has been collected as due and waits in the
// wheel's due list for its callback to be called.
const dueLevel = -1

// Init sets the callback f and an argument returned by [Timer.Arg]. f is
// called on the goroutine running [Wheel.Run], outside of any wheel lock,
// with t and the wheel clock reading taken when the tick was processed
// (now >= the deadline passed to Schedule). Passing the owner as arg with a
// top-level f avoids allocating a closure per timer.
//
// Init must not be called while t is armed or concurrently with Schedule,
// Stop or a running callback of t; typically it is called once, before the
// first Schedule.
func (t *Timer) Init(f func(t *Timer, now int64), arg any) {
	t.f = f
	t.arg = arg
}

// Arg returns the argument given to [Timer.Init]. It is safe to call from
// any goroutine as long as Init is not running concurrently.
func (t *Timer) Arg() any { return t.arg }

// list is an intrusive FIFO list of timers.
type list struct {
	head, tail *Timer
}

func (l *list) pushBack(t *Timer) {
	t.prev, t.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = t
	} else {
		l.head = t
	}
	l.tail = t
}

func (l *list) remove(t *Timer) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		l.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		l.tail = t.prev
	}
	t.next, t.prev = nil, nil
}

// level is one ring of the wheel.
type level struct {
	slots    []list
	occupied []uint64 // bit s set iff slots[s] is not empty
}

// nextOccupied returns the first non-empty slot >= from, or -1.
func (l *level) nextOccupied(from int) int {
	i := from >> 6
	if i >= len(l.occupied) {
		return -1
	}
	word := l.occupied[i] &^ (1<<(uint(from)&63) - 1)
	for {
		if word != 0 {
			return i<<6 + bits.TrailingZeros64(word)
		}
		i++
		if i == len(l.occupied) {
			return -1
		}
		word = l.occupied[i]
	}
}

// Wheel is a hierarchical timing wheel. Schedule, Stop, Now, CoarseNow and
// Len are safe for concurrent use; one goroutine calls Run, which fires the
// callbacks.
// The zero value is not usable; create wheels with [New].
type Wheel struct {
	res     int64 // resolution in ns
	bits    uint  // log2(slots per level)
	mask    uint64
	maxTick int64
	epoch   time.Time

	_       [64]byte     // keep the coarse clock off the lines of mu and n
	coarse  atomic.Int64 // coarse clock, only raised
	ticking atomic.Bool  // Run refreshes coarse on every tick
	used    atomic.Bool  // CoarseNow was called since Run's last refresh
	kicked  atomic.Bool  // CoarseNow asked Run to start ticking
	_       [64]byte

	n       atomic.Int64  // armed timers
	wake    chan struct{} // to Run: an earlier tick was armed, or kicked
	running atomic.Bool

	mu      sync.Mutex
	elapsed int64 // last processed tick: all timers with when <= elapsed are due or fired
	wakeAt  int64 // tick Run sleeps until; 0 while Run is awake or not running
	levels  []level
	due     list // timers collected as due, in firing order

	// Test hooks.
	wakeups atomic.Int64          // iterations of the Run loop
	onSleep func(d time.Duration) // called by Run before blocking; d < 0: no deadline
}

// New returns a wheel with the given tick resolution and slots per level.
// slots is rounded up to a power of two and clamped to [64, 65536]; the
// number of levels is derived so that any deadline up to math.MaxInt64 ns
// fits (for example 8 levels of 64 slots at 1 ms). More slots per level
// means fewer cascades and fewer levels to scan, at 16 bytes per slot and
// level (4 KiB per level at 256 slots).
// It panics if resolution <= 0.
//
// Timers fire no earlier than their deadline and normally less than one
// resolution after it, plus Go timer and scheduling latency and the time
// taken by callbacks that run before them.
func New(resolution time.Duration, slots int) *Wheel {
	if resolution <= 0 {
		panic("timerwheel: resolution must be positive")
	}
	slots = min(max(slots, 64), 1<<16)
	b := uint(bits.Len(uint(slots - 1)))
	slots = 1 << b
	w := &Wheel{
		res:     int64(resolution),
		bits:    b,
		mask:    uint64(slots - 1),
		maxTick: math.MaxInt64 / int64(resolution),
		epoch:   time.Now(),
		wake:    make(chan struct{}, 1),
	}
	need := uint(bits.Len64(uint64(w.maxTick)))
	w.levels = make([]level, (need+b-1)/b)
	for i := range w.levels {
		w.levels[i] = level{
			slots:    make([]list, slots),
			occupied: make([]uint64, slots/64),
		}
	}
	return w
}

// Now returns the wheel's clock: nanoseconds since the wheel was created,
// read from the monotonic clock (a vDSO clock read, no lock, no
// allocation). It never decreases, is safe for concurrent use, and is the
// time base of Schedule's deadline, of CoarseNow and of the now passed to
// callbacks.
func (w *Wheel) Now() int64 { return int64(time.Since(w.epoch)) }

// Time converts a wheel time (as returned by Now) to a time.Time.
func (w *Wheel) Time(t int64) time.Time { return w.epoch.Add(time.Duration(t)) }

// CoarseNow returns the wheel's clock at tick granularity, for cheap
// activity stamps: while warm it is three atomic loads and no clock read.
// Safe for concurrent use.
//
// Its values never decrease, never exceed Now, and lag Now by at most about
// one resolution while Run runs normally; the lag can grow by the time
// callbacks take and by scheduling delays of Run's goroutine. A stamp taken
// with CoarseNow can therefore make an idle check based on it fire up to
// that lag early (an idle timeout of 30 s becomes 30 s minus about one
// tick).
//
// While CoarseNow is being called, Run wakes on every tick to refresh it,
// and stops after a tick without calls. When Run is not refreshing it (the
// first call after a quiet period, or Run not running), CoarseNow reads the
// precise clock and asks Run to start refreshing, so a quiet period never
// leaves it behind.
func (w *Wheel) CoarseNow() int64 {
	if w.ticking.Load() {
		if !w.used.Load() {
			w.used.Store(true)
		}
		return w.coarse.Load()
	}
	now := w.Now()
	w.raiseCoarse(now) // later fast-path reads must not go below now
	if !w.kicked.Load() && w.kicked.CompareAndSwap(false, true) {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return now
}

// raiseCoarse sets the coarse clock to now unless it is already later.
func (w *Wheel) raiseCoarse(now int64) {
	for {
		c := w.coarse.Load()
		if c >= now || w.coarse.CompareAndSwap(c, now) {
			return
		}
	}
}

// Resolution returns the wheel's tick length.
func (w *Wheel) Resolution() time.Duration { return time.Duration(w.res) }

// Len returns the number of armed timers, including timers that are due
// but whose callbacks have not been started yet. Safe for concurrent use.
func (w *Wheel) Len() int { return int(w.n.Load()) }

// Schedule arms t to fire at deadline (wheel clock, see [Wheel.Now]),
// replacing its current arming if it is armed, and reports whether it was
// armed. A deadline in the past fires at the next tick Run processes. O(1).
//
// Schedule is safe for concurrent use, including from callbacks (a callback
// may re-arm its own timer). If t's callback is running when Schedule is
// called, the new arming is independent of that call: f will be called
// again for it (never concurrently, callbacks run one at a time on Run's
// goroutine). Schedule panics if t has no callback or is bound to another
// wheel.
func (w *Wheel) Schedule(t *Timer, deadline int64) bool {
	w.bind(t)
	if t.f == nil {
		panic("timerwheel: Schedule of a Timer without callback (call Init)")
	}
	when := w.tickOf(deadline)

	w.mu.Lock()
	was := t.armed
	if was {
		w.unlink(t)
	} else {
		t.armed = true
		w.n.Add(1)
	}
	if when <= w.elapsed {
		when = w.elapsed + 1
	}
	t.when = when
	w.insert(t)
	wake := when < w.wakeAt
	if wake {
		w.wakeAt = when
	}
	w.mu.Unlock()

	if wake {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return was
}

// Stop disarms t and reports whether it was armed. O(1), safe for
// concurrent use, including from callbacks.
//
// If Stop returns true, the callback will not be called for the arming it
// cancelled. If it returns false, t was not armed: it was never scheduled,
// was already stopped, or its callback has already been started for the
// last arming — it may be running right now on Run's goroutine, and Stop
// does not wait for it. Code that stops a timer and then releases what the
// callback uses must therefore make the callback tolerate running late
// (for example by checking a closed flag), and must expect that a callback
// running concurrently with Stop may re-arm the timer.
// Stop panics if t is bound to another wheel.
func (w *Wheel) Stop(t *Timer) bool {
	switch o := t.w.Load(); o {
	case nil:
		return false
	case w:
	default:
		panic("timerwheel: Timer used with two wheels")
	}
	w.mu.Lock()
	if !t.armed {
		w.mu.Unlock()
		return false
	}
	w.unlink(t)
	t.armed = false
	w.n.Add(-1)
	w.mu.Unlock()
	return true
}

// Run drives the wheel until stop is closed, then returns. It must be called
// by at most one goroutine at a time (a concurrent call panics) and may be
// called again after it returned; armed timers stay armed meanwhile, and
// timers that came due while Run was not running fire when it restarts.
//
// Run sleeps until the tick of the earliest non-empty slot (not at all if
// no timer is armed) and is woken early only when Schedule arms an earlier
// tick; while CoarseNow is in use it also wakes on every tick. At each
// wake-up it moves the due timers to a due list under the wheel's lock,
// then calls their callbacks one by one on the calling goroutine without
// holding any lock, in deadline-tick order (timers due in the same tick
// fire in the order they were last scheduled). A callback must not block:
// it delays every later timer. A panic in a callback propagates out of Run;
// the wheel stays consistent and Run may be called again.
func (w *Wheel) Run(stop <-chan struct{}) {
	if !w.running.CompareAndSwap(false, true) {
		panic("timerwheel: concurrent Run")
	}
	tm := time.NewTimer(time.Hour)
	tm.Stop()
	defer func() {
		tm.Stop()
		w.ticking.Store(false)
		w.mu.Lock()
		w.wakeAt = 0
		w.mu.Unlock()
		w.running.Store(false)
	}()

	for {
		select {
		case <-stop:
			return
		default:
		}
		w.wakeups.Add(1)
		now := w.Now()
		// Refresh the coarse clock before ticking is (re)enabled, and keep
		// ticking while it was read during the last tick.
		w.raiseCoarse(now)
		tick := w.kicked.Swap(false) || (w.ticking.Load() && w.used.Swap(false))
		w.ticking.Store(tick)
		w.advance(now)

		w.mu.Lock()
		next, _, _, ok := w.nextExpiration()
		if t := now/w.res + 1; tick && (!ok || t < next) {
			next, ok = t, true // refresh the coarse clock at the next tick
		}
		if ok {
			w.wakeAt = next
		} else {
			w.wakeAt = math.MaxInt64
		}
		w.mu.Unlock()

		var fire <-chan time.Time
		d := time.Duration(-1)
		now = w.Now()
		if tick {
			w.raiseCoarse(now) // callbacks may have taken a while
		}
		if ok {
			d = time.Duration(next*w.res - now)
			if d <= 0 {
				continue
			}
			tm.Reset(d)
			fire = tm.C
		}
		if w.onSleep != nil {
			w.onSleep(d)
		}
		select {
		case <-stop:
			return
		case <-fire:
		case <-w.wake:
			tm.Stop()
		}
	}
}

// advance processes every tick up to now (wheel clock) and calls the
// callbacks of the timers that became due. Called by Run, or by tests and
// benchmarks driving the wheel with a virtual clock instead of Run.
func (w *Wheel) advance(now int64) {
	w.mu.Lock()
	w.wakeAt = 0 // awake: Schedule need not signal
	w.collect(now / w.res)
	w.mu.Unlock()

	for {
		w.mu.Lock()
		t := w.due.head
		if t == nil {
			w.mu.Unlock()
			return
		}
		w.due.remove(t)
		t.armed = false
		w.n.Add(-1)
		f := t.f
		w.mu.Unlock()
		f(t, now)
	}
}

// collect advances elapsed to nowTick, cascading slots and moving due
// timers to the due list. w.mu must be held.
func (w *Wheel) collect(nowTick int64) {
	for {
		tick, lv, s, ok := w.nextExpiration()
		if !ok || tick > nowTick {
			break
		}
		l := &w.levels[lv]
		t := l.slots[s].head
		l.slots[s] = list{}
		l.occupied[s>>6] &^= 1 << (uint(s) & 63)
		w.elapsed = tick
		for t != nil { // in order, so that FIFO order is kept
			next := t.next
			if t.when <= tick {
				t.level = dueLevel
				w.due.pushBack(t)
			} else {
				w.insert(t) // lands on a lower level
			}
			t = next
		}
	}
	// Remaining timers are all later than nowTick and keep their slots:
	// every tick between elapsed and nowTick shares their slot's prefix.
	if nowTick > w.elapsed {
		w.elapsed = nowTick
	}
}

// nextExpiration returns the earliest non-empty slot and its start tick.
// Slots of lower levels always expire before those of higher levels, and
// every non-empty slot starts after elapsed. w.mu must be held.
func (w *Wheel) nextExpiration() (tick int64, lv, slot int, ok bool) {
	e := uint64(w.elapsed)
	for lv := range w.levels {
		shift := uint(lv) * w.bits
		digit := int((e >> shift) & w.mask)
		s := w.levels[lv].nextOccupied(digit + 1)
		if s < 0 {
			continue
		}
		up := shift + w.bits // shifts >= 64 yield 0
		return int64(e>>up<<up | uint64(s)<<shift), lv, s, true
	}
	return 0, 0, 0, false
}

// insert links t (t.when > elapsed) into the slot of the highest tick digit
// in which t.when differs from elapsed. w.mu must be held.
func (w *Wheel) insert(t *Timer) {
	lv := (bits.Len64(uint64(t.when^w.elapsed)) - 1) / int(w.bits)
	s := int((uint64(t.when) >> (uint(lv) * w.bits)) & w.mask)
	l := &w.levels[lv]
	t.level, t.slot = int8(lv), int32(s)
	if l.slots[s].head == nil {
		l.occupied[s>>6] |= 1 << (uint(s) & 63)
	}
	l.slots[s].pushBack(t)
}

// unlink removes the armed t from its slot or from the due list. w.mu must
// be held.
func (w *Wheel) unlink(t *Timer) {
	if t.level == dueLevel {
		w.due.remove(t)
		return
	}
	l := &w.levels[t.level]
	sl := &l.slots[t.slot]
	sl.remove(t)
	if sl.head == nil {
		l.occupied[t.slot>>6] &^= 1 << (uint(t.slot) & 63)
	}
}

// tickOf converts a deadline to the first tick at or after it. Deadlines
// beyond the last representable tick (about 292 years) are clamped to it.
func (w *Wheel) tickOf(deadline int64) int64 {
	if deadline <= 0 {
		return 0
	}
	q := deadline / w.res
	if deadline%w.res != 0 {
		q++
	}
	return min(q, w.maxTick)
}

// bind binds t to w on first use and panics if it is bound to another wheel.
func (w *Wheel) bind(t *Timer) {
	if o := t.w.Load(); o == w || (o == nil && t.w.CompareAndSwap(nil, w)) {
		return
	}
	if t.w.Load() != w {
		panic("timerwheel: Timer used with two wheels")
	}
}
