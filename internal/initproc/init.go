package initproc

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/frame"
	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/nsenter"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/state"
	"github.com/hako-runtime/hako/internal/timing"
)

// IsChild reports whether this process was started by hako as a container
// process (nsexec.c has run), or is one that re-executed itself.
func IsChild() bool { return os.Getenv(nsenter.EnvSync) != "" || os.Getenv(EnvResume) != "" }

// Main runs the child side and never returns.
func Main() {
	// Capabilities, seccomp and no_new_privs are per thread: everything
	// happens on this one, which is the one that calls execve.
	runtime.LockOSThread()
	// Stamped before anything else, for --debug's breakdown; it costs one
	// vDSO call when nobody asks.
	mainAt := time.Now()
	if os.Getenv(EnvResume) != "" {
		resumeMain()
	}
	fd, err := strconv.Atoi(os.Getenv(nsenter.EnvSync))
	if err != nil {
		os.Exit(1)
	}
	os.Unsetenv(nsenter.EnvSync)
	a := &applier{conn: frame.NewConn(fd), sys: realSys{}, status: -1, block: -1}
	if r, ok, err := nsenter.CResumed(); ok {
		cResume(a, r, err, mainAt)
	}
	p, err := a.receive()
	if err != nil {
		a.fail(err)
	}
	a.plan = p
	if p.Timings {
		a.report = &timing.Report{Main: mainAt, Plan: time.Now(), Steps: make([]time.Duration, len(p.Steps))}
	}
	a.fail(apply(a, p.Steps, handlers))
}

// cResume goes on with a plan nsexec.c began in C (nsenter.CResumed), at
// the step it handed over, unapplied or failed: what the steps before it
// left is the plan's fds it did not take and the rootfs it bound.
func cResume(a *applier, r *nsenter.CResume, err error, mainAt time.Time) {
	if err != nil {
		a.fail(fmt.Errorf("go on with the plan nsexec.c began: %w", err))
	}
	a.plan, a.fds, a.number = r.Plan, r.Fds, r.Step
	if err := checkFds(r.Plan, r.Fds, "the plan"); err != nil {
		a.fail(err)
	}
	if r.Root >= 0 {
		for i := r.Step - 1; i >= 0; i-- {
			if s := &r.Plan.Steps[i]; s.Op == plan.OpBindRoot {
				a.root = rootfs.OpenedRoot(s.Path, r.Root, s.Cgroups)
				break
			}
		}
		if a.root == nil {
			a.fail(errors.New("go on with the plan nsexec.c began: a rootfs fd, but no bind-root step before"))
		}
	}
	if r.Plan.Timings {
		a.report = &timing.Report{Main: mainAt, Plan: time.Now(), Steps: make([]time.Duration, len(r.Plan.Steps)), GoFrom: r.Step + 1}
	}
	a.fail(apply(a, r.Plan.Steps[r.Step:], handlers))
}

// checkFds refuses a plan whose steps name more fds than came with it
// (with: what they came with), before any step runs.
func checkFds(p *plan.Plan, fds []int, with string) error {
	for i, s := range p.Steps {
		if s.FD >= len(fds) {
			return fmt.Errorf("plan step %d %s: fd #%d, but %d fds came with %s", i+1, s.Op, s.FD, len(fds), with)
		}
	}
	return nil
}

// receive reads the plan frame and takes its fds.
func (a *applier) receive() (*plan.Plan, error) {
	f, err := a.conn.Next()
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	a.fds = f.Fds
	if f.Type != frame.TypePlan {
		return nil, fmt.Errorf("read plan: got a %s frame", f.Type)
	}
	p, err := plan.Decode(f.Payload)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	return p, checkFds(p, a.fds, "the plan")
}

func (a *applier) send(t frame.Type, payload []byte) error {
	return a.conn.Send(&frame.Frame{Type: t, Payload: payload})
}

func (a *applier) fail(err error) {
	if err == nil {
		err = errors.New("container process returned without exec")
	}
	// After "ready" nobody listens on the socket any more (the parent of
	// a created container is gone): stderr is the container's, and the
	// only place left to say why it died.
	if a.send(frame.TypeError, []byte(err.Error())) != nil {
		fmt.Fprintf(os.Stderr, "hako init: %v\n", err)
	}
	os.Exit(1)
}

func (a *applier) await(want frame.Type) error {
	f, err := a.conn.Next()
	if err != nil {
		return fmt.Errorf("wait for %s: %w", want, err)
	}
	if f.Type != want {
		return fmt.Errorf("wait for %s: got %s %s", want, f.Type, f.Payload)
	}
	return nil
}

// waitStart blocks until `start` opens the exec fifo for reading. The fifo
// is reached through the state directory's fd, which needs no /proc inside
// the container and cannot be redirected by anything in the rootfs.
func waitStart(dirFd int) error {
	fd, err := unix.Openat(dirFd, state.FifoName, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	defer unix.Close(fd)
	unix.Close(dirFd)
	if _, err := unix.Write(fd, []byte{'0'}); err != nil {
		return fmt.Errorf("write exec fifo: %w", err)
	}
	return nil
}

func joinSessionKeyring() {
	// A fresh session keyring, so that containers do not share the
	// caller's keys. Kernels without keyrings, or a seccomp profile of the
	// caller's, may refuse: runc ignores that too.
	_, _ = unix.KeyctlJoinSessionKeyring("_ses")
}
