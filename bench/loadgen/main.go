// Command loadgen drives an echo server of the benchmark from a separate
// process. It opens -conns connections and, depending on -mode:
//
//	closed    each connection sends one frame and waits for its reply
//	pipeline  each connection writes -depth frames with one write, then
//	          reads the -depth replies (as redis-benchmark -P does)
//	stream    each connection has a writer and a reader goroutine and
//	          keeps up to -depth frames in flight
//	idle      connections stay open; driven by commands on stdin (see idle.go)
//
// After -warmup it measures for -duration: frames and bytes echoed, latency
// percentiles, and the CPU time the server (-server-pid), this process and
// the rest of the machine used. With -perf-ctl and -perf-ack, the load goes
// on for another -duration while the `perf stat` that runs the server
// counts its system calls (see perf.go). Every reply is checked byte for
// byte. The result is one line on stdout: "RESULT {json}".
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mai-go/mai/bench/internal/stats"
)

const headerLen = 4

var (
	addr      = flag.String("addr", "", "server address")
	conns     = flag.Int("conns", 100, "connections")
	size      = flag.Int("size", 64, "payload bytes per frame")
	mode      = flag.String("mode", "closed", "closed, pipeline, stream or idle")
	depth     = flag.Int("depth", 16, "frames in flight per connection (pipeline, stream)")
	warmup    = flag.Duration("warmup", time.Second, "warm-up before measuring")
	duration  = flag.Duration("duration", 3*time.Second, "measured window")
	serverPID = flag.Int("server-pid", 0, "server process, for its CPU time")
	maxFrames = flag.Int64("max-frames", 1e9, "stop a connection after this many frames (a bound, not a target)")
	perfCtl   = flag.String("perf-ctl", "", "control FIFO of the perf stat that runs the server: after the measured window, enable its counters for another -duration")
	perfAck   = flag.String("perf-ack", "", "acknowledgement FIFO of that perf stat")
)

// The phases of a run, in order. The load loops run until phaseStopping.
const (
	phaseWarmup    = iota
	phaseMeasuring // frames and latency recorded
	phaseBetween   // the measured window is over; perf is being enabled
	phasePerf      // perf counts; frames recorded in perfFrames
	phaseStopping
)

var phase atomic.Int32

// worker is one connection's state and tallies. Only its goroutines write
// it; the main goroutine reads it after they have finished.
type worker struct {
	id     int
	c      net.Conn
	base   []byte // the payload pattern; bytes 0..7 carry the sequence number
	frames int64
	hist   stats.Hist
	// perfFrames are the replies verified in the perf window.
	perfFrames int64
	errs       int64
	err        error
}

func main() {
	flag.Parse()
	log.SetPrefix("loadgen: ")
	log.SetFlags(0)
	if *addr == "" {
		log.Fatal("-addr is required")
	}
	if (*perfCtl == "") != (*perfAck == "") {
		log.Fatal("-perf-ctl and -perf-ack go together")
	}
	if *mode == "idle" {
		runIdle()
		return
	}
	if *size < 8 {
		log.Fatal("-size must be at least 8 (a sequence number is stamped in the payload)")
	}
	ws, err := dialAll(*addr, *conns)
	if err != nil {
		log.Fatal(err)
	}
	window := *duration
	if *perfCtl != "" {
		window *= 2
	}
	hard := time.Now().Add(*warmup + window + 30*time.Second)
	for _, w := range ws {
		w.c.SetDeadline(hard)
	}

	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch *mode {
			case "closed":
				w.closedLoop()
			case "pipeline":
				w.pipeline()
			case "stream":
				w.stream()
			default:
				w.err = fmt.Errorf("unknown mode %q", *mode)
			}
		}()
	}

	time.Sleep(*warmup)
	before := snapshot()
	phase.Store(phaseMeasuring)
	time.Sleep(*duration)
	phase.Store(phaseBetween)
	after := snapshot()
	var perfSecs float64
	var perfErr error
	if *perfCtl != "" {
		perfSecs, perfErr = perfWindow(*perfCtl, *perfAck, *duration)
	}
	phase.Store(phaseStopping)

	// Let closed and pipelined loops finish their exchange; a streaming
	// connection is cut.
	if *mode == "stream" {
		for _, w := range ws {
			w.c.Close()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		for _, w := range ws {
			w.c.Close()
		}
		<-done
	}
	for _, w := range ws {
		w.c.Close()
	}

	res := summarize(ws, before, after)
	switch {
	case perfErr != nil:
		res.Errors++
		if res.FirstError == "" {
			res.FirstError = perfErr.Error()
		}
	case *perfCtl != "":
		// The window; the benchmark adds perf's counts once the server
		// and its perf stat have exited.
		res.Syscalls = &stats.Syscalls{Seconds: perfSecs}
		for _, w := range ws {
			res.Syscalls.Frames += w.perfFrames
		}
	}
	b, _ := json.Marshal(res)
	fmt.Printf("RESULT %s\n", b)
}

func dialAll(addr string, n int) ([]*worker, error) {
	ws := make([]*worker, n)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range ws {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				select {
				case errc <- err:
				default:
				}
				return
			}
			w := &worker{id: i, c: c, base: make([]byte, *size)}
			stats.FillPattern(w.base, i)
			ws[i] = w
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		for _, w := range ws {
			if w != nil {
				w.c.Close()
			}
		}
		return nil, err
	default:
	}
	return ws, nil
}

// putFrame writes the frame for sequence number seq into dst, which has
// room for the header and the payload.
func (w *worker) putFrame(dst []byte, seq uint64) {
	binary.BigEndian.PutUint32(dst, uint32(len(w.base)))
	copy(dst[headerLen:], w.base)
	binary.LittleEndian.PutUint64(dst[headerLen:], seq)
}

// check verifies a reply payload against sequence number seq.
func (w *worker) check(p []byte, seq uint64) error {
	if len(p) != len(w.base) {
		return fmt.Errorf("conn %d frame %d: %d bytes, want %d", w.id, seq, len(p), len(w.base))
	}
	if got := binary.LittleEndian.Uint64(p); got != seq {
		return fmt.Errorf("conn %d: reply to frame %d, want %d", w.id, got, seq)
	}
	if string(p[8:]) != string(w.base[8:]) {
		return fmt.Errorf("conn %d frame %d: payload differs", w.id, seq)
	}
	return nil
}

// done records a verified reply that took lat.
func (w *worker) done(lat time.Duration) {
	switch phase.Load() {
	case phaseMeasuring:
		w.frames++
		w.hist.Record(int64(lat))
	case phasePerf:
		w.perfFrames++
	}
}

func (w *worker) fail(err error) {
	if phase.Load() == phaseStopping && (errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF)) {
		return // cut at the end of a stream run
	}
	w.errs++
	if w.err == nil {
		w.err = err
	}
}

func (w *worker) closedLoop() {
	frame := make([]byte, headerLen+*size)
	reply := make([]byte, headerLen+*size)
	for seq := uint64(0); int64(seq) < *maxFrames && phase.Load() < phaseStopping; seq++ {
		w.putFrame(frame, seq)
		t0 := time.Now()
		if _, err := w.c.Write(frame); err != nil {
			w.fail(err)
			return
		}
		if _, err := io.ReadFull(w.c, reply); err != nil {
			w.fail(err)
			return
		}
		lat := time.Since(t0)
		if n := binary.BigEndian.Uint32(reply); int(n) != *size {
			w.fail(fmt.Errorf("conn %d: header says %d, want %d", w.id, n, *size))
			return
		}
		if err := w.check(reply[headerLen:], seq); err != nil {
			w.fail(err)
			return
		}
		w.done(lat)
	}
}

func (w *worker) pipeline() {
	fl := headerLen + *size
	batch := make([]byte, fl**depth)
	r := bufio.NewReaderSize(w.c, max(64<<10, fl))
	reply := make([]byte, fl)
	var seq uint64
	for int64(seq) < *maxFrames && phase.Load() < phaseStopping {
		for i := range *depth {
			w.putFrame(batch[i*fl:], seq+uint64(i))
		}
		t0 := time.Now()
		if _, err := w.c.Write(batch); err != nil {
			w.fail(err)
			return
		}
		for i := range *depth {
			if _, err := io.ReadFull(r, reply); err != nil {
				w.fail(err)
				return
			}
			lat := time.Since(t0)
			if err := w.check(reply[headerLen:], seq+uint64(i)); err != nil {
				w.fail(err)
				return
			}
			w.done(lat)
		}
		seq += uint64(*depth)
	}
}

func (w *worker) stream() {
	tokens := make(chan struct{}, *depth)
	for range *depth {
		tokens <- struct{}{}
	}
	sent := make([]atomic.Int64, *depth) // send time of frame seq, at seq % depth
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // writer
		defer wg.Done()
		frame := make([]byte, headerLen+*size)
		for seq := uint64(0); int64(seq) < *maxFrames && phase.Load() < phaseStopping; seq++ {
			select {
			case <-tokens:
			case <-stop:
				return
			}
			w.putFrame(frame, seq)
			sent[seq%uint64(*depth)].Store(time.Now().UnixNano())
			if _, err := w.c.Write(frame); err != nil {
				return // the reader reports the failure
			}
		}
	}()
	r := bufio.NewReaderSize(w.c, 64<<10)
	payload := make([]byte, *size)
	var hdr [headerLen]byte
	for seq := uint64(0); ; seq++ {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			w.fail(err)
			break
		}
		if n := binary.BigEndian.Uint32(hdr[:]); int(n) != *size {
			w.fail(fmt.Errorf("conn %d: header says %d, want %d", w.id, n, *size))
			break
		}
		if _, err := io.ReadFull(r, payload); err != nil {
			w.fail(err)
			break
		}
		lat := time.Duration(time.Now().UnixNano() - sent[seq%uint64(*depth)].Load())
		if err := w.check(payload, seq); err != nil {
			w.fail(err)
			break
		}
		w.done(lat)
		tokens <- struct{}{}
	}
	close(stop)
	wg.Wait()
}

// cpuSnap is the CPU accounting at one instant.
type cpuSnap struct {
	at                    time.Time
	serverUser, serverSys int64
	client                int64
	system                []stats.CPUTimes
}

func snapshot() cpuSnap {
	s := cpuSnap{at: time.Now()}
	if *serverPID > 0 {
		s.serverUser, s.serverSys, _ = stats.ProcTimes(*serverPID)
	}
	s.client, _ = stats.ProcCPU(0)
	s.system, _ = stats.SystemCPU()
	return s
}

func summarize(ws []*worker, before, after cpuSnap) stats.Result {
	var h stats.Hist
	res := stats.Result{Mode: *mode, Conns: *conns, Size: *size, Depth: *depth}
	for _, w := range ws {
		h.Merge(&w.hist)
		res.Frames += w.frames
		res.Errors += w.errs
		if w.err != nil && res.FirstError == "" {
			res.FirstError = w.err.Error()
		}
	}
	secs := after.at.Sub(before.at).Seconds()
	res.Seconds = secs
	res.FramesPerSec = float64(res.Frames) / secs
	res.MBPerSec = float64(res.Frames) * float64(*size) / secs / 1e6
	res.P50us = h.Quantile(0.50) / 1e3
	res.P99us = h.Quantile(0.99) / 1e3
	res.P999us = h.Quantile(0.999) / 1e3
	res.ServerUserSec = float64(after.serverUser-before.serverUser) / stats.ClockTicks
	res.ServerSysSec = float64(after.serverSys-before.serverSys) / stats.ClockTicks
	res.ServerCPUSec = float64(after.serverUser-before.serverUser+after.serverSys-before.serverSys) / stats.ClockTicks
	res.ClientCPUSec = float64(after.client-before.client) / stats.ClockTicks
	if res.Frames > 0 {
		res.ServerUsPerFrame = res.ServerCPUSec * 1e6 / float64(res.Frames)
	}
	if len(before.system) == len(after.system) && len(after.system) > 0 {
		var busy, steal int64
		for i := range after.system {
			d := after.system[i].Sub(before.system[i])
			busy += d.Busy()
			steal += d.Steal
		}
		ours := res.ServerCPUSec + res.ClientCPUSec
		res.ForeignPct = 100 * (float64(busy+steal)/stats.ClockTicks - ours) / secs
		res.StealPct = 100 * float64(steal) / stats.ClockTicks / secs
	}
	return res
}

// stdoutLine prints one line on stdout at once.
func stdoutLine(format string, args ...any) {
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}
