package engines

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// containerd with the CRI plugin disabled, driven by ctr through the runc
// shim v2 with --runc-binary (Kubernetes' RuntimeClass sets the same
// through the shim's BinaryName option).
func TestContainerd(t *testing.T) {
	need(t, "containerd", "ctr", "containerd-shim-runc-v2")
	dir := filepath.Join(workDir, "containerd")
	os.MkdirAll(dir, 0o711)
	sock := filepath.Join(dir, "containerd.sock")
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte(`version = 2
root = "`+dir+`/root"
state = "`+dir+`/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "`+sock+`"
# The v1 shim takes its runtime from here: the way to give ctr's
# user-namespaced containers to hako (ctr run --uidmap ignores --runc-binary).
[plugins."io.containerd.runtime.v1.linux"]
  runtime = "`+hakoBin+`"
  runtime_root = "`+dir+`/runc"
`), 0o644)
	daemon(t, "containerd.log", func() bool { _, err := os.Stat(sock); return err == nil }, "containerd", "--config", cfg)
	c := func(args ...string) []string { return append([]string{"-a", sock}, args...) }
	time.Sleep(300 * time.Millisecond)
	// ctr imports OCI/docker archives; make one with podman or docker if
	// present, else skip.
	archive := filepath.Join(workDir, "bb-image.tar")
	if _, err := os.Stat(archive); err != nil {
		if !saveImage(t, archive) {
			t.Skip("needs podman or docker to turn the rootfs tarball into an image archive")
		}
	}
	runOK(t, "ctr", c("images", "import", "--base-name", "bb", archive)...)
	img := strings.Fields(runOK(t, "ctr", c("images", "ls", "-q")...))[0]
	out := runOK(t, "ctr", c("run", "--rm", "--runc-binary", hakoBin, img, "c1", "sh", "-c", "echo hello ctr; id")...)
	contains(t, out, "hello ctr", "uid=0")
	runOK(t, "ctr", c("run", "-d", "--runc-binary", hakoBin, "--memory-limit", "67108864", img, "c2", "sleep", "1000")...)
	time.Sleep(300 * time.Millisecond)
	contains(t, runOK(t, "ctr", c("task", "exec", "--exec-id", "e1", "c2", "sh", "-c", "echo exec-ok")...), "exec-ok")
	if lim := memoryLimitOf(t, taskPid(t, c, "c2")); lim != "67108864" {
		t.Errorf("memory limit of c2 is %s, want 67108864", lim)
	}
	runOK(t, "ctr", c("task", "kill", "-s", "KILL", "c2")...)
	for i := 0; i < 50; i++ {
		if out, _ := run(t, "ctr", c("task", "ls")...); !strings.Contains(out, "RUNNING") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	runOK(t, "ctr", c("task", "delete", "c2")...)
	runOK(t, "ctr", c("container", "delete", "c2")...)
	// seccomp (ctr's default profile) through the runc shim v2.
	out = runOK(t, "ctr", c("run", "--rm", "--seccomp", "--runc-binary", hakoBin, img, "c4", "sh", "-c", "grep Seccomp: /proc/self/status")...)
	contains(t, out, "Seccomp:\t2")

	// User namespaces: state dirs 0711 so that the container's root can
	// reach its rootfs, and the v1 shim, whose runtime the config names.
	for _, d := range []string{dir, dir + "/root", dir + "/state"} {
		os.Chmod(d, 0o711)
	}
	runOK(t, "ctr", c("run", "-d", "--runtime", "io.containerd.runtime.v1.linux", "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536", img, "c5", "sleep", "1000")...)
	time.Sleep(300 * time.Millisecond)
	contains(t, runOK(t, "ctr", c("task", "exec", "--exec-id", "e5", "c5", "cat", "/proc/self/uid_map")...), "100000")
	if _, err := os.Stat(dir + "/runc/default/c5/config.json"); err != nil {
		t.Errorf("c5 was not run by hako (no hako state): %v", err)
	}
	runOK(t, "ctr", c("task", "kill", "-s", "KILL", "c5")...)
	time.Sleep(300 * time.Millisecond)
	run(t, "ctr", c("task", "delete", "c5")...)
	run(t, "ctr", c("container", "delete", "c5")...)

	out = runTTY(t, "ctr", c("run", "--rm", "-t", "--runc-binary", hakoBin, img, "c3", "sh", "-c", "tty; echo tty-ok")...)
	contains(t, out, "/dev/pts/0", "tty-ok")
}

func saveImage(t *testing.T, archive string) bool {
	dir := filepath.Join(workDir, "podman-save")
	base := []string{"--root", dir + "/root", "--runroot", dir + "/run", "--cgroup-manager", "cgroupfs", "--events-backend", "file"}
	if _, err := os.Stat("/usr/bin/podman"); err != nil {
		return false
	}
	runOK(t, "podman", append(base, "import", imgTar, "localhost/bb:latest")...)
	runOK(t, "podman", append(base, "save", "--format", "docker-archive", "-o", archive, "localhost/bb:latest")...)
	return true
}

func taskPid(t *testing.T, c func(...string) []string, id string) string {
	t.Helper()
	for _, l := range strings.Split(runOK(t, "ctr", c("task", "ls")...), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == id {
			return f[1]
		}
	}
	t.Fatalf("task %s not listed", id)
	return ""
}

// memoryLimitOf reads the memory limit of pid's cgroup (v1 or v2).
func memoryLimitOf(t *testing.T, pid string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) == 3 && f[1] == "memory" {
			v, _ := os.ReadFile("/sys/fs/cgroup/memory" + f[2] + "/memory.limit_in_bytes")
			return strings.TrimSpace(string(v))
		}
		if len(f) == 3 && f[0] == "0" && f[1] == "" {
			if v, err := os.ReadFile("/sys/fs/cgroup" + f[2] + "/memory.max"); err == nil {
				return strings.TrimSpace(string(v))
			}
		}
	}
	return ""
}
