package clustertest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the child die with the test process, so that a test
// killed by its timeout leaves no haproxy behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
