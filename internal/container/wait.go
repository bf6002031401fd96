package container

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/signals"
)

// WaitForward waits for pid, a child of ours, forwarding the signals we get
// to it as runc does, and returns its exit code: the status, or 128+N for
// death by signal N.
func WaitForward(pid int) (int, error) {
	return waitForward(pid, notifyForwarded())
}

// notifyForwarded subscribes to the signals that are passed on. A caller
// whose process may run before it waits (a sandbox execs its COMMAND
// without waiting for `start`) subscribes before starting it, so that a
// signal sent meanwhile is queued for the process instead of killing hako.
func notifyForwarded() chan os.Signal {
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, signals.Forwarded...)
	return sigs
}

func waitForward(pid int, sigs chan os.Signal) (int, error) {
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		ws, err := wait4(pid)
		if err != nil {
			done <- result{255, err}
			return
		}
		done <- result{signals.ExitCode(ws), nil}
	}()
	for {
		select {
		case r := <-done:
			// No signal.Stop: it costs as much as Notify, and the
			// caller is about to exit.
			return r.code, r.err
		case s := <-sigs:
			_ = unix.Kill(pid, s.(unix.Signal))
		}
	}
}
