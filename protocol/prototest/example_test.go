package prototest_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/protocol"
	"github.com/mai-go/mai/protocol/prototest"
)

// pinger answers "ping" with "pong", closes on "quit", and schedules a
// reminder when a connection is ready.
type pinger struct{ protocol.Base[string] }

func (pinger) OnReady(c mai.Context[string]) error {
	_, err := c.SetTimer(time.Second, "say hello")
	return err
}

func (pinger) OnFrame(c mai.Context[string], f string) error {
	switch f {
	case "ping":
		return c.Send("pong")
	case "quit":
		return c.Close()
	}
	return fmt.Errorf("unknown command %q", f)
}

func (pinger) OnTimeout(c mai.Context[string], t mai.Timeout) error {
	if t.Kind == mai.TimeoutTimer {
		return c.Send(t.Payload.(string))
	}
	return t.Err()
}

// A Handler tested without an engine or a socket.
func Example() {
	var h protocol.Handler[string] = pinger{}
	c := prototest.NewContext[string](mai.NewConnID(1, 1))

	_ = h.OnReady(c)
	_ = h.OnFrame(c, "ping")
	fmt.Println(h.OnFrame(c, "bogus"))
	t, _ := c.Fire(c.Timers()[0].ID)
	_ = h.OnTimeout(c, t)
	_ = h.OnFrame(c, "quit")

	fmt.Println(strings.Join(c.Sent(), ","), c.Closed())
	// Output:
	// unknown command "bogus"
	// pong,say hello true
}
