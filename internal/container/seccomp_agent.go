package container

import (
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// forwardListener sends the container process's seccomp listener fd to the
// agent at listenerPath with the container process state, one connection
// per fd, as the runtime-spec asks (runc and crun do the same). It closes
// fd. A failure is an error: the process would otherwise block forever in
// a notified syscall.
func forwardListener(fd, pid int, sc *specs.LinuxSeccomp, st specs.State) error {
	defer unix.Close(fd)
	if sc == nil || sc.ListenerPath == "" {
		return fmt.Errorf("linux.seccomp.listenerPath: required with SCMP_ACT_NOTIFY rules")
	}
	data, err := json.Marshal(specs.ContainerProcessState{
		Version:  specs.Version,
		Fds:      []string{specs.SeccompFdName},
		Pid:      pid,
		Metadata: sc.ListenerMetadata,
		State:    st,
	})
	if err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath %s: container process state: %w", sc.ListenerPath, err)
	}
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath %s: socket: %w", sc.ListenerPath, err)
	}
	defer unix.Close(sock)
	if err := unix.Connect(sock, &unix.SockaddrUnix{Name: sc.ListenerPath}); err != nil {
		// runc's words first: engines and users search for them.
		return fmt.Errorf("failed to connect with seccomp agent specified in the seccomp profile: linux.seccomp.listenerPath %s: %w", sc.ListenerPath, err)
	}
	if err := unix.Sendmsg(sock, data, unix.UnixRights(fd), nil, 0); err != nil {
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
