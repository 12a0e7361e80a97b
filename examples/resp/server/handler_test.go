package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/examples/resp/resp"
	"github.com/mai-go/mai/examples/resp/store"
	"github.com/mai-go/mai/protocol/prototest"
)

// TestHandler drives the handler's callbacks with prototest's fake Context.
func TestHandler(t *testing.T) {
	h := &handler{srv: &server{store: store.New(1)}}
	c := prototest.NewContext[resp.Value](mai.NewConnID(1, 1))
	for _, args := range [][]string{{"PING"}, {"SET", "k", "v"}, {"GET", "k"}, {"QUIT"}} {
		if err := h.OnFrame(c, resp.Command(args...)); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
	}
	if got := fmt.Sprint(c.Sent()); got != `[PONG OK "v" OK]` || !c.Closed() {
		t.Fatalf("sent %s, closed %v", got, c.Closed())
	}

	c = prototest.NewContext[resp.Value](mai.NewConnID(2, 1))
	h.OnError(c, fmt.Errorf("%w: %w", mai.ErrProtocol, &resp.ProtocolError{Msg: "invalid bulk length"}))
	h.OnError(c, fmt.Errorf("%w: partial frame", mai.ErrFrameTooLarge))
	h.OnError(c, errors.New("some I/O error"))
	want := `[(error) ERR Protocol error: invalid bulk length (error) ERR Protocol error: request too large]`
	if got := fmt.Sprint(c.Sent()); got != want {
		t.Fatalf("OnError sent %s; want %s", got, want)
	}

	c = prototest.NewContext[resp.Value](mai.NewConnID(3, 1))
	c.SetSendError(mai.ErrBackpressure)
	if err := h.OnFrame(c, resp.Command("PING")); !errors.Is(err, mai.ErrBackpressure) {
		t.Fatalf("OnFrame with a failing Send: %v", err)
	}
}
