package netns

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/explain"
)

// Ahead is a network namespace being made on another thread while the
// caller goes on with other work; the thread unshares, opens the new
// namespace and setns's back to its own.
//
// A network namespace is by far the slowest namespace to create (~0.45 ms
// here: the loopback device, the per-namespace sysctl tables and every
// subsystem's pernet init), and a container process that unshares its own
// pays that on create's critical path. A new network namespace is the
// same object whichever process creates it, as long as that process is in
// the user namespace that is to own it: for a container without a user
// namespace of its own, hako makes it in parallel with the cgroup and state
// work and the container process joins it with setns. A container with a
// user namespace must have its network namespace owned by that one, and
// still unshares it itself.
type Ahead struct {
	ch  chan aheadResult
	got bool
	res aheadResult
}

type aheadResult struct {
	f   *os.File
	err error
}

// StartAhead starts making a network namespace.
func StartAhead() *Ahead {
	a := &Ahead{ch: make(chan aheadResult, 1)}
	go a.make()
	return a
}

func (a *Ahead) make() {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		a.ch <- aheadResult{err: err}
		return
	}
	defer orig.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		a.ch <- aheadResult{err: explain.Wrap(explain.UnshareOther, "network namespace", err)}
		return
	}
	f, err := os.Open("/proc/thread-self/ns/net")
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Left locked: the goroutine ends, and Go ends the thread
		// with it rather than run anything else in the new namespace
		// (the main thread it parks for good; create fails either way).
		if f != nil {
			f.Close()
		}
		a.ch <- aheadResult{err: fmt.Errorf("return to hako's network namespace: setns: %w", err)}
		return
	}
	runtime.UnlockOSThread()
	a.ch <- aheadResult{f, err}
}

// File waits for the namespace and returns its file, open until Close.
func (a *Ahead) File() (*os.File, error) {
	a.wait()
	return a.res.f, a.res.err
}

// Close lets go of the namespace (a process that joined it keeps it).
func (a *Ahead) Close() {
	if a == nil {
		return
	}
	a.wait()
	if a.res.f != nil {
		a.res.f.Close()
		a.res.f = nil
	}
}

func (a *Ahead) wait() {
	if !a.got {
		a.res, a.got = <-a.ch, true
	}
}
