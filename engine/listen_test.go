//go:build unix

package engine

// Listener groups: named listeners, Listeners, RemoveListener with and
// without closing the listener's connections, Serve with a listener of the
// caller's, and the WithListenControl hook.

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/protocol"
)

// newListening returns an engine with handler h listening on 127.0.0.1 under
// each of names, and the listeners' addresses by name.
func newListening(t *testing.T, h protocol.Handler[[]byte], tr mai.Transport, names ...string) (*ProtocolEngine[[]byte], map[string]string) {
	t.Helper()
	e, err := New(lengthField(t, 1<<10), h, mai.WithTransport(tr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, e) })
	addrs := map[string]string{}
	for _, name := range names {
		a, err := e.ListenNamed(name, "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[name] = a.String()
	}
	return e, addrs
}

// listenerSummary formats Listeners as "name=accepted" sorted by name,
// checking each address against addrs.
func listenerSummary(t *testing.T, e *ProtocolEngine[[]byte], addrs map[string]string) string {
	t.Helper()
	var out []string
	for _, l := range e.Listeners() {
		if a, ok := addrs[l.Name]; ok && l.Addr.String() != a {
			t.Errorf("listener %q at %v, want %v", l.Name, l.Addr, a)
		}
		if l.Since.IsZero() {
			t.Errorf("listener %q has no Since", l.Name)
		}
		out = append(out, fmt.Sprintf("%s=%d", l.Name, l.Accepted))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func TestListenNamed(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := echoRecorder(t)
		e, addrs := newListening(t, r, tr, "a", "b")
		for _, name := range []string{"a", "b", "b"} {
			c := dial(t, addrs[name])
			ctx := recv(t, r.ready, "ready")
			if got := ctx.Listener(); got != name {
				t.Errorf("Listener() %q, want %q", got, name)
			}
			if info := ctx.Info(); info.Listener != name || info.Origin != mai.OriginAccepted {
				t.Errorf("Info %+v", info)
			}
			echoRoundTrip(t, c, "via "+name)
		}
		// A listener counts a connection after adopting it, which may be
		// after OnReady.
		eventually(t, "Accepted counts", func() bool { return listenerSummary(t, e, addrs) == "a=1 b=2" })
		if n := e.Stats().Listeners; n != 2 {
			t.Errorf("Stats().Listeners %d, want 2", n)
		}

		// Names are unique; unknown names are errors.
		if _, err := e.ListenNamed("a", "tcp", "127.0.0.1:0"); !errors.Is(err, mai.ErrDuplicateListener) {
			t.Errorf("ListenNamed of a used name: %v, want ErrDuplicateListener", err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if err := e.Serve("b", ln); !errors.Is(err, mai.ErrDuplicateListener) {
			t.Errorf("Serve under a used name: %v, want ErrDuplicateListener", err)
		}
		if err := e.RemoveListener("nope", false); !errors.Is(err, mai.ErrUnknownListener) {
			t.Errorf("RemoveListener of an unknown name: %v, want ErrUnknownListener", err)
		}

		// Listen names a listener after its address.
		addr, err := e.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c := dial(t, addr.String())
		if got := recv(t, r.ready, "ready").Listener(); got != addr.String() {
			t.Errorf("Listener() %q, want the address %q", got, addr)
		}
		echoRoundTrip(t, c, "via the unnamed listener")
		if err := e.RemoveListener(addr.String(), false); err != nil {
			t.Errorf("RemoveListener by address: %v", err)
		}
		// A removed name is free again.
		if err := e.RemoveListener("a", false); err != nil {
			t.Fatal(err)
		}
		if _, err := e.ListenNamed("a", "tcp", "127.0.0.1:0"); err != nil {
			t.Errorf("ListenNamed of a removed name: %v", err)
		}
	})
}

// TestRemoveListenerWhileDialing: a client dials a listener in a loop while
// it is removed without closing its connections. Dials after the removal
// fail; connections the engine took before keep working.
func TestRemoveListenerWhileDialing(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		e, addrs := newListening(t, echo{}, tr, "a", "b")
		keep := dial(t, addrs["a"])
		echoRoundTrip(t, keep, "before")

		warm, removed := make(chan struct{}), make(chan struct{})
		type tally struct{ served, dropped, refusedBefore, refusedAfter, servedAfter int }
		done := make(chan tally, 1)
		go func() {
			var n tally
			defer func() { done <- n }()
			for i := 0; i < 1000; i++ {
				after := false
				select {
				case <-removed:
					after = true
				default:
				}
				c, err := net.DialTimeout("tcp", addrs["a"], waitLimit)
				if err != nil {
					if !after {
						n.refusedBefore++
						continue
					}
					if n.refusedAfter++; n.refusedAfter == 3 {
						return
					}
					continue
				}
				// A connection still in the backlog when the listener
				// closed is reset; one the engine took echoes.
				_ = c.SetDeadline(time.Now().Add(waitLimit))
				_, err = c.Write(frame([]byte("hi")))
				if err == nil {
					_, err = readFrame(c)
				}
				c.Close()
				switch {
				case err != nil:
					n.dropped++
				case after:
					n.servedAfter++
				default:
					n.served++
				}
				if n.served == 5 && err == nil && !after {
					close(warm)
				}
			}
		}()
		select {
		case <-warm:
		case n := <-done:
			t.Fatalf("the dialer ended before it was served 5 times: %+v", n)
		case <-time.After(waitLimit):
			t.Fatal("the dialer was not served 5 times")
		}
		if err := e.RemoveListener("a", false); err != nil {
			t.Fatal(err)
		}
		close(removed)
		n := recv(t, done, "the dialer")
		t.Logf("dials: %+v", n)
		if n.servedAfter > 0 || n.refusedAfter != 3 {
			t.Errorf("after RemoveListener returned: %d dials served, %d refused; want 0 and 3", n.servedAfter, n.refusedAfter)
		}
		if _, err := net.DialTimeout("tcp", addrs["a"], waitLimit); err == nil {
			t.Error("dial to a removed listener succeeded")
		}
		echoRoundTrip(t, keep, "after the listener went")
		if got := listenerSummary(t, e, addrs); !strings.HasPrefix(got, "b=") || strings.Contains(got, " ") {
			t.Errorf("Listeners %q, want only b", got)
		}
		echoRoundTrip(t, dial(t, addrs["b"]), "via the other listener")
	})
}

// TestRemoveListenerClosesConns: RemoveListener(name, true) closes that
// listener's connections, after writing what is queued for them, and no
// other.
func TestRemoveListenerClosesConns(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := echoRecorder(t)
		e, addrs := newListening(t, r, tr, "a", "b")
		a1 := dial(t, addrs["a"])
		ida1 := recv(t, r.ready, "ready").ID()
		a2 := dial(t, addrs["a"])
		ida2 := recv(t, r.ready, "ready").ID()
		b := dial(t, addrs["b"])
		recv(t, r.ready, "ready")
		if err := e.Send(ida1, []byte("goodbye")); err != nil {
			t.Fatal(err)
		}
		if err := e.RemoveListener("a", true); err != nil {
			t.Fatal(err)
		}
		if got, err := readFrame(a1); err != nil || string(got) != "goodbye" {
			t.Fatalf("queued frame: %q, %v", got, err)
		}
		expectClosedByPeer(t, a1)
		expectClosedByPeer(t, a2)
		closed := []mai.ConnID{recv(t, r.closed, "OnClosed"), recv(t, r.closed, "OnClosed")}
		if !sameIDs(closed, []mai.ConnID{ida1, ida2}) {
			t.Errorf("closed %v, want %v", closed, []mai.ConnID{ida1, ida2})
		}
		for _, id := range closed {
			if cause := r.causeOf(id); cause != nil {
				t.Errorf("%v closed with %v, want nil (a local close)", id, cause)
			}
		}
		echoRoundTrip(t, b, "on the other listener")
		shutdown(t, e)
		r.check()
	})
}

// TestServeUserListener: Serve takes a listener the caller made; the engine
// closes it when the listener is removed.
func TestServeUserListener(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := echoRecorder(t)
		e, _ := newListening(t, r, tr)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Serve("user", ln); err != nil {
			t.Fatal(err)
		}
		c := dial(t, ln.Addr().String())
		if got := recv(t, r.ready, "ready").Listener(); got != "user" {
			t.Errorf("Listener() %q, want user", got)
		}
		echoRoundTrip(t, c, "via a user listener")

		ln2, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Serve("", ln2); err != nil {
			t.Fatal(err)
		}
		names := []string{}
		for _, l := range e.Listeners() {
			names = append(names, l.Name)
		}
		slices.Sort(names)
		if want := []string{ln2.Addr().String(), "user"}; !slices.Equal(names, want) {
			t.Errorf("listeners %v, want %v", names, want)
		}
		if err := e.Serve("nil", nil); !errors.Is(err, mai.ErrInvalidOption) {
			t.Errorf("Serve(nil): %v, want ErrInvalidOption", err)
		}

		if err := e.RemoveListener("user", false); err != nil {
			t.Fatal(err)
		}
		if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept on a removed listener: %v, want net.ErrClosed", err)
		}
		echoRoundTrip(t, c, "after its listener went")

		// After Shutdown, Serve and ListenNamed refuse.
		shutdown(t, e)
		ln3, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln3.Close()
		if err := e.Serve("late", ln3); !errors.Is(err, mai.ErrShutdown) {
			t.Errorf("Serve after Shutdown: %v, want ErrShutdown", err)
		}
		if _, err := e.ListenNamed("late", "tcp", "127.0.0.1:0"); !errors.Is(err, mai.ErrShutdown) {
			t.Errorf("ListenNamed after Shutdown: %v, want ErrShutdown", err)
		}
	})
}

// TestListenControl: the hook runs on each socket the engine listens on,
// before it binds, and its error fails the Listen.
func TestListenControl(t *testing.T) {
	type call struct {
		network, address string
		reuse            int
	}
	var mu sync.Mutex
	var calls []call
	ctl := func(network, address string, rc syscall.RawConn) error {
		c := call{network: network, address: address}
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); serr == nil {
				c.reuse, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR)
			}
		})
		mu.Lock()
		calls = append(calls, c)
		mu.Unlock()
		return errors.Join(err, serr)
	}
	e, err := New(lengthField(t, 1<<10), echo{}, mai.WithListenControl(ctl))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, e)
	addr, err := e.ListenNamed("ctl", "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echoRoundTrip(t, dial(t, addr.String()), "through a controlled listener")
	if _, err := e.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := slices.Clone(calls)
	mu.Unlock()
	want := []call{{"tcp4", "127.0.0.1:0", 1}, {"tcp4", "127.0.0.1:0", 1}}
	if !slices.Equal(got, want) {
		t.Errorf("hook calls %+v, want %+v", got, want)
	}

	boom := errors.New("boom")
	failing, err := New(lengthField(t, 1<<10), echo{}, mai.WithListenControl(func(string, string, syscall.RawConn) error { return boom }))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, failing)
	if _, err := failing.ListenNamed("x", "tcp", "127.0.0.1:0"); !errors.Is(err, boom) {
		t.Errorf("ListenNamed with a failing hook: %v, want boom", err)
	}
	if ls := failing.Listeners(); len(ls) != 0 {
		t.Errorf("listeners %+v after a failed Listen", ls)
	}
}
