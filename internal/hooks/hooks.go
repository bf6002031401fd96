// Package hooks runs OCI lifecycle hooks: the hook's path, args and env as
// given, the container state JSON on stdin, and its timeout.
//
// Where each kind runs is decided by the caller (runtime-spec config.md):
// prestart and createRuntime in the runtime's namespaces by `create`,
// createContainer in the container's namespaces before pivot_root and
// startContainer after it (both by the init), poststart by `start`, and
// poststop by `delete`.
package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/nsenter"
)

// ErrHook is wrapped by every hook failure.
var ErrHook = errors.New("hook failed")

// Run runs hooks in order, stopping at the first failure, in this
// process's working directory.
func Run(kind string, hs []specs.Hook, state []byte) error {
	return RunIn("", kind, hs, state)
}

// RunIn is Run with the hooks' working directory set to dir. `create` runs
// prestart and createRuntime hooks from the bundle, because runc's create
// and run chdir into the bundle before anything else and hooks read files
// relative to it.
func RunIn(dir, kind string, hs []specs.Hook, state []byte) error {
	for i, h := range hs {
		if err := runOne(h, state, dir); err != nil {
			return fmt.Errorf("%w: %s hook #%d (%s): %v", ErrHook, kind, i, h.Path, err)
		}
	}
	return nil
}

// RunAll runs every hook even when some fail (poststart, poststop: the spec
// says the lifecycle continues) and returns the failures joined.
func RunAll(kind string, hs []specs.Hook, state []byte) error {
	var errs []error
	for i, h := range hs {
		if err := runOne(h, state, ""); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s hook #%d (%s): %v", ErrHook, kind, i, h.Path, err))
		}
	}
	return errors.Join(errs...)
}

func runOne(h specs.Hook, state []byte, dir string) error {
	ctx := context.Background()
	if h.Timeout != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Path)
	cmd.Args = h.Args
	if len(cmd.Args) == 0 {
		cmd.Args = []string{h.Path}
	}
	cmd.Dir = dir
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin = bytes.NewReader(state)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Started with the caller's timer slack, as the container is.
	err := nsenter.WithCallerSlack(cmd.Start)
	if err == nil {
		err = cmd.Wait()
	}
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %ds", *h.Timeout)
	}
	if err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}
