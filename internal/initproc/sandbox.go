package initproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/sandbox/receipt"
)

// verifyStep checks, from inside and as the process that is about to exec,
// that every requested property is in effect; it writes the receipt to the
// parent's pipe whatever the outcome, and fails the sandbox when a check
// fails: a sandbox that silently runs unconfined is worse than none.
func verifyStep(a *applier, s *plan.Step) error {
	fd := a.plan.Fds.Receipt
	var checks []receipt.Check
	if err := json.Unmarshal(s.Data, &checks); err != nil {
		return fmt.Errorf("receipt checks: %w", err)
	}
	r := receipt.Verify(checks, receipt.Self())
	// Fds 0-2 are COMMAND's stdio, never the receipt.
	if fd > 2 {
		f := os.NewFile(uintptr(fd), "receipt")
		_ = json.NewEncoder(f).Encode(r)
		f.Close()
	}
	return r.Err()
}

// treeROStep: a path systemd lists itself (/boot, /efi) or one given as
// "-PATH" may be missing; any other missing path is an error.
func treeROStep(a *applier, s *plan.Step) error {
	if s.Value == "optional" {
		if _, err := os.Lstat(s.Path); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	return rootfs.SetTreeReadonly(s.Path, s.ReadOnly)
}

// holdSourcesStep opens the bind sources of the mount steps that follow,
// here in the sandbox's mount namespace while it is still a copy of the
// host's: once the host's root is staged over sandbox.Stage (/tmp), a
// source below it would name the staged copy's directory instead, and the
// parent cannot open them for an unprivileged sandbox, whose init is not
// dumpable (no /proc/<pid>/root). A source that does not open is left to
// the mount step, which says why.
func holdSourcesStep(a *applier, s *plan.Step) error {
	for i := range a.plan.Steps {
		st := &a.plan.Steps[i]
		if st.Op != plan.OpMount || st.Mount == nil || st.Mount.Kind != rootfs.KindBind || st.FD >= 0 {
			continue
		}
		fd, err := unix.Open(st.Mount.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		st.FD = len(a.fds)
		a.fds = append(a.fds, fd)
	}
	return nil
}
