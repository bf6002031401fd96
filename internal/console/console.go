// Package console owns the container's terminal: a pty made inside the
// container's own devpts instance, its master passed over a unix socket with
// SCM_RIGHTS exactly as runc does (the message data is the pty's name), so
// containerd, podman and Docker receive it unchanged.
package console

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// NewPty opens a pty pair from the devpts instance whose ptmx is at ptmx.
// The slave is opened through the master with TIOCGPTPEER, never by a path
// that the container could have replaced (CVE-2025-52565 class).
func NewPty(ptmx string) (master, slave *os.File, err error) {
	fd, err := unix.Open(ptmx, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", ptmx, err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 5 {
		master.Close()
		return nil, nil, fmt.Errorf("open %s: not the pty multiplexer (char 5:2)", ptmx)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	// TIOCGPTPEER's argument is the open flags of the new fd.
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("open pty peer (TIOCGPTPEER): %w", errno)
	}
	sfd := int(r)
	n, _ := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	return master, os.NewFile(uintptr(sfd), fmt.Sprintf("/dev/pts/%d", n)), nil
}

// SendFd sends f over the unix socket sock.
func SendFd(sock *os.File, name string, f *os.File) error {
	rights := unix.UnixRights(int(f.Fd()))
	return unix.Sendmsg(int(sock.Fd()), []byte(name), rights, nil, 0)
}

// RecvFd receives one fd sent with SendFd.
func RecvFd(sock *os.File) (*os.File, error) {
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), name, oob, 0)
	if err != nil {
		return nil, fmt.Errorf("receive console fd: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive console fd: no fd in message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("receive console fd: want one fd")
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}
