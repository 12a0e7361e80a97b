// Package mai is a codec-driven protocol engine: you bring a Frame type, a
// codec.Codec that turns bytes into frames and frames into bytes, and a
// protocol.Handler that reacts to a connection being ready, a frame
// arriving, a timer firing, an error and the connection closing. mai does
// the rest: listening on several addresses, dialing, taking over connections
// accepted elsewhere, non-blocking I/O on cloudwego/netpoll (with a
// standard-library fallback), partial frames, pooled buffers, batched
// writes, timers, backpressure, a registry of live connections, and an
// orderly shutdown that loses no queued frame.
//
// This package holds the vocabulary shared by the others: Context (the
// handle a callback gets for its connection), ConnID, Timeout, the
// functional Options and the sentinel errors. The engine lives in package
// engine, codecs in package codec (and codec/codectest checks your own),
// handler contracts in package protocol, buffer pools in package bufpool.
//
// # A server in a few lines
//
//	type echo struct{ protocol.Base[[]byte] }
//
//	func (echo) OnFrame(c mai.Context[[]byte], f []byte) error { return c.Send(f) }
//
//	lf, _ := codec.NewLengthField(codec.LengthFieldConfig{Width: 4, Strip: 4, MaxLength: 1 << 20})
//	e, err := engine.New(lf.Factory(), echo{}, mai.WithIdleTimeout(time.Minute))
//	addr, err := e.Listen("tcp", "127.0.0.1:7777")
//	...
//	err = e.Shutdown(ctx)
//
// # Contracts
//
// Callbacks of one connection never run concurrently and run in order:
// OnReady once, then frames and timeouts, then OnClosed exactly once. A frame
// handed to OnFrame may alias the engine's input buffer and is valid until
// OnFrame returns. Context.Send is safe from any goroutine and never blocks
// on the network; over the outbound high water mark it returns
// ErrBackpressure. IDs carry a generation, so an ID kept after its
// connection closed gives ErrClosed and never reaches a newer connection.
// Every bound (frame size, un-decoded input, queued output) has a default
// that keeps a server's memory bounded out of the box.
package mai
