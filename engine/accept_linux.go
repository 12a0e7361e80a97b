//go:build linux

package engine

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawAccepter takes connections straight off a TCP listener's descriptor,
// for TransportEpoll: one accept4 per connection gives a non-blocking
// descriptor that goes to an event loop as it is. Accepting through
// net.Listener would make a net.Conn, register it with the runtime's poller
// and take it off again, duplicate the descriptor and close the original:
// four more system calls and a few hundred bytes of garbage per
// connection, which on a server with many idle connections shows in its
// RSS.
//
// The runtime does not let a net.Listener's RawConn wait for readiness, so
// the accepter waits on a duplicate of the listening descriptor of its own,
// an *os.File registered with the runtime's poller; close closes it, which
// wakes a waiting accept. Only listeners the engine made are used so: a
// net.Listener given to Serve might be closed by someone else, which this
// duplicate would not notice.
type rawAccepter struct {
	f     *os.File
	rc    syscall.RawConn
	try   func(uintptr) bool // one accept4 attempt; made once, so waiting does not allocate
	local netip.AddrPort     // the listener's address, unless it is a wildcard

	// The last attempt's outcome; only the accept loop goroutine uses them.
	fd         int
	errno      syscall.Errno
	rsa, lsa   unix.RawSockaddrAny
	rlen, llen uint32
}

// newRawAccepter returns nil for a listener it cannot accept from.
func newRawAccepter(ln net.Listener) *rawAccepter {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil
	}
	lrc, err := tl.SyscallConn()
	if err != nil {
		return nil
	}
	dup := -1
	var dupErr error
	if err := lrc.Control(func(s uintptr) { dup, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || dupErr != nil {
		return nil
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		_ = unix.Close(dup)
		return nil
	}
	f := os.NewFile(uintptr(dup), "mai-accept")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil
	}
	a := &rawAccepter{f: f, rc: rc, fd: -1}
	if ta, ok := tl.Addr().(*net.TCPAddr); ok && ta != nil {
		if ap := ta.AddrPort(); ap.IsValid() && !ap.Addr().IsUnspecified() && ap.Addr().Zone() == "" {
			a.local = ap
		}
	}
	a.try = a.attempt
	return a
}

// close closes the accepter's descriptor; a waiting accept returns an
// error wrapping os.ErrClosed.
func (a *rawAccepter) close() { _ = a.f.Close() }

// attempt runs accept4 once on the listener's descriptor; it reports false
// when there is nothing to accept, so that rc.Read waits.
func (a *rawAccepter) attempt(lfd uintptr) bool {
	for {
		a.rlen = uint32(unsafe.Sizeof(a.rsa))
		fd, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, lfd, uintptr(unsafe.Pointer(&a.rsa)), uintptr(unsafe.Pointer(&a.rlen)),
			unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		switch errno {
		case 0:
			a.fd, a.errno = int(fd), 0
			return true
		case unix.EINTR, unix.ECONNABORTED: // a connection reset before it was taken: next
			continue
		case unix.EAGAIN:
			return false
		default:
			a.fd, a.errno = -1, errno
			return true
		}
	}
}

// accept waits for the next connection. The error is the listener's (it
// wraps net.ErrClosed once the listener is closed) or accept4's errno.
func (a *rawAccepter) accept() (source, error) {
	if err := a.rc.Read(a.try); err != nil {
		return source{fd: -1}, err
	}
	if a.errno != 0 {
		return source{fd: -1}, os.NewSyscallError("accept4", a.errno)
	}
	src := source{fd: a.fd}
	setAcceptedOpts(a.fd)
	remote, rok := sockaddrAddrPort(&a.rsa)
	local, lok := a.local, a.local.IsValid()
	if !lok {
		a.llen = uint32(unsafe.Sizeof(a.lsa))
		if _, _, errno := unix.Syscall(unix.SYS_GETSOCKNAME, uintptr(a.fd), uintptr(unsafe.Pointer(&a.lsa)), uintptr(unsafe.Pointer(&a.llen))); errno == 0 {
			local, lok = sockaddrAddrPort(&a.lsa)
		}
	}
	if rok && lok && src.ends.set(local, remote) {
		return src, nil
	}
	// An IPv6 address with a zone (link-local): kept as net.Addr values.
	src.laddr, src.raddr = sockaddrTCP(&a.lsa, local, lok), sockaddrTCP(&a.rsa, remote, rok)
	return src, nil
}

// setAcceptedOpts gives an accepted socket the options net.TCPListener's
// Accept gives it: TCP_NODELAY (without it, Nagle's algorithm holds back
// small writes while data is unacknowledged) and Go's default keep-alive
// (probes after 15 s idle, every 15 s, 9 of them). They are best effort, as
// in package net.
func setAcceptedOpts(fd int) {
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9)
}

// sockaddrAddrPort converts an IPv4 or IPv6 socket address without a zone.
func sockaddrAddrPort(sa *unix.RawSockaddrAny) (netip.AddrPort, bool) {
	switch sa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), portOf(&p.Port)), true
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		if p.Scope_id != 0 {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(netip.AddrFrom16(p.Addr), portOf(&p.Port)), true
	}
	return netip.AddrPort{}, false
}

// sockaddrTCP makes a *net.TCPAddr of sa, with its zone; nil if sa is
// neither IPv4 nor IPv6.
func sockaddrTCP(sa *unix.RawSockaddrAny, ap netip.AddrPort, ok bool) net.Addr {
	if ok {
		return net.TCPAddrFromAddrPort(ap)
	}
	if sa.Addr.Family != unix.AF_INET6 {
		return nil
	}
	p := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
	zone := strconv.FormatUint(uint64(p.Scope_id), 10)
	if ifi, err := net.InterfaceByIndex(int(p.Scope_id)); err == nil {
		zone = ifi.Name
	}
	return &net.TCPAddr{IP: append(net.IP(nil), p.Addr[:]...), Port: int(portOf(&p.Port)), Zone: zone}
}

// portOf reads a port in network byte order.
func portOf(p *uint16) uint16 { return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(p))[:]) }

func closeFD(fd int) { _ = unix.Close(fd) }
