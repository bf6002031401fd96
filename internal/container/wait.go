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
	signal.Notify(sigs)
	defer signal.Stop(sigs)
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
			return r.code, r.err
		case s := <-sigs:
			sig, ok := s.(unix.Signal)
			// SIGCHLD is ours, SIGURG is the Go scheduler's, SIGWINCH
			// is the terminal relay's.
			if !ok || sig == unix.SIGCHLD || sig == unix.SIGURG || sig == unix.SIGWINCH || sig == unix.SIGPIPE {
				continue
			}
			_ = unix.Kill(pid, sig)
		}
	}
}
