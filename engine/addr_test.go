package engine

import (
	"net/netip"
	"testing"
	"unsafe"
)

func TestTCPEnds(t *testing.T) {
	for _, tc := range []struct {
		local, remote string
		ok            bool
	}{
		{"127.0.0.1:8080", "127.0.0.1:51234", true},
		{"[::1]:443", "[2001:db8::7]:65535", true},
		{"0.0.0.0:0", "10.1.2.3:1", true},
		{"[::ffff:10.0.0.1]:80", "10.0.0.2:81", true}, // v4-mapped stays v6
		{"[fe80::1%eth0]:80", "[fe80::2%eth0]:81", false},
		{"127.0.0.1:1", "[fe80::2%2]:81", false},
	} {
		l, r := netip.MustParseAddrPort(tc.local), netip.MustParseAddrPort(tc.remote)
		var e tcpEnds
		if got := e.set(l, r); got != tc.ok {
			t.Errorf("set(%v, %v) = %v, want %v", l, r, got, tc.ok)
			continue
		}
		if !tc.ok {
			if e.valid() {
				t.Errorf("set(%v, %v) failed but left valid ends", l, r)
			}
			continue
		}
		if e.local() != l || e.remote() != r {
			t.Errorf("set(%v, %v): got back %v, %v", l, r, e.local(), e.remote())
		}
	}
	if (&tcpEnds{}).valid() {
		t.Error("zero tcpEnds is valid")
	}
}

// TestConnSize guards the size of a connection, most of what an idle
// connection costs on TransportEpoll (bench s5). 288 bytes is a Go size
// class; a field more puts a conn in the next one (320).
func TestConnSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("64-bit layout")
	}
	size := unsafe.Sizeof(conn[[]byte]{})
	t.Logf("conn: %d bytes", size)
	if size > 288 {
		t.Errorf("conn grew to %d bytes (was 288): move rarely used fields to connExtra", size)
	}
}
