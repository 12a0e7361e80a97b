package stats

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// openControl makes a control and an acknowledgement FIFO in a temporary
// directory and opens a PerfControl on them.
func openControl(t *testing.T) (pc *PerfControl, ctl, ack string) {
	t.Helper()
	dir := t.TempDir()
	ctl, ack = filepath.Join(dir, "ctl"), filepath.Join(dir, "ack")
	for _, f := range []string{ctl, ack} {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pc, err := OpenPerfControl(ctl, ack)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc, ctl, ack
}

// TestPerfControl plays perf's side of the control FIFOs: each command
// arrives as one line, and each returns only after its "ack\n\x00".
func TestPerfControl(t *testing.T) {
	pc, ctl, ack := openControl(t)
	perfCtl, err := os.OpenFile(ctl, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer perfCtl.Close()
	perfAck, err := os.OpenFile(ack, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer perfAck.Close()

	got := make(chan string, 2)
	acked := make(chan struct{})
	go func() { // perf
		defer close(got)
		lines := bufio.NewScanner(perfCtl)
		for lines.Scan() {
			got <- lines.Text()
			<-acked // the command must still be waiting
			if _, err := perfAck.Write([]byte("ack\n\x00")); err != nil {
				return
			}
		}
	}()
	for _, cmd := range []string{"enable", "disable"} {
		done := make(chan error, 1)
		go func() {
			if cmd == "enable" {
				done <- pc.Enable()
			} else {
				done <- pc.Disable()
			}
		}()
		if line := <-got; line != cmd {
			t.Fatalf("perf read %q, want %q", line, cmd)
		}
		select {
		case err := <-done:
			t.Fatalf("%s returned before the ack: %v", cmd, err)
		default:
		}
		acked <- struct{}{}
		if err := <-done; err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
	}
}

// TestPerfControlNoAck: a perf that never answers makes the command fail
// after Timeout, not hang.
func TestPerfControlNoAck(t *testing.T) {
	pc, _, _ := openControl(t)
	pc.Timeout = 50 * time.Millisecond
	if err := pc.Enable(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Enable without perf: %v, want a deadline error", err)
	}
}
