// Command mai is the echo server on mai, written as a user would: the
// built-in length-field codec (4-byte big-endian length, stripped, so a
// frame is the payload) and a handler whose OnFrame sends the frame back.
// The engine decodes every complete frame of a read and writes the replies
// of one read together.
package main

import (
	"context"
	"flag"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/codec"
	"github.com/mai-go/mai/engine"
	"github.com/mai-go/mai/protocol"

	"github.com/mai-go/mai/bench/internal/srvkit"
)

// Tuning flags, off by default: the benchmark runs mai as configured out of
// the box. They exist to measure what a setting changes (bench -mai-args).
var (
	writeLow   = flag.Int("write-low", 0, "WithWriteBufferWaterMarks low mark (with -write-high)")
	writeHigh  = flag.Int("write-high", 0, "WithWriteBufferWaterMarks high mark; 0: the default")
	maxPooled  = flag.Int("max-pooled", 0, "WithMaxPooledBufferSize; 0: the default")
	initialBuf = flag.Int("initial-buffer", 0, "WithInitialBufferSize; 0: the default")
	pollers    = flag.Int("pollers", 0, "WithPollers (netpoll pollers, process-wide); 0: netpoll's default")
	transport  = flag.String("transport", "", "WithTransport: netpoll, std or epoll; empty: the default")
)

func main() { srvkit.Main("mai", start) }

type echo struct{ protocol.Base[[]byte] }

func (echo) OnReady(mai.Context[[]byte]) error { srvkit.Opened(); return nil }

func (echo) OnFrame(c mai.Context[[]byte], f []byte) error { return c.Send(f) }

func (echo) OnClosed(mai.Context[[]byte], error) { srvkit.Closed() }

func start(addr string) (string, func(context.Context) error, error) {
	lf, err := codec.NewLengthField(codec.LengthFieldConfig{
		Width:     srvkit.HeaderLen,
		Strip:     srvkit.HeaderLen,
		MaxLength: srvkit.MaxFrame,
	})
	if err != nil {
		return "", nil, err
	}
	// The engine takes its frame limit from the codec (codec.MaxSizer).
	var opts []mai.Option
	switch *transport {
	case "netpoll":
		opts = append(opts, mai.WithTransport(mai.TransportNetpoll))
	case "std":
		opts = append(opts, mai.WithTransport(mai.TransportStd))
	case "epoll":
		opts = append(opts, mai.WithTransport(mai.TransportEpoll))
	}
	if *pollers > 0 {
		opts = append(opts, mai.WithPollers(*pollers))
	}
	if *writeHigh > 0 {
		opts = append(opts, mai.WithWriteBufferWaterMarks(*writeLow, *writeHigh))
	}
	if *maxPooled > 0 {
		opts = append(opts, mai.WithMaxPooledBufferSize(*maxPooled))
	}
	if *initialBuf > 0 {
		opts = append(opts, mai.WithInitialBufferSize(*initialBuf))
	}
	e, err := engine.New(lf.Factory(), echo{}, opts...)
	if err != nil {
		return "", nil, err
	}
	la, err := e.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	return la.String(), e.Shutdown, nil
}
