package container

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// --pidfd-socket (runc 1.2+): the caller listens on a unix socket and gets
// a pidfd of the container's init ("standard", run and create) or of the
// exec'd process ("setns"), sent with SCM_RIGHTS; the payload is runc's
// init type, which runc's own consumers (tests/cmd/pidfd-kill) ignore but
// a caller may read. A pidfd lets a supervisor signal and wait for exactly
// that process, with no pid reuse race.

// dialPidfdSocket connects before anything is started, as runc does: a
// wrong path fails the command, not a container half made.
func dialPidfdSocket(path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect to --pidfd-socket %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// sendPidfd sends a pidfd of pid. runc opens it inside, from the init
// itself (pidfd_open(getpid())); hako opens it from the host while the
// process is its child waiting on the sync socket, before it can exec
// the user's program, so it cannot have exited and had its pid reused.
func sendPidfd(sock *os.File, pid int, initType string) error {
	if sock == nil {
		return nil
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("--pidfd-socket: pidfd_open %d (needs Linux 5.3): %w", pid, err)
	}
	defer unix.Close(pidfd)
	if err := unix.Sendmsg(int(sock.Fd()), []byte(initType), unix.UnixRights(pidfd), nil, 0); err != nil {
		return fmt.Errorf("--pidfd-socket %s: send pidfd: %w", sock.Name(), err)
	}
	return nil
}
