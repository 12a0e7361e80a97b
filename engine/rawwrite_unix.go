//go:build unix

package engine

import (
	"syscall"
	"unsafe"
)

// rawWrite writes p to a non-blocking descriptor once: a full socket gives
// a short count and no error.
func rawWrite(fd uintptr, p []byte) (int, error) {
	for {
		n, err := nbWrite(int(fd), p)
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

// nbWrite and nbRead are write(2) and read(2) for non-blocking
// descriptors. They never wait, so they skip the scheduler's bookkeeping
// for system calls that may block (RawSyscall), as netpoll does for its
// own I/O.
func nbWrite(fd int, p []byte) (int, error) { return nbIO(syscall.SYS_WRITE, fd, p) }

func nbRead(fd int, p []byte) (int, error) { return nbIO(syscall.SYS_READ, fd, p) }

func nbIO(trap uintptr, fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, errno := syscall.RawSyscall(trap, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
