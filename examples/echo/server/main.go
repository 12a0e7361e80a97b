// Command server is mai's echo server: frames of a 4-byte big-endian length
// and a payload, each echoed back.
//
//	go run ./examples/echo/server -addr 127.0.0.1:7777
//
// It prints "listening on ADDR" once ready and stops cleanly on SIGINT or
// SIGTERM, writing what is queued before it closes each connection.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/codec"
	"github.com/mai-go/mai/engine"
	"github.com/mai-go/mai/protocol"
)

// echo sends every frame back. The frame aliases the engine's input buffer,
// which is fine: Send encodes (copies) it before returning.
type echo struct{ protocol.Base[[]byte] }

func (echo) OnFrame(c mai.Context[[]byte], f []byte) error { return c.Send(f) }

func main() {
	addr := flag.String("addr", "127.0.0.1:7777", "address to listen on")
	maxFrame := flag.Int("max-frame", 8<<20, "largest payload in bytes")
	transport := flag.String("transport", "auto", "I/O layer: auto, netpoll or std")
	verbose := flag.Bool("v", false, "log connection errors to stderr")
	flag.Parse()
	if err := run(*addr, *maxFrame, *transport, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run(addr string, maxFrame int, transport string, verbose bool) error {
	tr, err := parseTransport(transport)
	if err != nil {
		return err
	}
	lf, err := codec.NewLengthField(codec.LengthFieldConfig{Width: 4, Strip: 4, MaxLength: maxFrame})
	if err != nil {
		return err
	}
	opts := []mai.Option{
		mai.WithTransport(tr),
		mai.WithMaxFrameSize(maxFrame + 4),
		// An echo of the largest frame must fit under the high water mark.
		mai.WithWriteBufferWaterMarks(32<<10, max(64<<10, 2*(maxFrame+4))),
	}
	if verbose {
		opts = append(opts, mai.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	e, err := engine.New(lf.Factory(), echo{}, opts...)
	if err != nil {
		return err
	}
	bound, err := e.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", bound)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.Shutdown(ctx)
}

func parseTransport(s string) (mai.Transport, error) {
	switch s {
	case "auto":
		return mai.TransportAuto, nil
	case "netpoll":
		return mai.TransportNetpoll, nil
	case "std":
		return mai.TransportStd, nil
	}
	return 0, fmt.Errorf("unknown transport %q (auto, netpoll, std)", s)
}
