// Package engines drives hako through real container engines from Debian's
// packages: podman, Docker (dockerd) and containerd (ctr with the runc
// shim v2). Each daemon runs with its own root, state and socket in a
// temporary directory and is stopped by pid afterwards; images are imported
// from a busybox tarball made here. Tests skip with a reason when an engine
// is not installed or not root.
package engines

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	hakoBin string
	imgTar  string
	workDir string
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("engine tests skipped: they need root")
		os.Exit(0)
	}
	var err error
	workDir, err = os.MkdirTemp("", "hako-engines-")
	if err != nil {
		panic(err)
	}
	os.Chmod(workDir, 0o755)
	hakoBin = filepath.Join(workDir, "hako")
	if out, err := exec.Command("go", "build", "-tags", "netgo,osusergo", "-o", hakoBin, "../../cmd/hako").CombinedOutput(); err != nil {
		fmt.Printf("build hako: %v\n%s", err, out)
		os.Exit(1)
	}
	imgTar = filepath.Join(workDir, "busybox.tar")
	if err := busyboxTar(imgTar); err != nil {
		fmt.Println("engine tests skipped:", err)
		os.Exit(0)
	}
	code := m.Run()
	exec.Command("umount", "-R", "-l", workDir).Run()
	os.RemoveAll(workDir)
	os.Exit(code)
}

// busyboxTar writes a rootfs tarball: static busybox and a few applets.
func busyboxTar(path string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("needs busybox-static: %w", err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "etc/", "tmp/", "proc/", "sys/", "dev/"} {
		w.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755})
	}
	w.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg})
	w.Write(data)
	for _, a := range []string{"sh", "echo", "id", "cat", "sleep", "ls", "touch", "tty", "hostname"} {
		w.WriteHeader(&tar.Header{Name: "bin/" + a, Linkname: "busybox", Typeflag: tar.TypeSymlink, Mode: 0o777})
	}
	for name, body := range map[string]string{"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n"} {
		w.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		w.Write([]byte(body))
	}
	if err := w.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func need(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (apt-get install podman containerd docker.io)", b)
		}
	}
}

// run runs a command and returns its combined output and exit code.
func run(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out), code
}

func runOK(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, code := run(t, name, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\n%s", name, strings.Join(args, " "), code, out)
	}
	return out
}

// runTTY runs a command under script(1), which gives it a terminal.
func runTTY(t *testing.T, name string, args ...string) string {
	t.Helper()
	line := shellQuote(name)
	for _, a := range args {
		line += " " + shellQuote(a)
	}
	out, err := exec.Command("timeout", "20", "script", "-qec", line, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	return string(out)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// daemon starts a background daemon and stops it by pid at cleanup.
func daemon(t *testing.T, logName string, ready func() bool, name string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(workDir, logName))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
	})
	for i := 0; i < 300; i++ {
		if ready() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(logf.Name())
	t.Fatalf("%s did not start:\n%s", name, log)
}

func contains(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("missing %q in:\n%s", w, out)
		}
	}
}
