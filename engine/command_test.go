package engine

import (
	"errors"
	"net"
	"testing"

	"github.com/mai-go/mai"
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
