package engine

import "golang.org/x/sys/unix"

// sockUnread reports how many bytes fd's socket has received and not yet
// given to a read.
func sockUnread(fd int) int {
	n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if err != nil {
		return 0
	}
	return n
}

// sockUnsent reports how many bytes fd's socket holds that the peer has
// not acknowledged: a reset (input arriving after the close) would drop
// them.
func sockUnsent(fd int) int {
	n, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
	if err != nil {
		return 0
	}
	return n
}

// dupFD duplicates fd, close-on-exec.
func dupFD(fd int) (int, bool) {
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	return d, err == nil
}
