//go:build unix

package engine

import (
	"syscall"
	"unsafe"
)

// rawWrite writes p to a non-blocking descriptor once: a full socket gives
// a short count and no error.
func rawWrite(fd uintptr, p []byte) (int, error) { return rawWriteBatch(fd, p, nil) }

// rawWriteBatch writes the batch b with lent inserted (see seg) to a
// non-blocking descriptor: write(2) for a plain buffer, else writev(2) of
// its pieces. It stops at a full socket, which gives a short count and no
// error.
func rawWriteBatch(fd uintptr, b []byte, lent []seg) (int, error) {
	n, err := nbWriteBatch(int(fd), b, lent, false)
	if err == syscall.EAGAIN {
		err = nil
	}
	return n, err
}

// nbWriteBatch writes the batch b with lent inserted to a non-blocking
// descriptor, retrying on EINTR. It stops at the end of the batch, at an
// error, or at a full socket: when a write falls short, or, with
// untilAgain, only when the descriptor reports EAGAIN (edge-triggered
// pollers need to have seen it). n counts what was written, also with an
// error (EAGAIN included).
func nbWriteBatch(fd int, b []byte, lent []seg, untilAgain bool) (n int, err error) {
	if len(lent) == 0 {
		for n < len(b) {
			rem := len(b) - n
			m, err := nbWrite(fd, b[n:])
			switch {
			case err == syscall.EINTR:
				continue
			case err != nil:
				return n, err
			}
			n += m
			if m < rem && (m == 0 || !untilAgain) {
				return n, nil
			}
		}
		return n, nil
	}
	var iov [maxIov]syscall.Iovec
	pieces := 2*len(lent) + 1
	for {
		// The pieces from byte n on, at most maxIov of them.
		k, size, skip := 0, 0, n
		for i := 0; i < pieces && k < maxIov; i++ {
			p := piece(b, lent, i)
			if skip >= len(p) {
				skip -= len(p)
				continue
			}
			p, skip = p[skip:], 0
			iov[k].Base = &p[0]
			iov[k].SetLen(len(p))
			k++
			size += len(p)
		}
		if k == 0 {
			return n, nil
		}
		m, _, errno := syscall.RawSyscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(k))
		switch {
		case errno == syscall.EINTR:
			continue
		case errno != 0:
			return n, errno
		}
		n += int(m)
		if int(m) < size && (m == 0 || !untilAgain) {
			return n, nil
		}
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
