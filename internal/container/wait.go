package container

import (
	"errors"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// WaitForward waits for pid, a child of ours, forwarding the signals we get
// to it as runc does, and returns its exit code: the status, or 128+N for
// death by signal N.
func WaitForward(pid int) (int, error) {
	sigs := make(chan os.Signal, 32)
	// A list, not signal.Notify(sigs) for every signal: enabling all 65
	// costs milliseconds, more than the rest of a short exec. These are
	// the ones a shell, a supervisor or a terminal sends.
	signal.Notify(sigs, forwarded...)
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				done <- result{255, err}
				return
			}
			break
		}
		switch {
		case ws.Exited():
			done <- result{ws.ExitStatus(), nil}
		case ws.Signaled():
			done <- result{128 + int(ws.Signal()), nil}
		default:
			done <- result{255, nil}
		}
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

// forwarded are the signals run and exec pass on to the container's process.
var forwarded = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGALRM, unix.SIGPWR,
}
