package client_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mai-go/mai/examples/resp/client"
	"github.com/mai-go/mai/examples/resp/resp"
)

// Example pipelines commands on one connection and tells an error reply
// from a closed connection. (It needs a Redis server on 127.0.0.1:6379, so
// it is compiled, not run.)
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := client.New(client.Config{})
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	conn, err := cl.Dial(ctx, "127.0.0.1:6379")
	if err != nil {
		panic(err)
	}

	// Three commands on the wire before any reply is read.
	set := conn.Send(ctx, resp.Command("SET", "greeting", "hello"))
	incr := conn.Send(ctx, resp.Command("INCR", "greeting"))
	get := conn.Send(ctx, resp.Command("GET", "greeting"))

	_, err = set.Result(ctx)
	fmt.Println("SET:", err)
	_, err = incr.Result(ctx)
	var re *client.RedisError
	if errors.As(err, &re) {
		fmt.Println("INCR:", re.Prefix(), "-", re.Msg)
	}
	v, err := get.Result(ctx)
	if errors.Is(err, client.ErrClosed) {
		fmt.Println("connection lost:", err)
		return
	}
	fmt.Println("GET:", v.Text())
}
