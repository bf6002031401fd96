package container

import (
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/initproc"
)

// forwardNotifyFd receives the container process's seccomp listener fd and
// sends it to the agent at listenerPath with the container process state,
// one connection per fd, as the runtime-spec asks (runc and crun do the
// same). A failure is an error: the process would otherwise block forever
// in a notified syscall.
func (p *proc) forwardNotifyFd(sc *specs.LinuxSeccomp, st specs.State) error {
	if err := p.send(initproc.Message{Type: initproc.MsgSendFd}); err != nil {
		return err
	}
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(p.conn.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return fmt.Errorf("receive seccomp notify fd: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return fmt.Errorf("receive seccomp notify fd: no fd in the message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return fmt.Errorf("receive seccomp notify fd: want one fd")
	}
	defer unix.Close(fds[0])
	if sc == nil || sc.ListenerPath == "" {
		return fmt.Errorf("linux.seccomp.listenerPath: required with SCMP_ACT_NOTIFY rules")
	}
	data, err := json.Marshal(specs.ContainerProcessState{
		Version:  specs.Version,
		Fds:      []string{specs.SeccompFdName},
		Pid:      p.pid,
		Metadata: sc.ListenerMetadata,
		State:    st,
	})
	if err != nil {
		return err
	}
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(sock)
	if err := unix.Connect(sock, &unix.SockaddrUnix{Name: sc.ListenerPath}); err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath %s: connect: %w", sc.ListenerPath, err)
	}
	if err := unix.Sendmsg(sock, data, unix.UnixRights(fds[0]), nil, 0); err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath %s: send: %w", sc.ListenerPath, err)
	}
	return nil
}

// specState is the runtime-spec state handed to a seccomp agent.
func (c *Container) specState(s Status) specs.State {
	return specs.State{
		Version: specs.Version, ID: c.State.ID, Status: specs.ContainerState(s),
		Pid: c.State.InitPid, Bundle: c.State.Bundle, Annotations: c.State.Annotations,
	}
}
