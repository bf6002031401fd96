package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// hangLimit is how long a hako command may take before a test calls it
// hung: far above what any of these take, only there so that a hang fails
// the test instead of stalling the suite.
const hangLimit = 60 * time.Second

// hakoBounded runs hako like e.hako, failing the test if it does not end
// within hangLimit.
func (e *env) hakoBounded(args ...string) (string, string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, hakoBin, append([]string{"--root", e.root}, args...)...)
	cmd.Dir = e.bundle
	so, se := tempOut(e.t), tempOut(e.t)
	cmd.Stdout, cmd.Stderr = so, se
	err := cmd.Run()
	if ctx.Err() != nil {
		e.t.Fatalf("hako %s hung (killed after %s)\nstdout: %s\nstderr: %s", strings.Join(args, " "), hangLimit, readAll(so), readAll(se))
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("hako %v: %v", args, err)
	}
	return readAll(so), readAll(se), code
}

// notifyAgent is a seccomp agent at sock that lets every notified syscall
// go on (SECCOMP_USER_NOTIF_FLAG_CONTINUE), except getppid, which it
// answers with 4242, and records which syscalls it saw.
type notifyAgent struct {
	mu   sync.Mutex
	seen map[string]bool
}

func startNotifyAgent(t *testing.T, sock string) *notifyAgent {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	a := &notifyAgent{seen: map[string]bool{}}
	getppid, _ := libseccomp.GetSyscallFromName("getppid")
	go func() {
		// One connection per listener fd: the init's, then each exec's.
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			go a.serve(c, getppid)
		}
	}()
	return a
}

func (a *notifyAgent) serve(c *net.UnixConn, getppid libseccomp.ScmpSyscall) {
	buf, oob := make([]byte, 8192), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	c.Close()
	if err != nil {
		return
	}
	msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	if len(msgs) != 1 {
		return
	}
	fds, _ := unix.ParseUnixRights(&msgs[0])
	if len(fds) != 1 {
		return
	}
	defer unix.Close(fds[0])
	fd := libseccomp.ScmpFd(fds[0])
	for {
		req, err := libseccomp.NotifReceive(fd)
		if err != nil {
			return
		}
		name, _ := req.Data.Syscall.GetName()
		a.mu.Lock()
		a.seen[name] = true
		a.mu.Unlock()
		resp := &libseccomp.ScmpNotifResp{ID: req.ID, Flags: libseccomp.NotifRespFlagContinue}
		if req.Data.Syscall == getppid {
			resp = &libseccomp.ScmpNotifResp{ID: req.ID, Val: 4242}
		}
		libseccomp.NotifRespond(fd, resp)
	}
}

func (a *notifyAgent) saw(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[name]
}

// Notify rules for the syscalls the init itself makes after loading the
// filter: the listener fd must be with the agent before any of them, with
// no_new_privs (filter loaded last) and without (filter loaded before the
// user switch). Before, the init wrote and read the sync socket between
// loading the filter and sending the fd, and hung in a notified read with
// the only listener in its own hands (and write was refused outright).
func TestSeccompNotifyInitSyscalls(t *testing.T) {
	if api, err := libseccomp.GetAPI(); err != nil || api < 5 {
		t.Skipf("libseccomp lacks user notification (API level %d, %v)", api, err)
	}
	for _, nnp := range []bool{true, false} {
		t.Run(fmt.Sprintf("noNewPrivileges=%v", nnp), func(t *testing.T) {
			e := newEnv(t)
			e.spec.Root.Readonly = false
			e.spec.Process.NoNewPrivileges = nnp
			e.spec.Process.Cwd = "/tmp"
			sock := filepath.Join(t.TempDir(), "agent.sock")
			agent := startNotifyAgent(t, sock)
			e.spec.Linux.Seccomp = &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				ListenerPath:  sock,
				Syscalls: []specs.LinuxSyscall{{Names: []string{
					"write", "read", "close", "fchdir", "execve", "getppid", "openat",
					"prctl", "capset", "setresuid", "setresgid", "setgroups", "umask",
				}, Action: specs.ActNotify}},
			}
			e.spec.Process.Args = []string{"sh", "-c", "echo ppid=$PPID"}
			e.write()
			id := "b-notify-init-" + fmt.Sprint(nnp)
			so, se, code := e.hakoBounded("run", "--bundle", e.bundle, id)
			if code != 0 || !strings.Contains(so, "ppid=4242") {
				t.Fatalf("exit %d, want the agent's getppid answer\nstdout: %s\nstderr: %s", code, so, se)
			}
			for _, name := range []string{"execve", "write", "close"} {
				if !agent.saw(name) {
					t.Errorf("the agent never saw %s", name)
				}
			}
		})
	}
}

// An exec'd process gets the container's notifying filter too, and its own
// listener fd reaches the agent before the process needs an answer.
func TestSeccompNotifyExec(t *testing.T) {
	if api, err := libseccomp.GetAPI(); err != nil || api < 5 {
		t.Skipf("libseccomp lacks user notification (API level %d, %v)", api, err)
	}
	e := newEnv(t)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	startNotifyAgent(t, sock)
	e.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		ListenerPath:  sock,
		Syscalls: []specs.LinuxSyscall{{Names: []string{
			"write", "read", "close", "execve", "getppid", "openat", "fchdir",
		}, Action: specs.ActNotify}},
	}
	e.spec.Process.Args = []string{"sleep", "1000"}
	e.write()
	if so, se, code := e.hakoBounded("run", "-d", "--bundle", e.bundle, "b-notify-exec"); code != 0 {
		t.Fatalf("run -d: exit %d\nstdout: %s\nstderr: %s", code, so, se)
	}
	so, se, code := e.hakoBounded("exec", "b-notify-exec", "sh", "-c", "echo ppid=$PPID")
	if code != 0 || !strings.Contains(so, "ppid=4242") {
		t.Fatalf("exec: exit %d, want the agent's getppid answer\nstdout: %s\nstderr: %s", code, so, se)
	}
}

// runc accepts linux.seccomp.listenerPath with no SCMP_ACT_NOTIFY rule:
// there is no listener fd, nothing is sent, nothing waits for an agent
// (none listens at the path here).
func TestSeccompListenerPathWithoutNotify(t *testing.T) {
	e := newEnv(t)
	e.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		ListenerPath:  filepath.Join(t.TempDir(), "nobody-listens.sock"),
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"sethostname"}, Action: specs.ActErrno}},
	}
	addCaps(e.spec, "CAP_SYS_ADMIN")
	e.spec.Process.Args = []string{"sh", "-c", "hostname x 2>&1; echo b-done"}
	e.write()
	so, se, code := e.hakoBounded("run", "--bundle", e.bundle, "b-listener-no-notify")
	if code != 0 || !strings.Contains(so, "not permitted") || !strings.Contains(so, "b-done") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, so, se)
	}
}

// frozenCgroup makes a v1 freezer cgroup name for the test and restores the
// host afterwards: thawed, and removed from every hierarchy.
func frozenCgroup(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join("/sys/fs/cgroup/freezer", name)
	if _, err := os.Stat("/sys/fs/cgroup/freezer/freezer.state"); err != nil {
		if _, err := os.Stat("/sys/fs/cgroup/freezer/cgroup.procs"); err != nil {
			t.Skip("needs the cgroup v1 freezer at /sys/fs/cgroup/freezer")
		}
	}
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
		for _, d := range cgroupDirs(name) {
			for _, pid := range strings.Fields(readFileOr(filepath.Join(d, "cgroup.procs"))) {
				var p int
				fmt.Sscan(pid, &p)
				unix.Kill(p, unix.SIGKILL)
			}
		}
		for _, d := range cgroupDirs(name) {
			for i := 0; i < 100 && os.Remove(d) != nil && !os.IsNotExist(os.Remove(d)); i++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
	return dir
}

func readFileOr(p string) string {
	data, _ := os.ReadFile(p)
	return string(data)
}

// cgroupDirs lists the cgroup directories called name that exist in any
// hierarchy.
func cgroupDirs(name string) []string {
	var out []string
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range append(hs, "/sys/fs/cgroup") {
		d := filepath.Join(h, name)
		if _, err := os.Stat(d); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// checkNothingLeft fails the test if the container left a state entry, a
// process or a cgroup of its own.
func checkNothingLeft(t *testing.T, e *env, id, name string) {
	t.Helper()
	if ents, _ := os.ReadDir(e.root); len(ents) > 0 {
		var names []string
		for _, ent := range ents {
			names = append(names, ent.Name())
		}
		if len(names) != 1 || !strings.HasPrefix(names[0], "@") {
			t.Errorf("state left under %s: %v", e.root, names)
		}
	}
	for _, d := range cgroupDirs(name) {
		if procs := strings.TrimSpace(readFileOr(filepath.Join(d, "cgroup.procs"))); procs != "" {
			t.Errorf("processes left in %s: %s", d, procs)
		}
		if !strings.HasPrefix(d, "/sys/fs/cgroup/freezer/") {
			t.Errorf("cgroup left: %s", d)
		}
	}
}

// run into a cgroup someone froze beforehand: the init would stop as it
// joins, before it can say anything, and hako waited for it forever.
// runc refuses it with "container's cgroup unexpectedly frozen"; so does
// hako, leaving nothing behind.
func TestRunIntoFrozenCgroup(t *testing.T) {
	e := newEnv(t)
	name := fmt.Sprintf("b-frozen-%d", os.Getpid())
	dir := frozenCgroup(t, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("FROZEN"), 0); err != nil {
		t.Fatal(err)
	}
	e.spec.Linux.CgroupsPath = "/" + name
	e.spec.Process.Args = []string{"true"}
	e.write()
	so, se, code := e.hakoBounded("run", "--bundle", e.bundle, "b-frozen")
	if code == 0 || !strings.Contains(se, "unexpectedly frozen") || !strings.Contains(se, name) {
		t.Fatalf("exit %d, want a frozen-cgroup error naming the cgroup\nstdout: %s\nstderr: %s", code, so, se)
	}
	t.Logf("stderr: %s", se)
	checkNothingLeft(t, e, "b-frozen", name)
}

// A cgroup frozen while create waits for its init (here by a prestart
// hook, which runs while the init waits for the parent's go-ahead): the
// wait on the sync socket must end with an error, and the failed
// container must be killed and removed, cgroups included, which takes
// thawing it first.
func TestCreateFrozenMidway(t *testing.T) {
	e := newEnv(t)
	name := fmt.Sprintf("b-midfreeze-%d", os.Getpid())
	dir := frozenCgroup(t, name)
	e.spec.Linux.CgroupsPath = "/" + name
	e.spec.Hooks = &specs.Hooks{Prestart: []specs.Hook{{ //nolint:staticcheck // prestart runs in the parent: the point here
		Path: "/bin/sh",
		Args: []string{"sh", "-c", "echo FROZEN > " + filepath.Join(dir, "freezer.state")},
	}}}
	e.spec.Process.Args = []string{"true"}
	e.write()
	so, se, code := e.hakoBounded("run", "--bundle", e.bundle, "b-midfreeze")
	if code == 0 || !strings.Contains(se, "frozen") {
		t.Fatalf("exit %d, want a frozen-cgroup error\nstdout: %s\nstderr: %s", code, so, se)
	}
	t.Logf("stderr: %s", se)
	checkNothingLeft(t, e, "b-midfreeze", name)
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("cgroup hako made is left: %s", dir)
	}
}
