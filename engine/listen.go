package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mai-go/mai"
)

// listener is one of the engine's listeners and its accept loop.
type listener struct {
	name     string
	ln       net.Listener
	raw      *rawAccepter // accepts in ln's stead (TransportEpoll), or nil
	since    time.Time
	accepted atomic.Uint64
	stopOnce sync.Once
	stopped  chan struct{} // closed when stop was called
	exited   chan struct{} // closed when the accept loop returned
}

// close stops accepting: the socket closes, and the accept loop ends
// once a connection it is taking (in Admit, say) is settled.
func (l *listener) close() {
	l.stopOnce.Do(func() {
		close(l.stopped)
		_ = l.ln.Close()
		if l.raw != nil {
			l.raw.close()
		}
	})
}

// stop is close, and waits for the accept loop to end.
func (l *listener) stop() {
	l.close()
	<-l.exited
}

// ListenerInfo describes a listener of the engine.
type ListenerInfo struct {
	Name     string
	Addr     net.Addr
	Since    time.Time
	Accepted uint64 // connections taken from it (not counting rejected ones)
}

// Listen listens on address (see net.Listen) and accepts connections in the
// background. The listener is named after its actual address (so
// "127.0.0.1:0" becomes "127.0.0.1:PORT"), which Context.Listener reports.
// mai.WithListenControl, if set, runs on the socket before it listens.
func (e *ProtocolEngine[F]) Listen(network, address string) (net.Addr, error) {
	return e.ListenNamed("", network, address)
}

// ListenNamed is Listen with a name of the caller's choice; "" names the
// listener after its address. Names are unique among the engine's listeners.
func (e *ProtocolEngine[F]) ListenNamed(name, network, address string) (net.Addr, error) {
	select {
	case <-e.closing:
		return nil, fmt.Errorf("listen %s: %w", address, mai.ErrShutdown)
	default:
	}
	if name != "" {
		e.lifeMu.Lock()
		_, dup := e.listeners[name]
		e.lifeMu.Unlock()
		if dup {
			return nil, fmt.Errorf("listen %q: %w", name, mai.ErrDuplicateListener)
		}
	}
	lc := net.ListenConfig{Control: e.opts.ListenControl}
	ln, err := lc.Listen(context.Background(), network, address)
	if err != nil {
		return nil, fmt.Errorf("mai: listen %s %s: %w", network, address, err)
	}
	if name == "" {
		name = ln.Addr().String()
	}
	// A listener the engine made is its alone, so on TransportEpoll it
	// may accept from the socket directly (accept_linux.go).
	if err := e.serve(name, ln, e.ep != nil); err != nil {
		_ = ln.Close()
		return nil, err
	}
	return ln.Addr(), nil
}

// Serve accepts connections from ln, which the caller made, in the
// background, under name ("" names it after ln.Addr()). The engine owns ln
// from then on, also when Serve fails (it is closed then), and closes it
// when the listener is removed or the engine shuts down. Serve does not
// block.
func (e *ProtocolEngine[F]) Serve(name string, ln net.Listener) (err error) {
	return e.serve(name, ln, false)
}

func (e *ProtocolEngine[F]) serve(name string, ln net.Listener, raw bool) (err error) {
	if ln == nil {
		return fmt.Errorf("%w: nil net.Listener", mai.ErrInvalidOption)
	}
	l := &listener{name: name, ln: ln, since: time.Now(), stopped: make(chan struct{}), exited: make(chan struct{})}
	if raw {
		l.raw = newRawAccepter(ln)
	}
	defer func() {
		if err != nil {
			_ = ln.Close()
			if l.raw != nil {
				l.raw.close()
			}
		}
	}()
	if l.name == "" {
		l.name = ln.Addr().String()
	}
	e.lifeMu.Lock()
	if e.shutting {
		e.lifeMu.Unlock()
		return fmt.Errorf("serve %q: %w", l.name, mai.ErrShutdown)
	}
	if _, dup := e.listeners[l.name]; dup {
		e.lifeMu.Unlock()
		return fmt.Errorf("serve %q: %w", l.name, mai.ErrDuplicateListener)
	}
	e.listeners[l.name] = l
	// Counted under lifeMu: after it, Shutdown (which sets shutting under
	// lifeMu) may let the engine's stop wait for its goroutines at once.
	e.spawn(func() { e.acceptLoop(l) })
	e.lifeMu.Unlock()
	return nil
}

// RemoveListener stops accepting on the named listener and closes it. Its
// connections stay open unless closeConns is true, in which case each is
// closed in order (queued frames written first). It returns when the accept
// loop has ended.
func (e *ProtocolEngine[F]) RemoveListener(name string, closeConns bool) error {
	e.lifeMu.Lock()
	l, ok := e.listeners[name]
	delete(e.listeners, name)
	e.lifeMu.Unlock()
	if !ok {
		return fmt.Errorf("remove listener %q: %w", name, mai.ErrUnknownListener)
	}
	l.stop()
	if closeConns {
		for _, c := range e.reg.snapshot(nil) {
			if c.lis != nil && c.lis.name == name && c.origin == mai.OriginAccepted {
				_ = c.Close()
			}
		}
	}
	return nil
}

// Listeners returns the engine's listeners, in no particular order.
func (e *ProtocolEngine[F]) Listeners() []ListenerInfo {
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	out := make([]ListenerInfo, 0, len(e.listeners))
	for _, l := range e.listeners {
		out = append(out, ListenerInfo{Name: l.name, Addr: l.ln.Addr(), Since: l.since, Accepted: l.accepted.Load()})
	}
	return out
}

// acceptLoop takes connections from l until it is closed. Connections go
// straight to adopt on this goroutine (not through the command channel: it
// saves a channel hop and a goroutine switch per connection, and adopt never
// blocks on the network). Temporary errors (out of descriptors) back off up
// to one second.
func (e *ProtocolEngine[F]) acceptLoop(l *listener) {
	// Admit or the codec factory may end the goroutine (runtime.Goexit;
	// adoptFrom lets go of the connection): accepting goes on on another.
	ended := false
	defer onGoexit(&ended, func() { e.spawn(func() { e.acceptLoop(l) }) })
	e.accept(l)
	ended = true
	close(l.exited)
}

// accept is acceptLoop's loop.
func (e *ProtocolEngine[F]) accept(l *listener) {
	// TransportEpoll takes TCP connections straight off the socket of a
	// listener it made (accept_linux.go); anything else goes through Accept.
	ra := l.raw
	var delay time.Duration
	for {
		var err error
		if ra != nil {
			var src source
			if src, err = ra.accept(); err == nil {
				e.took(l, &src)
			}
		} else {
			var nc net.Conn
			if nc, err = l.ln.Accept(); err == nil {
				e.took(l, &source{nc: nc, fd: -1})
			}
		}
		if err == nil {
			delay = 0
			continue
		}
		select {
		case <-l.stopped:
			return
		default:
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() && !isTemporary(err) {
			e.log.Error("mai: accept failed; listener stops", "listener", l.name, "err", err)
			return
		}
		delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		e.log.Warn("mai: accept error; backing off", "listener", l.name, "err", err, "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-l.stopped:
			t.Stop()
			return
		}
	}
}

// took adopts a connection l accepted.
func (e *ProtocolEngine[F]) took(l *listener, src *source) {
	if _, err := e.adoptFrom(src, mai.OriginAccepted, l); err == nil {
		l.accepted.Add(1)
	} else if !errors.Is(err, mai.ErrRejected) {
		e.log.Debug("mai: accepted connection dropped", "listener", l.name, "err", err)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
