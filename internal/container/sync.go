package container

import (
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/frame"
)

// How long the parent waits on a container process that says nothing.
// Between two messages the child only does its own setup (mounts, the
// user switch, syscalls an agent answers), which takes milliseconds; a
// child silent this long is stuck (a cgroup frozen under it, a notified
// syscall nobody answers) and would otherwise hold hako forever. The
// createContainer hooks, which may run as long as their own timeout says,
// are announced and not bounded here.
var (
	syncIdleTimeout = time.Minute
	// syncPoll is how often a silent child is looked at (checkStuck).
	syncPoll = 200 * time.Millisecond
)

// errSilent is wrapped by the error for a child that stayed silent past
// syncIdleTimeout.
var errSilent = errors.New("the container process stopped answering")

// syncConn is the parent's end of a container process's sync socket. Every
// read is a recvmsg, so that no fd the child attaches to a frame (the
// seccomp listener) can be lost to a plain read: fds are queued in arrival
// order for the frame reader (internal/frame) to hand to their frame. And no
// read blocks for good: each wait is a poll(2) of syncPoll, after which
// checkStuck may end it (a frozen cgroup), and idle bounds the whole.
//
// The socket stays out of the Go runtime's poller on purpose. The poller
// registers an fd for writability as well (edge-triggered), and every frame
// the child reads frees buffer space, which the kernel signals: the
// constructor's dozen request frames woke hako's main thread a dozen times
// while the child worked, on a machine with two CPUs to share. A poll(2)
// asks for what is waited for, when it is waited for.
type syncConn struct {
	fd int
	// fds received and not yet claimed by a frame.
	fds frame.Queue
	// checkStuck reports why a silent child cannot go on, or nil.
	checkStuck func() error
	// idle is the bound on one wait; 0 means none.
	idle time.Duration
	pid  func() int
}

// newSyncConn takes the parent's end of a fresh socketpair.
func newSyncConn(fd int) (*syncConn, error) {
	// Non-blocking: a recvmsg or sendmsg never waits outside a poll.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sync socket: set non-blocking: %w", err)
	}
	return &syncConn{fd: fd, idle: syncIdleTimeout}, nil
}

func (c *syncConn) Write(p []byte) (int, error) { return c.sendmsg(p, nil) }

func (c *syncConn) Close() error { return unix.Close(c.fd) }

// wait polls the socket for events, up to timeout (-1: no bound); false
// when the time ran out.
func (c *syncConn) wait(events int16, timeout time.Duration) (bool, error) {
	ms := -1
	if timeout >= 0 {
		ms = int(timeout.Milliseconds())
	}
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(c.fd), Events: events}}, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("poll sync socket: %w", err)
		}
		return n > 0, nil
	}
}

// sendmsg sends data with rights, waiting while the socket is full.
func (c *syncConn) sendmsg(data, rights []byte) (int, error) {
	for {
		n, err := unix.SendmsgN(c.fd, data, rights, nil, 0)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if _, err := c.wait(unix.POLLOUT, -1); err != nil {
				return 0, err
			}
			continue
		}
		return n, err
	}
}

// send writes one frame.
func (c *syncConn) send(f *frame.Frame) error { return frame.Send(c.sendmsg, f) }

// closeFds closes fds received that no frame claimed.
func (c *syncConn) closeFds() {
	for _, fd := range c.fds.Drain() {
		unix.Close(fd)
	}
}

func (c *syncConn) Read(p []byte) (int, error) {
	start := time.Now()
	oob := make([]byte, frame.OOBSpace)
	for {
		n, oobn, flags, _, err := unix.Recvmsg(c.fd, p, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			ready, err := c.wait(unix.POLLIN, syncPoll)
			if err != nil {
				return 0, err
			}
			if ready {
				continue
			}
			if c.checkStuck != nil {
				if err := c.checkStuck(); err != nil {
					return 0, err
				}
			}
			if c.idle > 0 && time.Since(start) >= c.idle {
				return 0, fmt.Errorf("%w: container process %d: nothing from it for %s", errSilent, c.who(), c.idle)
			}
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read sync socket: %w", err)
		}
		if err := frame.TakeRights(&c.fds, oob[:oobn], flags); err != nil {
			return 0, fmt.Errorf("receive fds from container process %d: %w", c.who(), err)
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (c *syncConn) who() int {
	if c.pid == nil {
		return -1
	}
	return c.pid()
}
