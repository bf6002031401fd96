package container

import (
	"errors"
	"fmt"
	"io"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/frame"
	"github.com/hako-runtime/hako/internal/nsenter"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/signals"
)

// OneShot is a process started from a plan with no state, cgroup or
// container id: a sandbox that lives as long as the command that started
// it waits (`hako bwrap`).
type OneShot struct {
	Plan    *plan.Plan
	Unshare uintptr
	// Join: namespaces to enter, by path; NsOptions: nsenter.Opt* bits
	// (bwrap's user namespace options).
	Join             []string
	NsOptions        uint32
	UIDMaps, GIDMaps []specs.LinuxIDMapping
	// Files go with the plan; its steps' FD fields index them.
	Files []*os.File
	// Inherit are the caller's fds the command gets at their own numbers
	// (bwrap passes what it does not use); closed here once passed.
	Inherit               []int
	Stdin, Stdout, Stderr *os.File
	// OnPid runs once the process exists, before its plan is sent.
	OnPid func(pid int) error
	// OnSetup runs when the process reaches its plan's OpRuntimeHooks
	// step, which waits for it.
	OnSetup func(pid int) error
	// SealDir is the empty layer of the binary seal's overlay
	// (CVE-2019-5736): a sandbox's processes may be as privileged as a
	// container's, so hako re-executes itself sealed here too. Where no
	// overlay can be made (an unprivileged caller), a sealed memfd copy.
	SealDir string
}

// StartOneShot starts the process and returns once it has applied every
// step up to its exec; the caller waits for it (it is our child).
func StartOneShot(o *OneShot) (int, error) {
	so := &spawnOpts{
		req: nsenter.Request{Unshare: o.Unshare, Join: o.Join, Options: o.NsOptions}, plan: o.Plan, passFds: o.Files, inherit: o.Inherit,
		uidMaps: o.UIDMaps, gidMaps: o.GIDMaps, stdin: o.Stdin, stdout: o.Stdout, stderr: o.Stderr,
		rootless: os.Geteuid() != 0, onPid: o.OnPid, sealDir: o.SealDir,
	}
	if so.sealDir == "" {
		return 0, errors.New("one-shot sandbox: no directory for the binary seal (CVE-2019-5736)")
	}
	p, err := spawn(so)
	if err != nil {
		return 0, err
	}
	for {
		m, err := p.next()
		if errors.Is(err, io.EOF) {
			p.kill()
			return 0, fmt.Errorf("%w: exited during setup", ErrProcess)
		}
		if err != nil {
			p.kill()
			return 0, err
		}
		if m == frame.TypeHooks && o.OnSetup != nil {
			if err := o.OnSetup(p.pid); err != nil {
				p.kill()
				return 0, err
			}
			if err := p.send(frame.TypeHooksDone); err != nil {
				p.kill()
				return 0, err
			}
			continue
		}
		if m == frame.TypeReady {
			break
		}
		p.kill()
		return 0, fmt.Errorf("%w: unexpected message %q", ErrProcess, m)
	}
	p.conn.Close()
	return p.pid, nil
}

// WaitStatus waits for pid and returns its exit status as a shell reports
// it: the code, or 128+N for signal N.
func WaitStatus(pid int) (int, error) {
	ws, err := wait4(pid)
	if err != nil {
		return 0, fmt.Errorf("wait for %d: %w", pid, err)
	}
	return signals.ExitCode(ws), nil
}

// wait4 reaps pid, our child, waiting as long as it takes.
func wait4(pid int) (unix.WaitStatus, error) {
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if !errors.Is(err, unix.EINTR) {
			return ws, err
		}
	}
}
