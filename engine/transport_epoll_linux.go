//go:build linux

package engine

import (
	"fmt"
	"net"

	"github.com/mai-go/mai"
)

// epollGroup is TransportEpoll's set of event loops.
// PLACEHOLDER: being implemented.
type epollGroup struct{}

func newEpollGroup(int, func(func())) (*epollGroup, error) {
	return nil, fmt.Errorf("%w: epoll transport not implemented yet", mai.ErrUnsupported)
}

func (g *epollGroup) attach(loopConn, net.Conn) error { return mai.ErrUnsupported }

func (g *epollGroup) stop() {}
