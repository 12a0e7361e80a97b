// Command server is a small Redis-compatible server on mai: it speaks RESP2
// and serves PING, ECHO, SET (EX/PX/EXAT/PXAT/KEEPTTL, NX/XX, GET), GET,
// DEL, EXISTS, INCR/DECR/INCRBY, MGET, MSET, TTL/PTTL, DBSIZE, FLUSHALL,
// plus the CONFIG GET, COMMAND, CLIENT, SELECT and QUIT calls that
// redis-cli and redis-benchmark make, from an in-memory sharded store.
//
//	go run ./examples/resp/server -addr 127.0.0.1:6380
//
// It prints "listening on ADDR" when ready and stops cleanly on SIGINT or
// SIGTERM: it stops accepting, writes the replies already queued and closes
// every connection.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/mai-go/mai"
	"github.com/mai-go/mai/engine"
	"github.com/mai-go/mai/examples/resp/resp"
	"github.com/mai-go/mai/examples/resp/store"
	"github.com/mai-go/mai/protocol"
)

var exitCode int

func main() {
	defer func() {
		if exitCode != 0 {
			os.Exit(exitCode)
		}
	}()
	addr := flag.String("addr", "127.0.0.1:6380", "address to listen on")
	maxBulk := flag.Int("max-bulk", 8<<20, "largest bulk string accepted, in bytes")
	shards := flag.Int("shards", 256, "store shards")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	transport := flag.String("transport", "auto", "I/O layer: auto, netpoll, std or epoll")
	flag.Parse()

	tr, ok := map[string]mai.Transport{
		"auto": mai.TransportAuto, "netpoll": mai.TransportNetpoll,
		"std": mai.TransportStd, "epoll": mai.TransportEpoll,
	}[*transport]
	if !ok {
		fmt.Fprintf(os.Stderr, "server: unknown -transport %q\n", *transport)
		os.Exit(2)
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "server:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, Config{MaxBulkLen: *maxBulk, Shards: *shards, Transport: tr}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		exitCode = 1
	}
}

// run serves on addr until ctx ends, then shuts down.
func run(ctx context.Context, addr string, cfg Config, out io.Writer) error {
	s, err := Start(addr, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "listening on %s\n", s.Addr())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}

// Config configures a Server.
type Config struct {
	MaxBulkLen int // largest bulk string; default resp.DefaultMaxBulkLen
	Shards     int // store shards; default 64
	Transport  mai.Transport
}

// Server is a running RESP server.
type Server struct {
	e     *engine.ProtocolEngine[resp.Value]
	addr  net.Addr
	store *store.Store
}

// Start listens on addr and serves in the background.
func Start(addr string, cfg Config) (*Server, error) {
	if cfg.MaxBulkLen <= 0 {
		cfg.MaxBulkLen = resp.DefaultMaxBulkLen
	}
	st := store.New(cfg.Shards)
	h := &handler{srv: &server{store: st}, maxReply: cfg.MaxBulkLen + 64<<10}
	// A whole command must fit: its largest argument plus headers and more
	// arguments. The engine takes its frame limit from the codec.
	codecCfg := resp.Config{MaxBulkLen: cfg.MaxBulkLen, MaxFrameSize: cfg.MaxBulkLen + 64<<10}
	e, err := engine.New(resp.ServerFactory(codecCfg), h,
		mai.WithTickInterval(100*time.Millisecond),
		mai.WithTransport(cfg.Transport),
	)
	if err != nil {
		return nil, err
	}
	a, err := e.Listen("tcp", addr)
	if err != nil {
		_ = e.Shutdown(context.Background())
		return nil, err
	}
	return &Server{e: e, addr: a, store: st}, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.addr }

// Shutdown stops accepting, writes queued replies, closes every connection
// and waits for the engine to stop (or ctx to end).
func (s *Server) Shutdown(ctx context.Context) error { return s.e.Shutdown(ctx) }

// handler is the server's protocol.Handler. It keeps no per-connection
// state: a connection is a stream of commands, each answered in order
// (callbacks of one connection are serialized, and Send keeps the order).
type handler struct {
	protocol.Base[resp.Value]
	srv      *server
	maxReply int // largest reply, in encoded bytes: the frame limit
}

var errReplyTooLarge = resp.Error("ERR reply too large")

// OnFrame executes one command and queues its reply. The reply may alias
// the frame (ECHO) or stored values; Send encodes it before returning, so
// nothing is kept past OnFrame.
func (h *handler) OnFrame(c mai.Context[resp.Value], cmd resp.Value) error {
	reply := h.srv.exec(cmd.Array)
	if h.maxReply > 0 && reply.Kind == resp.KindArray && resp.EncodedLen(reply) > h.maxReply {
		reply = errReplyTooLarge // MGET of many large values: bound the output
	}
	err := c.Send(reply)
	if errors.Is(err, mai.ErrEncode) {
		// A reply over the codec's bounds: answer with an error, as for
		// any other command that cannot be served, and go on.
		err = c.Send(errReplyTooLarge)
	}
	if err != nil {
		return err
	}
	if isQuit(cmd.Array) {
		return c.Close()
	}
	return nil
}

// OnError answers a protocol error as Redis does, with "-ERR Protocol
// error: ..." before the connection closes. The engine calls OnError before
// it starts closing, so the reply is written first.
func (h *handler) OnError(c mai.Context[resp.Value], err error) {
	var pe *resp.ProtocolError
	switch {
	case errors.As(err, &pe):
		_ = c.Send(resp.Error("ERR " + pe.Error()))
	case errors.Is(err, mai.ErrFrameTooLarge):
		_ = c.Send(resp.Error("ERR Protocol error: request too large"))
	}
}

// OnTick reclaims expired keys a bounded amount at a time (reads never see
// them anyway).
func (h *handler) OnTick(time.Time) { h.srv.store.Sweep(64) }
