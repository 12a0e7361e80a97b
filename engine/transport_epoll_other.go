//go:build !linux

package engine

import (
	"fmt"
	"net"

	"github.com/mai-go/mai"
)

// epollGroup is TransportEpoll's set of event loops; linux only.
type epollGroup struct{}

func newEpollGroup(int, func(func())) (*epollGroup, error) {
	return nil, fmt.Errorf("%w: epoll transport on this platform", mai.ErrUnsupported)
}

func (g *epollGroup) attach(loopConn, net.Conn) error { return mai.ErrUnsupported }

// attachFD is never called here: no descriptor is adopted without a
// net.Conn (see accept_other.go).
func (g *epollGroup) attachFD(loopConn, int) {}

func (g *epollGroup) stop() {}
