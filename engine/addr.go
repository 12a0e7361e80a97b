package engine

import "net/netip"

// tcpEnds holds both endpoints of a TCP connection in 38 bytes, where two
// netip.AddrPort take 64 and two *net.TCPAddr about 160 more on the heap:
// on TransportEpoll an idle connection is mostly its conn, so this counts.
// Addresses with an IPv6 zone are not kept here (set reports false).
type tcpEnds struct {
	lip, rip     [16]byte
	lport, rport uint16
	flags        uint8
}

const (
	endsValid uint8 = 1 << iota // set holds addresses
	endsL4                      // the local address is IPv4
	endsR4                      // the remote address is IPv4
)

// set records l and r; it reports false, recording nothing, if either is
// invalid or has a zone.
func (t *tcpEnds) set(l, r netip.AddrPort) bool {
	la, ra := l.Addr(), r.Addr()
	if !la.IsValid() || !ra.IsValid() || la.Zone() != "" || ra.Zone() != "" {
		return false
	}
	*t = tcpEnds{lip: la.As16(), rip: ra.As16(), lport: l.Port(), rport: r.Port(), flags: endsValid}
	if la.Is4() {
		t.flags |= endsL4
	}
	if ra.Is4() {
		t.flags |= endsR4
	}
	return true
}

func (t *tcpEnds) valid() bool { return t.flags&endsValid != 0 }

func (t *tcpEnds) local() netip.AddrPort { return endPoint(t.lip, t.lport, t.flags&endsL4 != 0) }

func (t *tcpEnds) remote() netip.AddrPort { return endPoint(t.rip, t.rport, t.flags&endsR4 != 0) }

func endPoint(ip [16]byte, port uint16, is4 bool) netip.AddrPort {
	a := netip.AddrFrom16(ip)
	if is4 {
		a = a.Unmap()
	}
	return netip.AddrPortFrom(a, port)
}
