//go:build linux

package engine

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mai-go/mai"
)

// TransportEpoll: mai's own event loops on epoll.
//
// Each loop is one goroutine with an epoll instance, an eventfd for
// wake-ups, and a read buffer shared by all its connections. A readable
// connection is read into that buffer and the bytes go to conn.input at
// once, on the loop goroutine; what input cannot decode it copies into the
// connection's own pooled buffer. So an idle connection costs its conn (320
// bytes), an epConn (64 bytes) and a slot in its loop's table and in the
// engine's registry: no buffer, no goroutine. A new connection's OnReady
// runs on its loop too (epConn.start), and the engine's own TCP listeners
// accept straight from the socket (accept_linux.go), so taking a
// connection makes no goroutine and no garbage either.
//
// The loop does not block a thread in epoll_wait: its epoll descriptor is
// itself registered with the Go runtime's poller (an epoll descriptor is
// readable while it has events), so a loop with nothing to do is a parked
// goroutine that the runtime wakes like any goroutine waiting on a socket,
// and the loop then collects its events with a non-blocking epoll_wait.
//
// Threading rules, on which the correctness of the whole rests:
//
//   - A descriptor is closed only by its loop, and only under epConn.mu,
//     after which it is never used again: writes and EPOLL_CTL_MOD from
//     other goroutines happen under the same lock after checking closed, so
//     nothing ever touches a descriptor number the kernel may have given to
//     a new connection.
//   - EPOLL_CTL_ADD and DEL, closing, and the loop's slot table belong to
//     the loop goroutine; other goroutines ask through the loop's task queue
//     and its eventfd (attach, close).
//   - Events name a connection by its slot in its loop's table, not by its
//     descriptor; a slot is reused only when the loop registers a new
//     connection, between two rounds of events.
//   - The loop calls input and transportClosed without holding any lock;
//     transportClosed is called once, after the last input.
//
// Epoll is level-triggered: a connection with more to read than a round's
// budget, or whose close is pending, is simply reported again.

const (
	epReadBuf   = 64 << 10 // each loop's shared read buffer
	epMaxReads  = 4        // reads per connection per readiness report
	epEvents    = 128      // events taken per epoll_wait
	epBaseFlags = unix.EPOLLIN | unix.EPOLLRDHUP
	epWakeSlot  = -1 // the slot of the eventfd in event data
)

// errEpollClosed is what write and waitWritable report on a connection
// closed locally.
var errEpollClosed = fmt.Errorf("mai: epoll connection: %w", mai.ErrClosed)

// epollGroup is TransportEpoll's set of event loops. Connections are spread
// over the loops round-robin. A connection's input is decoded, and its
// OnReady and OnFrame (and any callback the read path runs) called, on its loop's
// goroutine, so a slow or blocking callback holds up every connection of
// that loop: hand slow work to another goroutine, and answer with Send or
// Do.
type epollGroup struct {
	loops []*epLoop
	next  atomic.Uint32
}

// epLoop is one event loop.
type epLoop struct {
	epfd int
	efd  int // eventfd: wakes the loop for its task queue
	// ef owns epfd as a file, registered with the runtime's poller; rc is
	// nil where the runtime could not register it, and the loop then
	// blocks in epoll_wait.
	ef     *os.File
	rc     syscall.RawConn
	pollFn func(uintptr) bool // for rc.Read; made once so that waiting does not allocate
	spawn  func(func())       // the engine's: starts the loop goroutine, again after a Goexit

	// The loop goroutine's own state.
	n      int // events in events
	events []unix.EpollEvent
	buf    []byte
	slots  []*epConn // registered connections by slot; nil for a free slot
	free   []int32   // free slots
	tasks  []epTask  // the queue taken, being run

	mu       sync.Mutex // guards the fields in this block
	queue    []epTask
	woken    bool // the eventfd is signalled and the loop has not taken the queue since
	stopping bool // stop was called
	dead     bool // the loop ended: efd and epfd are closed
}

// epTask is a request to a loop: register c (add) and then run start's
// release, or close c.
type epTask struct {
	c     *epConn
	start loopConn
	add   bool
}

// epConn is a connection of TransportEpoll: the engine's transport. Its
// fields are ordered to fit in 64 bytes (TestEpollConnSize).
type epConn struct {
	lc   loopConn // nil once transportClosed was called
	loop *epLoop
	wake chan struct{} // made by the first waitWritable; signalled when writable or closed

	mu   sync.Mutex // guards the use of fd outside the loop, and the fields marked so
	fd   int32
	slot int32 // in loop.slots, while registered; mu
	// room is the loop's: the most the connection could take at its last
	// input (see conn.input); 0 before the first, or when it had no room,
	// makes the loop ask (conn.readRoom).
	room int32
	// closeReq is set by close, from any goroutine; the loop finishes the
	// connection when it sees it.
	closeReq   atomic.Bool
	errno      uint16 // the read error that ended the connection, if any; mu (errno values fit)
	closed     bool   // fd is closed: never use it again; mu
	eof        bool   // the peer ended the stream; mu
	wantOut    bool   // a writer waits for EPOLLOUT; mu
	inOff      bool   // reading is stopped: EPOLLIN and EPOLLRDHUP are off; mu
	registered bool   // fd is in the loop's epoll set, in slot; mu
	finished   bool   // loop goroutine only: transportClosed was called (or is being called)
}

var _ transport = (*epConn)(nil)

func newEpollGroup(n int, spawn func(func())) (*epollGroup, error) {
	if n <= 0 {
		return nil, fmt.Errorf("%w: %d event loops", mai.ErrInvalidOption, n)
	}
	g := &epollGroup{loops: make([]*epLoop, 0, n)}
	for range n {
		l, err := newEpLoop()
		if err != nil {
			for _, l := range g.loops {
				l.closeFDs()
			}
			return nil, err
		}
		g.loops = append(g.loops, l)
	}
	for _, l := range g.loops {
		l.spawn = spawn
		spawn(l.run)
	}
	return g, nil
}

func newEpLoop() (*epLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("mai: epoll_create1: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("mai: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: epWakeSlot}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		_ = unix.Close(efd)
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("mai: epoll_ctl eventfd: %w", err)
	}
	l := &epLoop{
		epfd:   epfd,
		efd:    efd,
		buf:    make([]byte, epReadBuf),
		events: make([]unix.EpollEvent, epEvents),
	}
	// With O_NONBLOCK set, os.NewFile registers the descriptor with the
	// runtime's poller, and the file owns it from then on.
	_ = unix.SetNonblock(epfd, true)
	l.ef = os.NewFile(uintptr(epfd), "mai-epoll")
	// A file the runtime could not register has no deadlines.
	if l.ef.SetReadDeadline(time.Time{}) == nil {
		if rc, err := l.ef.SyscallConn(); err == nil {
			l.rc = rc
			l.pollFn = func(uintptr) bool {
				l.n = l.poll(0)
				return l.n > 0
			}
		}
	}
	return l, nil
}

func (l *epLoop) closeFDs() {
	_ = unix.Close(l.efd)
	_ = l.ef.Close()
}

// attach moves nc's socket to a loop: the descriptor is duplicated
// (close-on-exec), nc is closed so that the Go runtime's poller lets go of
// it, and the loop registers the duplicate. Only TCP and Unix connections
// qualify; others get mai.ErrUnsupported and the engine uses the std
// transport.
func (g *epollGroup) attach(lc loopConn, nc net.Conn) error {
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return mai.ErrUnsupported
	}
	raw, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return fmt.Errorf("mai: epoll attach: %w", err)
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return fmt.Errorf("mai: epoll attach: %w", err)
	}
	if dupErr != nil {
		return fmt.Errorf("mai: duplicate descriptor: %w", dupErr)
	}
	_ = nc.Close()
	// O_NONBLOCK belongs to the open file, which the runtime made
	// non-blocking already; make sure.
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("mai: set non-blocking: %w", err)
	}
	g.attachFD(lc, fd)
	return nil
}

// attachFD makes fd, a connected non-blocking socket that is now the
// connection's, its transport on one of the loops; start registers it.
func (g *epollGroup) attachFD(lc loopConn, fd int) {
	l := g.loops[int(g.next.Add(1)-1)%len(g.loops)]
	lc.setTransport(&epConn{fd: int32(fd), loop: l, lc: lc})
}

// start registers c with its loop, which then runs lc.release (OnReady
// first) on its own goroutine: the connection's first callbacks need no
// goroutine of their own. The caller holds lc's runner role and hands it
// over. start reports false if the loop has stopped (which the engine never
// lets happen with a connection still open); the connection is closed
// then, and the caller runs lc.release itself.
func (c *epConn) start(lc loopConn) bool {
	if c.loop.post(epTask{c: c, add: true, start: lc}) {
		return true
	}
	c.mu.Lock()
	c.closed = true
	_ = unix.Close(int(c.fd))
	c.mu.Unlock()
	c.finished = true
	lc.transportClosed(fmt.Errorf("mai: epoll attach: %w", mai.ErrShutdown))
	return false
}

// stop ends every loop. The engine calls it once, after every connection
// finished; each loop closes its descriptors as it returns, and the engine
// waits for the loop goroutines.
func (g *epollGroup) stop() {
	for _, l := range g.loops {
		l.mu.Lock()
		if !l.stopping && !l.dead {
			l.stopping = true
			l.wakeLocked()
		}
		l.mu.Unlock()
	}
}

// post queues t for the loop; it reports false once the loop stops.
func (l *epLoop) post(t epTask) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopping || l.dead {
		return false
	}
	l.queue = append(l.queue, t)
	l.wakeLocked()
	return true
}

// eventfdOne is what a write to an eventfd adds: 1, a host-endian uint64.
var eventfdOne = binary.NativeEndian.AppendUint64(nil, 1)

// wakeLocked signals the eventfd unless it is signalled already. l.mu is
// held, which keeps efd open.
func (l *epLoop) wakeLocked() {
	if l.woken || l.dead {
		return
	}
	l.woken = true
	for {
		// EAGAIN would mean the counter is full: the loop wakes anyway.
		if _, err := unix.Write(l.efd, eventfdOne); err != unix.EINTR {
			return
		}
	}
}

// run is the loop goroutine.
func (l *epLoop) run() {
	ended := false
	defer onGoexit(&ended, l.goexited)
	for {
		n := l.wait()
		tasks := false
		for i := range l.events[:n] {
			ev := &l.events[i]
			if ev.Fd == epWakeSlot {
				tasks = true
				continue
			}
			// Slots are only reused by runTasks, after this round, so the
			// slot holds the connection the event is about (or nil if it
			// finished earlier in the round).
			if c := l.slots[ev.Fd]; c != nil {
				l.ready(c, ev.Events)
			}
		}
		if tasks && l.runTasks() {
			ended = true
			l.exit()
			return
		}
	}
}

// goexited continues the loop on a new goroutine after a callback that it
// ran ended this one (runtime.Goexit; the connection's own guard, deeper
// down, failed it and handed on its run). The tasks not run yet go back
// to the queue; events not handled yet are reported again, since epoll is
// level-triggered. Loop goroutine, on its way out.
func (l *epLoop) goexited() {
	var rest []epTask
	for _, t := range l.tasks {
		if t.c != nil {
			rest = append(rest, t)
		}
	}
	l.tasks = l.tasks[:0]
	l.mu.Lock()
	l.queue = append(rest, l.queue...)
	l.woken = false // the eventfd may have been read already
	l.wakeLocked()
	l.mu.Unlock()
	l.spawn(l.run)
}

// wait waits for events and returns how many l.events holds.
func (l *epLoop) wait() int {
	if l.rc == nil {
		return l.poll(-1)
	}
	// RawRead resets the file's readiness, then calls pollFn until it
	// returns true, parking the goroutine in the runtime's poller between
	// calls: an event that arrives after a poll found none wakes it.
	if err := l.rc.Read(l.pollFn); err != nil {
		panic(fmt.Sprintf("mai: epoll loop: %v", err))
	}
	return l.n
}

// poll is epoll_wait with a timeout in milliseconds (-1: none).
func (l *epLoop) poll(msec int) int {
	for {
		var n int
		var err error
		if msec == 0 {
			// It does not block: no need to tell the scheduler.
			r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd),
				uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
			if n = int(r); e != 0 {
				err = e
			}
		} else {
			n, err = unix.EpollWait(l.epfd, l.events, msec)
		}
		switch err {
		case nil:
			return n
		case unix.EINTR:
		default:
			// EBADF, EFAULT, EINVAL: a bug; there is nothing to wait for.
			panic(fmt.Sprintf("mai: epoll_wait: %v", err))
		}
	}
}

// ready handles one readiness report of c.
func (l *epLoop) ready(c *epConn, ev uint32) {
	if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		c.mu.Lock()
		if c.wantOut {
			// Stop watching EPOLLOUT before the writer may ask again.
			c.wantOut = false
			l.ctl(c, unix.EPOLL_CTL_MOD, c.eventsLocked())
			c.signalLocked()
		}
		c.mu.Unlock()
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		l.read(c, ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0)
	}
}

// read reads what c has, up to the round's budget and what the connection
// has room for, and hands it over. A connection without room stops being
// read (pauseReading) until resumeReading. hup tells that the socket
// reported an error or a hang-up, which epoll reports even while reading
// is off.
func (l *epLoop) read(c *epConn, hup bool) {
	for i := 0; i < epMaxReads; {
		if c.closeReq.Load() {
			l.finish(c, nil, 0)
			return
		}
		if c.room == 0 {
			// The first read, or the last input left no room: the pause
			// ended since, or the socket failed.
			if c.room = int32(c.lc.readRoom()); c.room == 0 {
				if hup {
					// Nothing it holds could be answered, and epoll
					// would report the hang-up again at once.
					l.finish(c, io.EOF, sockError(int(c.fd)))
					return
				}
				if c.room = int32(l.pauseReading(c)); c.room == 0 {
					return
				}
			}
		}
		p := l.buf[:min(len(l.buf), int(c.room))]
		n, err := nbRead(int(c.fd), p)
		switch {
		case n > 0:
			c.room = int32(c.lc.input(p[:n]))
			if n < len(p) {
				return // most likely drained; level-triggered epoll tells if not
			}
			i++
		case err == nil:
			l.finish(c, io.EOF, 0)
			return
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return
		default:
			errno, _ := err.(syscall.Errno)
			if errno == 0 {
				errno = unix.EIO
			}
			l.finish(c, nil, errno)
			return
		}
	}
}

// sockError returns the socket's pending error, if any.
func sockError(fd int) syscall.Errno {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		if errno, ok := err.(syscall.Errno); ok {
			return errno
		}
		return unix.EIO
	}
	return syscall.Errno(v)
}

// pauseReading turns reading off for c, whose connection had no room for
// input, until resumeReading, and returns the room the connection has
// once reading is off. Not 0 means that the pause ended before inOff was
// set (perhaps to begin anew, with room to read ahead), so resumeReading
// found nothing to turn on: reading is turned on again here. 0 means a
// pause that is still on, whose end will call resumeReading. Loop
// goroutine only.
func (l *epLoop) pauseReading(c *epConn) int {
	c.mu.Lock()
	if !c.inOff && c.registered && !c.closed {
		c.inOff = true
		l.ctl(c, unix.EPOLL_CTL_MOD, c.eventsLocked())
	}
	c.mu.Unlock()
	room := c.lc.readRoom()
	if room > 0 {
		c.resumeReading()
	}
	return room
}

// resumeReading turns reading on again after a pause (see readPauser).
// Any goroutine.
func (c *epConn) resumeReading() {
	c.mu.Lock()
	if c.inOff {
		c.inOff = false
		if c.registered && !c.closed {
			c.loop.ctl(c, unix.EPOLL_CTL_MOD, c.eventsLocked())
		}
	}
	c.mu.Unlock()
}

// eventsLocked returns the events c is registered for: reading unless it
// is paused, and EPOLLOUT while a writer waits. c.mu is held.
func (c *epConn) eventsLocked() uint32 {
	var ev uint32
	if !c.inOff {
		ev = epBaseFlags
	}
	if c.wantOut {
		ev |= unix.EPOLLOUT
	}
	return ev
}

// ctl changes c's registration. c.mu is held and c is registered. A
// failure can only mean that the socket went bad, which its next read
// reports.
func (l *epLoop) ctl(c *epConn, op int, events uint32) {
	ev := unix.EpollEvent{Events: events, Fd: c.slot}
	_ = unix.EpollCtl(l.epfd, op, int(c.fd), &ev)
}

// runTasks takes the queue and runs it. It reports true when the loop has
// stopped.
func (l *epLoop) runTasks() bool {
	var cnt [8]byte
	for {
		if _, err := unix.Read(l.efd, cnt[:]); err != unix.EINTR {
			break
		}
	}
	l.mu.Lock()
	l.woken = false
	l.tasks, l.queue = l.queue, l.tasks[:0]
	stopping := l.stopping
	l.mu.Unlock()
	for i, t := range l.tasks {
		l.tasks[i] = epTask{}
		if t.add {
			l.register(t.c)
			if t.start != nil {
				t.start.release()
			}
		} else {
			l.finish(t.c, nil, 0)
		}
	}
	if !stopping {
		return false
	}
	// The engine stops the loops after every connection finished; anything
	// still here is closed, so that no descriptor outlives the engine.
	for _, c := range l.slots {
		if c != nil {
			l.finish(c, mai.ErrShutdown, 0)
		}
	}
	return true
}

// register adds c to the loop's epoll set, unless it closed already.
func (l *epLoop) register(c *epConn) {
	if c.finished {
		return
	}
	if c.closeReq.Load() {
		l.finish(c, nil, 0)
		return
	}
	var slot int32
	if n := len(l.free); n > 0 {
		slot = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		slot = int32(len(l.slots))
		l.slots = append(l.slots, nil)
	}
	c.mu.Lock()
	// A writer may have asked for EPOLLOUT before the registration.
	ev := unix.EpollEvent{Events: c.eventsLocked(), Fd: slot}
	err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(c.fd), &ev)
	if err == nil {
		c.registered, c.slot = true, slot
	}
	c.mu.Unlock()
	if err != nil {
		l.free = append(l.free, slot)
		l.finish(c, os.NewSyscallError("epoll_ctl", err), 0)
		return
	}
	l.slots[slot] = c
}

// finish closes c's descriptor and reports the end to the connection:
// cause is nil for a local close, io.EOF for the peer's, else errno or
// cause tell the error. Loop goroutine only; idempotent.
func (l *epLoop) finish(c *epConn, cause error, errno syscall.Errno) {
	if c.finished {
		return
	}
	c.finished = true
	c.mu.Lock()
	if c.closed { // attach gave up on c: not ours to close or report
		c.mu.Unlock()
		return
	}
	if c.registered {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, int(c.fd), nil)
		c.registered = false
		l.slots[c.slot] = nil
		l.free = append(l.free, c.slot)
	}
	_ = unix.Close(int(c.fd))
	c.closed = true
	c.eof = cause == io.EOF
	c.errno = uint16(errno)
	c.wantOut = false
	c.mu.Unlock()
	if errno != 0 {
		cause = os.NewSyscallError("read", errno)
	}
	lc := c.lc
	c.lc = nil
	// The cause is recorded before a waiting writer wakes, so that the
	// writer's error does not take its place.
	lc.transportClosed(cause)
	c.mu.Lock()
	c.signalLocked()
	c.mu.Unlock()
}

// exit closes the loop's descriptors as the loop goroutine ends.
func (l *epLoop) exit() {
	l.mu.Lock()
	l.dead = true
	l.closeFDs()
	l.queue = nil
	l.mu.Unlock()
	l.slots, l.free, l.tasks, l.buf, l.events = nil, nil, nil, nil, nil
}

// signalLocked wakes a waitWritable. c.mu is held.
func (c *epConn) signalLocked() {
	if c.wake != nil {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// closedErrLocked is the error of a write on a closed connection: its
// cause when the peer ended it, else errEpollClosed. c.mu is held.
func (c *epConn) closedErrLocked() error {
	switch {
	case c.errno != 0:
		return os.NewSyscallError("write", syscall.Errno(c.errno))
	case c.eof:
		return io.EOF
	}
	return errEpollClosed
}

// write writes what the socket takes without waiting: a short count with a
// nil error means the socket is full (see waitWritable).
func (c *epConn) write(p []byte) (int, error) { return c.writev(nil, p) }

// writev is write for h followed by p: writev(2) while h is not all
// written, then write(2).
func (c *epConn) writev(h, p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.closeReq.Load() {
		return 0, c.closedErrLocked()
	}
	n, total := 0, len(h)+len(p)
	for n < total {
		hn := min(n, len(h))
		m, err := nbWritev(int(c.fd), h[hn:], p[n-hn:])
		if m > 0 {
			n += m
		}
		switch err {
		case nil:
			if m <= 0 {
				return n, nil
			}
		case unix.EINTR:
		case unix.EAGAIN:
			return n, nil
		default:
			return n, os.NewSyscallError("write", err)
		}
	}
	return n, nil
}

// waitWritable waits until the socket can take bytes again, or the
// connection closes (an error wrapping mai.ErrClosed, or the peer's close
// cause). Only the flush loop calls it, never on the loop goroutine.
func (c *epConn) waitWritable() error {
	c.mu.Lock()
	if c.closed || c.closeReq.Load() {
		err := c.closedErrLocked()
		c.mu.Unlock()
		return err
	}
	if c.wake == nil {
		c.wake = make(chan struct{}, 1)
	} else {
		select { // a stale signal
		case <-c.wake:
		default:
		}
	}
	if !c.wantOut {
		c.wantOut = true
		if c.registered { // else register adds EPOLLOUT
			c.loop.ctl(c, unix.EPOLL_CTL_MOD, c.eventsLocked())
		}
	}
	wake := c.wake
	c.mu.Unlock()
	<-wake
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.closeReq.Load() {
		return c.closedErrLocked()
	}
	return nil
}

// close closes the connection: idempotent, from any goroutine. The loop
// closes the descriptor and calls transportClosed; a waiting waitWritable
// returns at once.
func (c *epConn) close() {
	if !c.closeReq.CompareAndSwap(false, true) {
		return
	}
	c.mu.Lock()
	c.signalLocked()
	c.mu.Unlock()
	c.loop.post(epTask{c: c})
}

// lingerDup implements lingerer.
func (c *epConn) lingerDup(sending bool) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || !sending && !lingerDue(int(c.fd)) {
		return -1, false
	}
	return dupFD(int(c.fd))
}
