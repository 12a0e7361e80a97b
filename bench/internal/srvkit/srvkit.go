// Package srvkit is the harness every echo server of the benchmark shares:
// flags, the control channel on stdin/stdout, connection counting and CPU
// profiling. It holds nothing an echo server does on its data path except
// two atomic counters bumped at connect and close.
//
// Control protocol: the server prints "ADDR host:port" once it listens,
// then reads commands, one per line, on stdin:
//
//	stats   runs a GC, returns freed memory to the OS and prints
//	        "STATS {json}" (see Stats)
//	quit    (or end of input) stops the server and exits
package srvkit

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mai-go/mai/bench/internal/stats"
)

// HeaderLen is the echo protocol's header: the payload length, 4 bytes,
// big-endian.
const HeaderLen = 4

// MaxFrame is the largest payload the servers accept.
const MaxFrame = 8 << 20

var open atomic.Int64

// Opened counts a new connection. Servers call it once per accepted
// connection.
func Opened() { open.Add(1) }

// Closed counts a closed connection.
func Closed() { open.Add(-1) }

// Stats is what the "stats" command prints.
type Stats struct {
	Conns        int64 `json:"conns"`
	Goroutines   int   `json:"goroutines"`
	RSSKiB       int64 `json:"rss_kib"`
	HeapInuseKiB int64 `json:"heap_inuse_kib"`
	StackKiB     int64 `json:"stack_kib"`
	SysKiB       int64 `json:"sys_kib"`
}

// Snapshot collects Stats after a GC and returning free memory to the OS,
// so that RSS reflects memory held, not garbage not yet collected.
func Snapshot() Stats {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, _ := stats.RSSKiB(0)
	return Stats{
		Conns:        open.Load(),
		Goroutines:   runtime.NumGoroutine(),
		RSSKiB:       rss,
		HeapInuseKiB: int64(ms.HeapInuse >> 10),
		StackKiB:     int64(ms.StackInuse >> 10),
		SysKiB:       int64(ms.Sys >> 10),
	}
}

// StartFunc starts an echo server listening on addr and returns the
// address it listens on and a function that stops it.
type StartFunc func(addr string) (listenAddr string, stop func(context.Context) error, err error)

// record starts a recording of the run (a CPU profile, an execution trace)
// into the file at path, if path is set, and returns what stops it and
// closes the file. It exits the process if the recording cannot start.
func record(path string, start func(io.Writer) error, stop func()) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := start(f); err != nil {
		log.Fatal(err)
	}
	return func() { stop(); f.Close() }
}

// Main parses the common flags, starts the server with start, serves the
// control channel and exits when told to.
func Main(name string, start StartFunc) {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to `file`")
	memprofile := flag.String("memprofile", "", "write an allocation profile to `file` at exit")
	traceOut := flag.String("trace", "", "write an execution trace of the run to `file` (go tool trace); complete when the server stops through \"quit\" or the end of its input")
	flag.Parse()
	log.SetPrefix(name + ": ")
	log.SetFlags(0)

	defer record(*cpuprofile, pprof.StartCPUProfile, pprof.StopCPUProfile)()
	defer record(*traceOut, trace.Start, trace.Stop)()
	la, stop, err := start(*addr)
	if err != nil {
		log.Fatal(err)
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "ADDR %s\n", la)
	out.Flush()

	sc := bufio.NewScanner(os.Stdin)
loop:
	for sc.Scan() {
		switch strings.TrimSpace(sc.Text()) {
		case "stats":
			b, _ := json.Marshal(Snapshot())
			fmt.Fprintf(out, "STATS %s\n", b)
		case "quit":
			break loop
		case "":
		default:
			fmt.Fprintf(out, "ERR unknown command %q\n", sc.Text())
		}
		out.Flush()
	}
	if *memprofile != "" {
		if f, err := os.Create(*memprofile); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := stop(ctx); err != nil {
		log.Printf("stop: %v", err)
	}
}
