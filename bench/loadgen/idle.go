package main

import (
	"bufio"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"time"
)

// runIdle opens -conns connections and then follows commands on stdin, so
// that the driver can measure the server between steps:
//
//	(on start)  prints "CONNECTED n" once every connection is established
//	echo        one frame and its reply on every connection; prints "ECHOED"
//	close       (or end of input) closes every connection and exits
func runIdle() {
	ws, err := dialAll(*addr, *conns)
	if err != nil {
		log.Fatal(err)
	}
	stdoutLine("CONNECTED %d", len(ws))
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch strings.TrimSpace(sc.Text()) {
		case "echo":
			if err := echoAll(ws); err != nil {
				stdoutLine("ERROR %v", err)
				continue
			}
			stdoutLine("ECHOED")
		case "close":
			for _, w := range ws {
				w.c.Close()
			}
			return
		}
	}
	for _, w := range ws {
		w.c.Close()
	}
}

// echoAll does one exchange on every connection, from a few goroutines.
func echoAll(ws []*worker) error {
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	next := make(chan *worker)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			frame := make([]byte, headerLen+*size)
			reply := make([]byte, headerLen+*size)
			for w := range next {
				if err := w.echoOnce(frame, reply); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, w := range ws {
		next <- w
	}
	close(next)
	wg.Wait()
	return first
}

func (w *worker) echoOnce(frame, reply []byte) error {
	w.c.SetDeadline(time.Now().Add(10 * time.Second))
	defer w.c.SetDeadline(time.Time{})
	w.putFrame(frame, 1)
	if _, err := w.c.Write(frame); err != nil {
		return err
	}
	if _, err := io.ReadFull(w.c, reply); err != nil {
		return err
	}
	return w.check(reply[headerLen:], 1)
}
