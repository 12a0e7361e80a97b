package engine

import (
	"fmt"
	"runtime/debug"

	"github.com/mai-go/mai"
)

// A handler's code that ends its goroutine (runtime.Goexit: t.FailNow in
// a test's handler, say) cannot be recovered like a panic. Wherever an
// engine goroutine runs such code and holds something for later (a
// connection's runner role, an event loop, the accept or command loop, a
// connection's place), a deferred onGoexit hands it on.

// onGoexit is deferred with a flag the function sets as it returns: if
// the flag is not set, the goroutine is ending there, and f runs. A
// panic is not a Goexit: callbacks' panics are recovered deeper down, so
// one that gets here is the engine's own fault, and it goes on.
func onGoexit(returned *bool, f func()) {
	if *returned {
		return
	}
	if r := recover(); r != nil {
		panic(r)
	}
	f()
}

// errGoexit is the cause of a connection whose callback ended its
// goroutine.
var errGoexit = fmt.Errorf("%w: a callback ended its goroutine (runtime.Goexit)", mai.ErrPanic)

// runnerLost runs, through onGoexit, where a goroutine took the runner
// role (input, release, inboundOverrun) and is ending: a callback called
// runtime.Goexit. The runner role is only ever held across callbacks, so
// serial is held here. The connection is failed as for a panic, and the role
// goes on to a new goroutine, which reports the error to OnError and
// finishes the run. Without it, serial would stay locked for ever: no
// OnClosed, and a Shutdown that never returns. Nothing here calls the
// handler, since the goroutine is on its way out.
//
// inTask tells that the goroutine is netpoll's worker running OnRequest
// (input's and inboundOverrun's guards on TransportNetpoll). netpoll's
// task wrapper then closes the connection as soon as the guard returns,
// and that close drops the queue; closing it here, inside the task,
// would be worse: the wrapper then skips detaching the descriptor from
// netpoll's poller. So the replies queued are written here, in full
// (netpoll's Flush waits), and the close is left to netpoll, with its
// cause recorded.
func (c *conn[F]) runnerLost(inTask bool) {
	c.e.log.Error("mai: handler ended its goroutine (runtime.Goexit)", "conn", c.id, "err", errGoexit, "stack", string(debug.Stack()))
	c.poisoned = true // as after a panic: no further frame is delivered
	if !inTask || !c.writeBeforeNetpollCloses() {
		_ = c.closeWith(errGoexit, false)
	}
	c.e.spawn(c.afterGoexit)
}

// afterGoexit takes over the run that runnerLost's goroutine left:
// OnError hears of it (unless OnClosed ran), then the run goes on.
func (c *conn[F]) afterGoexit() {
	done := false
	defer onGoexit(&done, func() { c.runnerLost(false) })
	if !c.finished && !c.hasFlag(flClosedCalled) {
		c.showError(errGoexit)
	}
	c.releaseRun()
	done = true
}
