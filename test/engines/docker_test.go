package engines

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDocker(t *testing.T) {
	need(t, "dockerd", "docker")
	dir := filepath.Join(workDir, "docker")
	sock := filepath.Join(dir, "docker.sock")
	daemon(t, "dockerd.log", func() bool { _, err := os.Stat(sock); return err == nil }, "dockerd",
		"--add-runtime", "hako="+hakoBin, "--data-root", dir+"/data", "--exec-root", dir+"/exec",
		"-H", "unix://"+sock, "--pidfile", dir+"/pid", "--iptables=false", "--bridge=none")
	d := func(args ...string) []string { return append([]string{"-H", "unix://" + sock}, args...) }
	time.Sleep(500 * time.Millisecond)
	runOK(t, "docker", d("import", imgTar, "bb:latest")...)
	runArgs := func(extra ...string) []string {
		return d(append([]string{"run", "--runtime", "hako", "--network", "none"}, extra...)...)
	}
	contains(t, runOK(t, "docker", runArgs("--rm", "bb:latest", "sh", "-c", "echo hello; id")...), "hello", "uid=0")
	if _, code := run(t, "docker", runArgs("--rm", "bb:latest", "sh", "-c", "exit 9")...); code != 9 {
		t.Errorf("exit code %d, want 9", code)
	}
	runOK(t, "docker", runArgs("-d", "--name", "d1", "-m", "64m", "--pids-limit", "40", "--user", "1000:1000",
		"--read-only", "--tmpfs", "/tmp", "bb:latest", "sh", "-c", "echo started; sleep 1000")...)
	out, _ := run(t, "docker", d("exec", "d1", "sh", "-c", "id; touch /tmp/ok && echo tmp-ok; touch /x; cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max")...)
	contains(t, out, "uid=1000", "tmp-ok", "Read-only file system", "67108864", "40")
	contains(t, runOK(t, "docker", d("logs", "d1")...), "started")
	runOK(t, "docker", d("stop", "-t", "1", "d1")...)
	runOK(t, "docker", d("rm", "d1")...)
	out = runTTY(t, "docker", runArgs("--rm", "-it", "bb:latest", "sh", "-c", "tty; echo tty-ok")...)
	contains(t, out, "/dev/pts/0", "tty-ok")
}
