package engines

import (
	"path/filepath"
	"testing"
	"time"
)

// Facts of this host: podman needs the cgroupfs manager and file events
// (no systemd), and root here lacks CAP_SYS_RESOURCE, so the default
// nofile/nproc ulimits fail in every runtime unless lowered.
func podman(t *testing.T) func(args ...string) []string {
	need(t, "podman")
	dir := filepath.Join(workDir, "podman")
	base := []string{"--root", dir + "/root", "--runroot", dir + "/run", "--cgroup-manager", "cgroupfs",
		"--events-backend", "file", "--runtime", hakoBin}
	runOK(t, "podman", append(base, "import", imgTar, "bb:latest")...)
	return func(args ...string) []string { return append(append([]string{}, base...), args...) }
}

var podmanRunFlags = []string{"--network", "none", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"}

func TestPodman(t *testing.T) {
	p := podman(t)
	runArgs := func(extra ...string) []string {
		return p(append(append([]string{"run"}, podmanRunFlags...), extra...)...)
	}
	out := runOK(t, "podman", runArgs("--rm", "bb:latest", "sh", "-c", "echo hello; id")...)
	contains(t, out, "hello", "uid=0(root)")
	if _, code := run(t, "podman", runArgs("--rm", "bb:latest", "sh", "-c", "exit 7")...); code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
	runOK(t, "podman", runArgs("-d", "--name", "p1", "-m", "64m", "--pids-limit", "50", "--user", "1000:1000", "--read-only",
		"bb:latest", "sh", "-c", "echo started; sleep 1000")...)
	time.Sleep(300 * time.Millisecond)
	out, _ = run(t, "podman", p("exec", "p1", "sh", "-c", "id; cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; touch /x")...)
	contains(t, out, "uid=1000", "67108864", "50", "Read-only file system")
	contains(t, runOK(t, "podman", p("logs", "p1")...), "started")
	runOK(t, "podman", p("stop", "-t", "1", "p1")...)
	runOK(t, "podman", p("rm", "p1")...)
	// The sleep: podman attaches to the terminal while the container
	// starts and can miss its first output, with runc as with hako.
	out = runTTY(t, "podman", runArgs("--rm", "-it", "bb:latest", "sh", "-c", "sleep 0.5; tty; echo tty-ok")...)
	contains(t, out, "/dev/pts/0", "tty-ok")
}
