package engine

import (
	"fmt"
	"net"

	"github.com/mai-go/mai"
)

// Command is a request sent to the engine through its command channel (see
// Commands): ManageCmd, SendCmd, BroadcastCmd, CloseCmd and ShutdownCmd. The
// channel is how a goroutine that must not call the engine directly (an
// accept loop of its own, a producer that only holds a channel) hands work
// to it, as mai's command_sender does.
type Command[F any] interface {
	run(e *ProtocolEngine[F]) Result
	reply() chan<- Result
}

// Result is the outcome of a Command, sent on its Reply channel.
type Result struct {
	ID  mai.ConnID // ManageCmd: the new connection's ID
	N   int        // BroadcastCmd: frames queued
	Err error
}

// ManageCmd hands Conn to the engine (see ProtocolEngine.Manage).
type ManageCmd[F any] struct {
	Conn  net.Conn
	Reply chan<- Result // optional; receives the ID or the error
}

// SendCmd queues Frame on connection ID.
type SendCmd[F any] struct {
	ID    mai.ConnID
	Frame F
	Reply chan<- Result // optional
}

// BroadcastCmd sends Frame to the connections Filter picks (all if nil).
type BroadcastCmd[F any] struct {
	Frame  F
	Filter func(mai.ConnInfo) bool
	Reply  chan<- Result // optional; N is the number sent
}

// CloseCmd closes connection ID after writing what is queued.
type CloseCmd[F any] struct {
	ID    mai.ConnID
	Reply chan<- Result // optional
}

// ShutdownCmd starts Shutdown; Reply (optional) receives the result when
// the engine has stopped.
type ShutdownCmd[F any] struct {
	Reply chan<- Result
}

func (c ManageCmd[F]) run(e *ProtocolEngine[F]) Result {
	id, err := e.Manage(c.Conn)
	return Result{ID: id, Err: err}
}
func (c ManageCmd[F]) reply() chan<- Result { return c.Reply }

func (c SendCmd[F]) run(e *ProtocolEngine[F]) Result {
	return Result{ID: c.ID, Err: e.Send(c.ID, c.Frame)}
}
func (c SendCmd[F]) reply() chan<- Result { return c.Reply }

func (c BroadcastCmd[F]) run(e *ProtocolEngine[F]) Result {
	r := e.Broadcast(c.Frame, c.Filter)
	return Result{N: r.Sent, Err: r.Err}
}
func (c BroadcastCmd[F]) reply() chan<- Result { return c.Reply }

func (c CloseCmd[F]) run(e *ProtocolEngine[F]) Result {
	return Result{ID: c.ID, Err: e.Close(c.ID)}
}
func (c CloseCmd[F]) reply() chan<- Result { return c.Reply }

// run starts the stop on a goroutine of its own, not on the command loop:
// beginShutdown waits for the accept loops, whose Admit may be sending a
// command to the loop. It answers Reply itself, once the engine has
// stopped, so reply is nil.
func (c ShutdownCmd[F]) run(e *ProtocolEngine[F]) Result {
	go e.shutdownOnce.Do(e.beginShutdown)
	if c.Reply != nil {
		// The reply waits for the stop, so it cannot be one of the
		// goroutines the stop waits for. It never blocks after the stop:
		// Reply must have room.
		go func() {
			<-e.done
			select {
			case c.Reply <- Result{}:
			default:
			}
		}()
	}
	return Result{}
}
func (c ShutdownCmd[F]) reply() chan<- Result { return nil }

// Commands returns the engine's command channel. Commands run in the order
// received, on one engine goroutine; a nil Command is ignored. The channel
// is unbuffered: a send completes when that goroutine takes the command, so
// a command that was sent is always answered. Each Reply channel, when not
// nil, receives exactly one Result; give it room for one (a buffered
// channel) — an unbuffered Reply is served by a goroutine of its own so the
// command loop never waits for a slow reader, and that goroutine waits for
// the reader, also past the engine's stop: an unbuffered Reply that is
// never read keeps it. Code that the command loop
// itself runs (the handler's Admit for a ManageCmd, a BroadcastCmd's
// Filter) must not send to the channel: the send would wait for the loop,
// which waits for it.
//
// Once Shutdown has started, a command taken is either run (a SendCmd to a
// connection still draining may succeed) or answered with an error
// wrapping mai.ErrShutdown; a ManageCmd is refused then, and its Conn
// closed. Commands are taken until the engine has stopped, so a callback
// may send one during the shutdown. After the stop nothing takes them:
// send with a select on Done to never block, e.g.
//
//	select {
//	case e.Commands() <- engine.ManageCmd[F]{Conn: c, Reply: ch}:
//	case <-e.Done():
//		c.Close() // not handed over
//	}
//
// ShutdownCmd's Reply receives its Result when the engine has stopped, and
// only if it has room then (make it buffered).
func (e *ProtocolEngine[F]) Commands() chan<- Command[F] { return e.cmds }

// commandLoop takes commands until the engine stops. A command that ends
// the goroutine (runtime.Goexit, in Admit, the codec factory or Encode)
// is answered with an error wrapping mai.ErrPanic, and the loop goes on
// on another goroutine.
func (e *ProtocolEngine[F]) commandLoop() {
	ended := false
	defer onGoexit(&ended, func() { go e.commandLoop() }) // not counted by the stop: see New
	e.takeCommands()
	ended = true
}

func (e *ProtocolEngine[F]) takeCommands() {
	for {
		select {
		case cmd := <-e.cmds:
			e.runCommand(cmd)
		case <-e.closing:
			// Until the engine has stopped, commands are still taken (a
			// callback or Admit that sends one during the shutdown must
			// not wait for a stop that waits for it) and refused.
			for {
				select {
				case cmd := <-e.cmds:
					e.refuseCommand(cmd)
				case <-e.done:
					return
				}
			}
		}
	}
}

// refuseCommand answers a command taken while the engine stops.
func (e *ProtocolEngine[F]) refuseCommand(cmd Command[F]) {
	switch cmd := cmd.(type) {
	case nil:
		return
	case ShutdownCmd[F]:
		cmd.run(e) // the stop has begun; Reply still gets its Result at the end
		return
	case ManageCmd[F]:
		if cmd.Conn != nil {
			_ = cmd.Conn.Close()
		}
	}
	e.deliver(cmd.reply(), Result{Err: fmt.Errorf("command: %w", mai.ErrShutdown)})
}

func (e *ProtocolEngine[F]) runCommand(cmd Command[F]) {
	if cmd == nil {
		return
	}
	done := false
	defer onGoexit(&done, func() {
		e.log.Error("mai: a command ended its goroutine (runtime.Goexit)", "err", errGoexit)
		e.deliver(cmd.reply(), Result{Err: fmt.Errorf("command: %w", errGoexit)})
	})
	r := cmd.run(e)
	done = true
	e.deliver(cmd.reply(), r)
}

// deliver sends r on ch without holding up the command loop. An
// unbuffered ch whose reader is not there yet gets r from a goroutine of
// its own, which waits for the reader however long it takes, the engine's
// stop included: a command that was sent is always answered. That
// goroutine is not one the engine's stop waits for (the reader may come
// after it, or never: then it stays), and it is started with go, not
// spawn, whose WaitGroup must not grow once the stop waits on it.
func (e *ProtocolEngine[F]) deliver(ch chan<- Result, r Result) {
	if ch == nil {
		return
	}
	select {
	case ch <- r:
		return
	default:
	}
	if cap(ch) > 0 {
		e.log.Warn("mai: command reply channel full; result dropped", "err", r.Err)
		return
	}
	go func() { ch <- r }()
}
