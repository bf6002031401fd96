package netns

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/explain"
)

// Ahead is a network namespace being made on a thread of its own while the
// caller goes on with other work.
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

// onMainThread is replaced by tests, which cannot choose the thread a
// goroutine lands on.
var onMainThread = func() bool { return unix.Gettid() == unix.Getpid() }

// StartAhead starts making a network namespace.
func StartAhead() *Ahead {
	a := &Ahead{ch: make(chan aheadResult, 1)}
	go func() {
		// Never unlocked: the goroutine ends locked, so Go ends the
		// thread with it and nothing else ever runs in the namespace
		// this thread is left in.
		runtime.LockOSThread()
		if onMainThread() {
			// The main thread is never ended: Go parks it for good,
			// and its namespaces are what /proc/self shows. hako's
			// main goroutine keeps that thread (cmd/hako), so this
			// happens only to callers that do not: they get no
			// namespace, and the container process unshares its own.
			runtime.UnlockOSThread()
			a.ch <- aheadResult{}
			return
		}
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			a.ch <- aheadResult{err: explain.Wrap(explain.UnshareOther, "network namespace", err)}
			return
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		a.ch <- aheadResult{f, err}
	}()
	return a
}

// File waits for the namespace and returns its file, open until Close; nil
// and no error when none could be made on a thread of its own, for the
// container process to unshare one as before.
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
