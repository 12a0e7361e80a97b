package redistest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the child get SIGKILL when the test process dies (a
// test binary killed by its -timeout runs no cleanup), so no redis-server
// outlives its test.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
