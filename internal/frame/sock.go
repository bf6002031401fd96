package frame

import (
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// Sendmsg is one sendmsg(2) on a stream socket: it returns how many bytes
// of data went.
type Sendmsg func(data, oob []byte) (int, error)

// Send writes a frame: the first sendmsg carries the fds, the rest of a
// long payload follows in plain sends (a stream socket may take less than
// all of it at once).
func Send(send Sendmsg, f *Frame) error {
	data, err := Encode(f)
	if err != nil {
		return err
	}
	var oob []byte
	if len(f.Fds) > 0 {
		oob = unix.UnixRights(f.Fds...)
	}
	for len(data) > 0 {
		n, err := send(data, oob)
		if err != nil {
			return fmt.Errorf("send %s frame: %w", f.Type, err)
		}
		data, oob = data[n:], nil
	}
	return nil
}

// OOBSpace is the control buffer a receiver needs for one frame's fds.
var OOBSpace = unix.CmsgSpace(4 * MaxFds)

// TakeRights parses the SCM_RIGHTS of one recvmsg into q. A truncated
// control message (more fds than OOBSpace holds) is an error: fds the
// kernel dropped cannot be paired with their frame.
func TakeRights(q *Queue, oob []byte, flags int) error {
	if len(oob) > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob)
		if err != nil {
			return fmt.Errorf("parse control message: %w", err)
		}
		for i := range msgs {
			fds, err := unix.ParseUnixRights(&msgs[i])
			if err != nil {
				return fmt.Errorf("parse SCM_RIGHTS: %w", err)
			}
			q.Push(fds...)
		}
	}
	if flags&unix.MSG_CTRUNC != 0 {
		return fmt.Errorf("%w: fds truncated (more than %d in one message)", unix.EMSGSIZE, MaxFds)
	}
	return nil
}

// Conn is a blocking socket that speaks frames: the container process's
// end.
type Conn struct {
	fd  int
	q   Queue
	oob []byte
	r   *Reader
}

// NewConn wraps a connected stream socket; the caller keeps ownership of fd.
func NewConn(fd int) *Conn {
	c := &Conn{fd: fd, oob: make([]byte, OOBSpace)}
	c.r = NewReader(c, &c.q)
	return c
}

// Fd is the socket.
func (c *Conn) Fd() int { return c.fd }

// Read is the io.Reader the frame reader reads through: every read is a
// recvmsg, so no fd is lost to a plain read.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		n, oobn, flags, _, err := unix.Recvmsg(c.fd, p, c.oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("recvmsg: %w", err)
		}
		if err := TakeRights(&c.q, c.oob[:oobn], flags); err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// Next reads the next frame.
func (c *Conn) Next() (*Frame, error) { return c.r.Next() }

// Send writes a frame.
func (c *Conn) Send(f *Frame) error {
	return Send(func(data, oob []byte) (int, error) {
		for {
			n, err := unix.SendmsgN(c.fd, data, oob, nil, 0)
			if err != unix.EINTR {
				return n, err
			}
		}
	}, f)
}
