//go:build unix

package engine

import "syscall"

// rawWrite writes p to a non-blocking descriptor once: a full socket gives
// a short count and no error.
func rawWrite(fd uintptr, p []byte) (int, error) {
	for {
		n, err := syscall.Write(int(fd), p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, nil
		case err != nil:
			return 0, err
		}
		return n, nil
	}
}
