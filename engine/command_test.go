package engine

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/protocol"
)

// TestCommands drives every command through the command channel: Broadcast
// (with a filter), Close, Shutdown, and what happens to a command sent
// after the engine began to stop.
func TestCommands(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newRecorder(t)
		e, addr := server(t, r, lengthField(t, 1<<10), mai.WithTransport(tr))
		clients, ids := dialReady(t, r, addr, 3)
		reply := make(chan Result, 1)

		// Broadcast to all but the first connection.
		skip := ids[0]
		e.Commands() <- BroadcastCmd[[]byte]{
			Frame:  []byte("news"),
			Filter: func(ci mai.ConnInfo) bool { return ci.ID != skip },
			Reply:  reply,
		}
		if res := recv(t, reply, "broadcast reply"); res.Err != nil || res.N != 2 {
			t.Fatalf("broadcast: %+v, want N=2", res)
		}
		for i, c := range clients {
			if i == 0 {
				continue
			}
			if f, err := readFrame(c); err != nil || string(f) != "news" {
				t.Fatalf("client %d: %q %v", i, f, err)
			}
		}

		// Close one connection by ID; a second Close of it fails.
		e.Commands() <- CloseCmd[[]byte]{ID: ids[1], Reply: reply}
		if res := recv(t, reply, "close reply"); res.Err != nil {
			t.Fatal(res.Err)
		}
		expectClosedByPeer(t, clients[1])
		if got := recv(t, r.closed, "OnClosed"); got != ids[1] {
			t.Fatalf("closed %v, want %v", got, ids[1])
		}
		e.Commands() <- CloseCmd[[]byte]{ID: ids[1], Reply: reply}
		if res := recv(t, reply, "second close reply"); !errors.Is(res.Err, mai.ErrClosed) {
			t.Fatalf("second close: %v, want ErrClosed", res.Err)
		}

		// An unbuffered Reply is served too, by a goroutine of its own.
		unbuffered := make(chan Result)
		e.Commands() <- SendCmd[[]byte]{ID: ids[2], Frame: []byte("direct"), Reply: unbuffered}
		if res := recv(t, unbuffered, "unbuffered reply"); res.Err != nil {
			t.Fatal(res.Err)
		}
		if f, err := readFrame(clients[2]); err != nil || string(f) != "direct" {
			t.Fatalf("got %q %v", f, err)
		}

		// Shutdown through the channel: the reply comes when it has stopped.
		done := make(chan Result, 1)
		e.Commands() <- ShutdownCmd[[]byte]{Reply: done}
		recv(t, done, "shutdown reply")
		select {
		case <-e.Done():
		default:
			t.Fatal("shutdown reply before the engine stopped")
		}
		for _, c := range []net.Conn{clients[0], clients[2]} {
			expectClosedByPeer(t, c)
		}

		// After the stop nothing reads the channel: a sender that selects
		// on Done is never stuck, and Manage is refused.
		nc, err := net.Dial("tcp", addr)
		if err == nil {
			nc.Close()
		}
		if _, err := e.Manage(&net.TCPConn{}); !errors.Is(err, mai.ErrShutdown) {
			t.Errorf("Manage after shutdown: %v, want ErrShutdown", err)
		}
		select {
		case e.Commands() <- SendCmd[[]byte]{ID: ids[0], Frame: []byte("late")}:
		case <-e.Done():
		}
		r.check()
	})
}

// blockingAdmitter holds the command loop inside Admit (a ManageCmd's
// Manage) until release is closed.
type blockingAdmitter struct {
	*recorder
	in      chan struct{}
	release chan struct{}
}

func (a *blockingAdmitter) Admit(mai.ConnInfo) error {
	a.in <- struct{}{}
	<-a.release
	return nil
}

// TestCommandsAcrossShutdown: every command a sender managed to send while
// the engine stopped is answered exactly once (a ManageCmd's Conn is then
// closed), nil commands are ignored on the way (one crashed the process
// when the loop emptied the channel at shutdown), and once the engine has
// stopped no send completes, so the documented select on Done never
// strands a command (a buffered channel once took it and nothing answered).
func TestCommandsAcrossShutdown(t *testing.T) {
	h := &blockingAdmitter{recorder: newRecorder(t), in: make(chan struct{}, 1), release: make(chan struct{})}
	e, err := New(lengthField(t, 1<<10), h, mai.WithTransport(mai.TransportStd))
	if err != nil {
		t.Fatal(err)
	}
	first, peer := net.Pipe()
	defer peer.Close()
	firstReply := make(chan Result, 1)
	e.Commands() <- ManageCmd[[]byte]{Conn: first, Reply: firstReply}
	recv(t, h.in, "Admit") // the command loop is held in Admit

	// Senders wait while the loop is held: nil commands and hand-overs.
	const senders = 16
	type outcome struct {
		sent  bool
		reply chan Result
		peer  net.Conn
	}
	outcomes := make(chan outcome, senders)
	for i := range senders {
		go func() {
			if i%2 == 0 {
				select {
				case e.Commands() <- nil:
				case <-e.Done():
				}
				outcomes <- outcome{}
				return
			}
			a, b := net.Pipe()
			o := outcome{reply: make(chan Result, 1), peer: b}
			select {
			case e.Commands() <- ManageCmd[[]byte]{Conn: a, Reply: o.reply}:
				o.sent = true
			case <-e.Done():
				a.Close()
			}
			outcomes <- o
		}()
	}
	stopped := make(chan error, 1)
	go func() { stopped <- e.Shutdown(context.Background()) }()
	recv(t, e.closing, "Shutdown to begin")
	close(h.release)
	if err := recv(t, stopped, "Shutdown"); err != nil {
		t.Fatal(err)
	}
	recv(t, firstReply, "the first ManageCmd's reply")
	for range senders {
		o := recv(t, outcomes, "a sender")
		if o.reply == nil {
			continue
		}
		if o.sent {
			if res := recv(t, o.reply, "a ManageCmd's reply"); !errors.Is(res.Err, mai.ErrShutdown) {
				t.Errorf("ManageCmd during shutdown: %+v, want ErrShutdown", res)
			}
			// The handed-over conn was closed: the peer reads EOF.
			if _, err := o.peer.Read(make([]byte, 1)); err == nil {
				t.Error("a refused ManageCmd's Conn was not closed")
			}
		}
		o.peer.Close()
	}

	// After the stop no command is taken.
	for range 50 {
		a, b := net.Pipe()
		select {
		case e.Commands() <- ManageCmd[[]byte]{Conn: a}:
			t.Fatal("a command was taken after the engine stopped")
		case <-e.Done():
		}
		a.Close()
		b.Close()
	}
}

// selfCommander sends a command to its own engine, with the select on Done
// that Commands documents, from OnClosed and (once Shutdown has begun)
// from Admit, which runs on an accept loop for a listener's connections.
type selfCommander struct {
	protocol.Base[[]byte]
	e       *ProtocolEngine[[]byte]
	hold    bool // set before the accept loop starts: Admit waits for the shutdown
	held    chan struct{}
	results chan Result
}

func (s *selfCommander) command() {
	reply := make(chan Result, 1)
	select {
	case s.e.Commands() <- BroadcastCmd[[]byte]{Frame: []byte("bye"), Reply: reply}:
		s.results <- <-reply
	case <-s.e.Done():
		s.results <- Result{Err: errors.New("not taken")}
	}
}

func (s *selfCommander) Admit(mai.ConnInfo) error {
	if s.hold {
		s.held <- struct{}{}
		<-s.e.closing // admitted only once Shutdown has begun
		s.command()
	}
	return nil
}

func (s *selfCommander) OnClosed(mai.Context[[]byte], error) { s.command() }

// TestCommandsFromCallbacksAtShutdown: commands sent during the shutdown,
// by a callback (OnClosed) or by Admit on an accept loop, are taken and
// answered, and the engine stops, whether Shutdown was called or sent as
// a ShutdownCmd. The loop that takes them must not be waited for by the
// stop it serves: ShutdownCmd once ran the stop on it, which waited for
// the accept loop, which waited for it.
func TestCommandsFromCallbacksAtShutdown(t *testing.T) {
	for _, viaCmd := range []bool{false, true} {
		h := &selfCommander{held: make(chan struct{}, 1), results: make(chan Result, 4)}
		e, err := New(lengthField(t, 1<<10), h, mai.WithTransport(mai.TransportStd))
		if err != nil {
			t.Fatal(err)
		}
		h.e = e
		a, b := net.Pipe() // a live connection: its OnClosed runs in the shutdown
		if _, err := e.Manage(a); err != nil {
			t.Fatal(err)
		}
		h.hold = true
		addr, err := e.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		nc, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		recv(t, h.held, "Admit")
		if viaCmd {
			e.Commands() <- ShutdownCmd[[]byte]{}
		} else {
			go func() { _ = e.Shutdown(context.Background()) }()
		}
		for range 2 { // Admit's and OnClosed's
			if res := recv(t, h.results, "a command's result"); res.Err != nil && !errors.Is(res.Err, mai.ErrShutdown) {
				t.Errorf("shutdown %v: command result %v", map[bool]string{false: "by call", true: "by command"}[viaCmd], res.Err)
			}
		}
		recv(t, e.Done(), "the engine to stop")
		nc.Close()
		b.Close()
	}
}

// TestManageClosedConn: a net.Conn closed on this side before it is
// handed over is an error from Manage and from a ManageCmd, the same on
// every transport, and no callback runs; one whose peer has gone is taken,
// and ends with OnClosed(EOF) after OnReady.
func TestManageClosedConn(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr mai.Transport) {
		r := newRecorder(t)
		e, err := New(lengthField(t, 1<<10), r, mai.WithTransport(tr))
		if err != nil {
			t.Fatal(err)
		}
		defer shutdown(t, e)
		wantClosed := func(how string, err error) {
			t.Helper()
			if !errors.Is(err, mai.ErrClosed) || !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s of a closed conn: %v, want mai.ErrClosed and net.ErrClosed", how, err)
			}
		}
		a, _ := tcpPair(t)
		a.Close()
		_, err = e.Manage(a)
		wantClosed("Manage", err)
		a, _ = tcpPair(t)
		a.Close()
		reply := make(chan Result, 1)
		e.Commands() <- ManageCmd[[]byte]{Conn: a, Reply: reply}
		wantClosed("ManageCmd", recv(t, reply, "the ManageCmd's result").Err)
		if n := e.Len(); n != 0 {
			t.Errorf("%d connections after refusing closed ones", n)
		}

		a, b := tcpPair(t)
		b.Close()
		id, err := e.Manage(a)
		if err != nil {
			t.Fatalf("Manage of a conn whose peer has gone: %v", err)
		}
		if got := recv(t, r.ready, "OnReady").ID(); got != id {
			t.Fatalf("OnReady for %v, managed %v", got, id)
		}
		if got := recv(t, r.closed, "OnClosed"); got != id {
			t.Fatalf("OnClosed for %v, managed %v", got, id)
		}
		if cause := r.causeOf(id); !errors.Is(cause, io.EOF) {
			t.Errorf("OnClosed cause %v, want io.EOF", cause)
		}
		r.check()
	})
}
