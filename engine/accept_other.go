//go:build !linux

package engine

import (
	"net"

	"github.com/mai-go/mai"
)

// rawAccepter exists on linux only (TransportEpoll).
type rawAccepter struct{}

func newRawAccepter(net.Listener) *rawAccepter { return nil }

func (a *rawAccepter) accept() (source, error) { return source{fd: -1}, mai.ErrUnsupported }

func (a *rawAccepter) close() {}

// closeFD is never called here: no descriptor is adopted without a net.Conn.
func closeFD(int) {}
