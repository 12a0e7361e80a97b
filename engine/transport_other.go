//go:build !((linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le || s390x)) || ((darwin || freebsd || netbsd || openbsd || dragonfly) && (amd64 || arm64)))

package engine

import (
	"net"

	"github.com/mai-go/mai"
)

const netpollSupported = false

func (e *ProtocolEngine[F]) attachNetpoll(*conn[F], net.Conn) error {
	return mai.ErrUnsupported
}

func setPollers(int) error { return mai.ErrUnsupported }

// writeBeforeNetpollCloses: there is no netpoll transport here.
func (c *conn[F]) writeBeforeNetpollCloses() bool { return false }
