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
	runOK(t, "ctr", c("task", "kill", "-s", "KILL", "c2")...)
	for i := 0; i < 50; i++ {
		if out, _ := run(t, "ctr", c("task", "ls")...); !strings.Contains(out, "RUNNING") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	runOK(t, "ctr", c("task", "delete", "c2")...)
	runOK(t, "ctr", c("container", "delete", "c2")...)
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
