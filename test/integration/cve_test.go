package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// CVE-2019-5736: a process of the container opens /proc/<pid>/exe of a hako
// process in its namespaces (here the init waiting for start), keeps the
// O_PATH handle past that process's exec or exit, and reopens it for
// writing to replace hako's binary. The sealed overlay makes that reopen
// fail with EROFS; without the seal it would succeed on this test's copy.
func TestCVE2019_5736_RuntimeBinaryNotWritable(t *testing.T) {
	e := newEnv(t)
	e.spec.Process.Args = []string{"true"}
	e.write()
	e.hakoOK("create", "cve1")
	var st struct{ Pid int }
	json.Unmarshal([]byte(e.hakoOK("state", "cve1")), &st)
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/exe", st.Pid), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	e.hakoOK("delete", "--force", "cve1")
	w, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(w)
		t.Fatal("the runtime binary could be reopened for writing through the init's /proc/<pid>/exe")
	}
	if !errors.Is(err, unix.EROFS) {
		t.Fatalf("reopen failed with %v, want EROFS from the sealed overlay", err)
	}
}

// CVE-2024-21626: process.cwd naming one of the runtime's own fds through
// /proc/self/fd must never give the process a working directory on the host.
func TestCVE2024_21626_CwdThroughLeakedFd(t *testing.T) {
	e := newEnv(t)
	for fd := 3; fd <= 12; fd++ {
		for _, cmd := range []string{"run", "exec"} {
			cwd := fmt.Sprintf("/proc/self/fd/%d", fd)
			var so, se string
			var code int
			if cmd == "run" {
				e.spec.Process.Cwd = cwd
				e.spec.Process.Args = []string{"sh", "-c", "pwd; ls"}
				e.write()
				so, se, code = e.hako("run", fmt.Sprintf("cwd%d", fd))
			} else {
				e.spec.Process.Cwd = "/"
				if fd == 3 {
					e.background("cwdexec")
				}
				so, se, code = e.hako("exec", "--cwd", cwd, "cwdexec", "sh", "-c", "pwd; ls")
			}
			if code == 0 && !strings.HasPrefix(so, "/") {
				t.Fatalf("%s with cwd %s escaped: %q", cmd, cwd, so)
			}
			if strings.Contains(so, "state.json") || strings.Contains(so, "exec.fifo") || strings.Contains(so, "unreachable") {
				t.Fatalf("%s with cwd %s sees a host directory: %q %q", cmd, cwd, so, se)
			}
		}
	}
}
