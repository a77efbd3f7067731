package main

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel stop a spawned server if loadgen
// dies without stopping it.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
