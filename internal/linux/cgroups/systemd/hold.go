package systemd

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/hako-runtime/hako/internal/nsenter"
)

// Holder is a placeholder process for starting a scope before the
// container's process exists.
//
// Why: systemd refuses to start a scope without a process in it, but hako
// makes a container's cgroup before its process exists, so that the process
// is born in it (clone3 CLONE_INTO_CGROUP, or "0" written to the v1 tasks
// files by the constructor before it unshares the cgroup namespace, whose
// root is the cgroup the process is in at that moment). runc instead starts
// the scope with the init's pid and makes its init wait before unsharing the
// cgroup namespace. A placeholder keeps hako's order and the container
// package unchanged: the scope is started with the holder, the container's
// process is born in the scope's cgroup, and only then is the holder let
// go. If it were let go earlier the scope would empty and systemd would
// stop it and remove the cgroup before the container could join.
//
// The holder is hako re-executed with EnvCgroupHold: the C constructor
// waits for EOF on its stdin and exits before the Go runtime starts, so it
// costs an exec and nothing else. It dies with hako (EOF on its stdin),
// which is what lets a hako killed mid-create leave an empty scope that
// systemd collects on its own.
type Holder struct {
	cmd *exec.Cmd
	w   *os.File
}

// Hold starts the placeholder.
func Hold() (*Holder, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("systemd: cgroup placeholder: pipe: %w", err)
	}
	defer r.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"hako:[cg-hold]"}
	cmd.Env = []string{nsenter.EnvCgroupHold + "=1"}
	cmd.Stdin = r
	if err := nsenter.WithCallerSlack(cmd.Start); err != nil {
		w.Close()
		return nil, fmt.Errorf("systemd: cgroup placeholder: start /proc/self/exe: %w", err)
	}
	return &Holder{cmd: cmd, w: w}, nil
}

// Pid is the placeholder's pid, for the unit's PIDs property.
func (h *Holder) Pid() int { return h.cmd.Process.Pid }

// Release lets the placeholder exit and reaps it.
func (h *Holder) Release() {
	if h == nil || h.w == nil {
		return
	}
	h.w.Close()
	h.w = nil
	_ = h.cmd.Wait()
}
