package redistest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal asks Linux to SIGKILL the server if the test process dies
// without running its cleanups (a panic in another goroutine, a SIGKILL), so
// no redis-server outlives the test binary.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
