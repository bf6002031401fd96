package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
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
// read blocks for good: the socket is non-blocking, each wait is cut into
// syncPoll slices, after each of which checkStuck may end it (a frozen
// cgroup), and idle bounds the whole.
type syncConn struct {
	f  *os.File
	rc syscall.RawConn
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
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sync socket: set non-blocking: %w", err)
	}
	// Non-blocking, so os.File puts it in the runtime's poller, which
	// is what makes read deadlines work. Never call f.Fd(): it would
	// turn the fd blocking again.
	f := os.NewFile(uintptr(fd), "sync-parent")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sync socket: %w", err)
	}
	return &syncConn{f: f, rc: rc, idle: syncIdleTimeout}, nil
}

func (c *syncConn) Write(p []byte) (int, error) { return c.f.Write(p) }

func (c *syncConn) Close() error { return c.f.Close() }

// sendmsg sends data with rights through the poller.
func (c *syncConn) sendmsg(data, rights []byte) (int, error) {
	var n int
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		for {
			n, serr = unix.SendmsgN(int(fd), data, rights, nil, 0)
			if serr != unix.EINTR {
				return serr != unix.EAGAIN
			}
		}
	})
	if err != nil {
		return 0, err
	}
	return n, serr
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
		if err := c.f.SetReadDeadline(time.Now().Add(syncPoll)); err != nil {
			return 0, fmt.Errorf("sync socket: set deadline: %w", err)
		}
		var n, oobn, flags int
		var rerr error
		err := c.rc.Read(func(fd uintptr) bool {
			for {
				n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), p, oob, unix.MSG_CMSG_CLOEXEC)
				if rerr != unix.EINTR {
					return rerr != unix.EAGAIN
				}
			}
		})
		if err == nil {
			err = rerr
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
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
