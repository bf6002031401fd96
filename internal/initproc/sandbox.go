package initproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

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
