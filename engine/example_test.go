package engine_test

import (
	"context"
	"fmt"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/codec"
	"github.com/mai-go/mai/engine"
	"github.com/mai-go/mai/protocol"
)

// upper is a server Handler: it answers each frame with the frame in upper
// case.
type upper struct{ protocol.Base[[]byte] }

func (upper) OnFrame(c mai.Context[[]byte], f []byte) error {
	out := make([]byte, len(f))
	for i, b := range f {
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		out[i] = b
	}
	return c.Send(out)
}

// greeter is a client Handler: it sends a greeting when connected, prints
// the answer and closes.
type greeter struct {
	protocol.Base[[]byte]
	done chan struct{}
}

func (g greeter) OnReady(c mai.Context[[]byte]) error {
	return c.Send([]byte("hello, mai"))
}

func (g greeter) OnFrame(c mai.Context[[]byte], f []byte) error {
	fmt.Printf("client got %q\n", f) // f is valid until OnFrame returns
	return c.Close()
}

func (g greeter) OnClosed(c mai.Context[[]byte], err error) {
	fmt.Println("client closed, cause:", err)
	close(g.done)
}

// A server and a client on the same framing: a 4-byte big-endian length,
// then the payload.
func Example() {
	lf, err := codec.NewLengthField(codec.LengthFieldConfig{Width: 4, Strip: 4, MaxLength: 1 << 20})
	if err != nil {
		panic(err)
	}

	srv, err := engine.New(lf.Factory(), upper{})
	if err != nil {
		panic(err)
	}
	addr, err := srv.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}

	g := greeter{done: make(chan struct{})}
	cli, err := engine.New(lf.Factory(), g)
	if err != nil {
		panic(err)
	}
	if _, err := cli.Dial(context.Background(), "tcp", addr.String()); err != nil {
		panic(err)
	}
	<-g.done

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cli.Shutdown(ctx); err != nil {
		panic(err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		panic(err)
	}
	// Output:
	// client got "HELLO, MAI"
	// client closed, cause: <nil>
}
