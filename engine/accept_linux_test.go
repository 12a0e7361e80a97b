//go:build linux

package engine

import (
	"net"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestSockaddrAddrPort(t *testing.T) {
	v4 := func(a [4]byte, port uint16) (sa unix.RawSockaddrAny) {
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		p.Family, p.Addr = unix.AF_INET, a
		*(*[2]byte)(unsafe.Pointer(&p.Port)) = [2]byte{byte(port >> 8), byte(port)}
		return sa
	}
	v6 := func(a [16]byte, port uint16, scope uint32) (sa unix.RawSockaddrAny) {
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa))
		p.Family, p.Addr, p.Scope_id = unix.AF_INET6, a, scope
		*(*[2]byte)(unsafe.Pointer(&p.Port)) = [2]byte{byte(port >> 8), byte(port)}
		return sa
	}
	loop6 := netip.MustParseAddr("::1").As16()
	ll := netip.MustParseAddr("fe80::1").As16()
	for _, tc := range []struct {
		name string
		sa   unix.RawSockaddrAny
		want string // "" for not convertible
		zone bool   // sockaddrTCP keeps a zone
	}{
		{"v4", v4([4]byte{127, 0, 0, 1}, 51234), "127.0.0.1:51234", false},
		{"v6", v6(loop6, 443, 0), "[::1]:443", false},
		{"v6 scoped", v6(ll, 80, 7), "", true},
		{"unix", unix.RawSockaddrAny{Addr: unix.RawSockaddr{Family: unix.AF_UNIX}}, "", false},
	} {
		ap, ok := sockaddrAddrPort(&tc.sa)
		if got := map[bool]string{true: ap.String(), false: ""}[ok]; got != tc.want {
			t.Errorf("%s: sockaddrAddrPort = %q, want %q", tc.name, got, tc.want)
		}
		a := sockaddrTCP(&tc.sa, ap, ok)
		switch ta, _ := a.(*net.TCPAddr); {
		case tc.want != "" && (ta == nil || ta.String() != tc.want):
			t.Errorf("%s: sockaddrTCP = %v, want %s", tc.name, a, tc.want)
		case tc.zone && (ta == nil || ta.Zone == "" || ta.Port != 80):
			t.Errorf("%s: sockaddrTCP = %v, want a zoned address, port 80", tc.name, a)
		case tc.want == "" && !tc.zone && a != nil:
			t.Errorf("%s: sockaddrTCP = %v, want nil", tc.name, a)
		}
	}
}

// TestRawAcceptSocketOptions: a connection the epoll transport accepted
// itself has the options net's Accept would have given it; without
// TCP_NODELAY, Nagle's algorithm cut s4's throughput by a third.
func TestRawAcceptSocketOptions(t *testing.T) {
	r := newRecorder(t)
	e, addr := server(t, r, lengthField(t, 1<<10), epOpt)
	c := dial(t, addr)
	defer c.Close()
	ctx := recv(t, r.ready, "ready")
	ec := epConnOf(t, e, ctx.ID())
	ec.mu.Lock()
	defer ec.mu.Unlock()
	for _, o := range []struct {
		name       string
		level, opt int
	}{
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY},
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE},
	} {
		if v, err := unix.GetsockoptInt(int(ec.fd), o.level, o.opt); err != nil || v == 0 {
			t.Errorf("%s = %d, %v; want on", o.name, v, err)
		}
	}
}
