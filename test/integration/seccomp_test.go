package integration

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

func TestSeccompErrnoAndArgs(t *testing.T) {
	e := newEnv(t)
	e.spec.Root.Readonly = false
	ret := uint(unix.EXDEV)
	e.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{
			// An argument condition: chmod to 0700 only.
			{Names: []string{"chmod"}, Action: specs.ActErrno, ErrnoRet: &ret,
				Args: []specs.LinuxSeccompArg{{Index: 1, Value: 0o700, Op: specs.OpEqualTo}}},
			{Names: []string{"fchmodat"}, Action: specs.ActErrno, ErrnoRet: &ret,
				Args: []specs.LinuxSeccompArg{{Index: 2, Value: 0o700, Op: specs.OpEqualTo}}},
			{Names: []string{"getcwd_does_not_exist_anywhere", "sethostname"}, Action: specs.ActErrno},
		},
	}
	out := e.run("sh", "-c", "mkdir /tmp/b; chmod 700 /tmp/b 2>&1; chmod 755 /tmp/b && echo b-ok; hostname x 2>&1; true")
	for _, want := range []string{"cross-device", "b-ok", "not permitted"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

// SCMP_ACT_NOTIFY: the listener fd reaches the agent at listenerPath with
// the container process state, and the agent's answer is what the
// container's syscall returns.
func TestSeccompNotifyListener(t *testing.T) {
	e := newEnv(t)
	e.spec.Root.Readonly = false
	sock := filepath.Join(t.TempDir(), "agent.sock")
	e.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction:    specs.ActAllow,
		ListenerPath:     sock,
		ListenerMetadata: "hello-agent",
		Syscalls:         []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	states := make(chan specs.ContainerProcessState, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		buf, oob := make([]byte, 8192), make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		c.Close()
		if err != nil {
			return
		}
		var st specs.ContainerProcessState
		json.Unmarshal(buf[:n], &st)
		states <- st
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		fds, _ := unix.ParseUnixRights(&msgs[0])
		fd := libseccomp.ScmpFd(fds[0])
		for {
			req, err := libseccomp.NotifReceive(fd)
			if err != nil {
				return
			}
			libseccomp.NotifRespond(fd, &libseccomp.ScmpNotifResp{ID: req.ID, Error: int32(unix.EXDEV)})
		}
	}()
	out := e.run("sh", "-c", "mkdir /tmp/x 2>&1; echo done")
	if !strings.Contains(out, "cross-device") {
		t.Fatalf("the agent's answer did not reach the container:\n%s", out)
	}
	st := <-states
	if st.Metadata != "hello-agent" || len(st.Fds) != 1 || st.Fds[0] != specs.SeccompFdName || st.Pid <= 0 || st.State.ID == "" {
		t.Fatalf("container process state sent to the agent: %+v", st)
	}
	os.Remove(sock)
}

// exec'd processes get the container's filter (the one create compiled and
// saved), as runc applies it.
func TestSeccompAppliesToExec(t *testing.T) {
	e := newEnv(t)
	e.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"sethostname"}, Action: specs.ActErrno}},
	}
	addCaps(e.spec, "CAP_SYS_ADMIN")
	e.background("scx")
	out, _, _ := e.hako("exec", "scx", "sh", "-c", "hostname x 2>&1; grep Seccomp: /proc/self/status")
	if !strings.Contains(out, "not permitted") || !strings.Contains(out, "Seccomp:\t2") {
		t.Fatalf("exec without the container's filter:\n%s", out)
	}
}

// The compiled profile is cached under --root; a second container with the
// same profile uses it, and a damaged entry is compiled again.
func TestSeccompCache(t *testing.T) {
	e := newEnv(t)
	e.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"sethostname"}, Action: specs.ActErrno}},
	}
	addCaps(e.spec, "CAP_SYS_ADMIN")
	e.spec.Process.Args = []string{"sh", "-c", "hostname x 2>&1; true"}
	e.write()
	for i, damage := range []bool{false, false, true} {
		if damage {
			entries, _ := filepath.Glob(filepath.Join(e.root, "@seccomp-cache", "*.json"))
			if len(entries) != 1 {
				t.Fatalf("cache entries: %v", entries)
			}
			os.WriteFile(entries[0], []byte("{garbage"), 0o600)
		}
		if out := e.hakoOK("run", "sc"+itoa(i)); !strings.Contains(out, "not permitted") {
			t.Fatalf("run %d without the filter:\n%s", i, out)
		}
	}
}

// No agent listening at listenerPath: create fails in runc's words and
// leaves nothing behind.
func TestSeccompAgentMissing(t *testing.T) {
	e := newEnv(t)
	e.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		ListenerPath:  filepath.Join(t.TempDir(), "nobody.sock"),
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActNotify}},
	}
	e.spec.Process.Args = []string{"true"}
	e.write()
	_, se, code := e.hako("run", "noagent")
	if code == 0 || !strings.Contains(se, "failed to connect with seccomp agent") {
		t.Errorf("run without an agent: exit %d, %q", code, se)
	}
	assertNothingLeft(t, e, "noagent")
}
