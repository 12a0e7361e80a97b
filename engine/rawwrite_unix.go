//go:build unix

package engine

import (
	"syscall"
	"unsafe"
)

// rawWritev writes h followed by p to a non-blocking descriptor with one
// writev(2) (write(2) when h is empty): a full socket gives a short count
// and no error.
func rawWritev(fd uintptr, h, p []byte) (int, error) {
	for {
		n, err := nbWritev(int(fd), h, p)
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

// nbWritev is writev(2) of h and p for a non-blocking descriptor (see
// nbIO), or write(2) of p when h is empty.
func nbWritev(fd int, h, p []byte) (int, error) {
	if len(h) == 0 {
		return nbWrite(fd, p)
	}
	iov := [2]syscall.Iovec{{Base: &h[0]}}
	iov[0].SetLen(len(h))
	k := 1
	if len(p) > 0 {
		iov[1].Base = &p[0]
		iov[1].SetLen(len(p))
		k = 2
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(k))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
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
