//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package engine

import (
	"net"

	"github.com/mai-go/mai"
)

const netpollSupported = false

func (e *ProtocolEngine[F]) attachNetpoll(*conn[F], net.Conn) error {
	return mai.ErrUnsupported
}
