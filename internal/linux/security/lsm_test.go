package security

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCVE2025_52881_FakeProcRootRefused(t *testing.T) {
	defer func(p string) { procPath = p }(procPath)
	for _, p := range []string{t.TempDir(), "/proc/sys"} {
		procPath = p
		f, err := openProc("status", unix.O_RDONLY)
		if err == nil {
			f.Close()
			t.Errorf("%s accepted as procfs root", p)
		} else if !strings.Contains(err.Error(), "is not the root of a procfs mount") {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestOpenProcThreadSelf(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, err := openProc("thread-self/status", unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := parseKV(string(b))["Pid"]; got != fmt.Sprint(unix.Gettid()) {
		t.Errorf("thread-self status is for %s, want this thread %d", got, unix.Gettid())
	}
}

// The write path, on an attribute any thread may set: its own name.
func TestWriteThreadAttr(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := writeThreadAttr("thread-self/comm", "hako-sec-test"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/thread-self/comm")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(bytes.TrimSpace(b)); got != "hako-sec-test" {
		t.Errorf("comm = %q", got)
	}
}

func TestApplyLSMDisabled(t *testing.T) {
	if err := ApplyAppArmor(""); err != nil {
		t.Errorf("ApplyAppArmor(\"\") = %v", err)
	}
	if err := ApplySELinux(""); err != nil {
		t.Errorf("ApplySELinux(\"\") = %v", err)
	}
	if AppArmorEnabled() {
		t.Log("AppArmor is enabled here; not checking the disabled error")
	} else {
		err := ApplyAppArmor("x")
		want := `apparmor profile "x" requested but AppArmor is not enabled on this host`
		if err == nil || err.Error() != want {
			t.Errorf("ApplyAppArmor = %v, want %q", err, want)
		}
	}
	if SELinuxEnabled() {
		t.Log("SELinux is enabled here; not checking the disabled error")
	} else {
		err := ApplySELinux("system_u:system_r:container_t:s0")
		want := `selinux label "system_u:system_r:container_t:s0" requested but SELinux is not enabled on this host`
		if err == nil || err.Error() != want {
			t.Errorf("ApplySELinux = %v, want %q", err, want)
		}
	}
}

func init() {
	// Mount a file over this thread's status in a private mount namespace,
	// the CVE-2025-52881 shape, and see what openProc hands back.
	helpers["proc-overmount"] = func() error {
		if os.Getenv("NO_OPEN_TREE") != "" {
			openTree = func(int, string, uint) (int, error) { return -1, unix.EPERM }
		}
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return err
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return err
		}
		fake := filepath.Join(os.Getenv("TEST_DIR"), "fake")
		if err := os.WriteFile(fake, []byte("Name:\tfake\n"), 0o644); err != nil {
			return err
		}
		if err := unix.Mount(fake, "/proc/thread-self/status", "", unix.MS_BIND, ""); err != nil {
			return err
		}
		isFake := func(b []byte) bool { return bytes.Contains(b, []byte("fake")) }
		b, err := os.ReadFile("/proc/thread-self/status")
		if err != nil {
			return err
		}
		fmt.Println("plain fake:", isFake(b))
		f, err := openProc("thread-self/status", unix.O_RDONLY)
		if err != nil {
			fmt.Println("guarded error:", err)
			return nil
		}
		defer f.Close()
		b, err = io.ReadAll(f)
		if err != nil {
			return err
		}
		fmt.Println("guarded fake:", isFake(b))
		return nil
	}
}

func TestCVE2019_16884_CVE2025_52881_LSMWritesIgnoreOvermountedProc(t *testing.T) {
	t.Run("clone", func(t *testing.T) {
		got := parseKV(runHelper(t, "proc-overmount", "TEST_DIR="+t.TempDir()))
		expectKV(t, got, map[string]string{"plain fake": "true", "guarded fake": "false"})
	})
	t.Run("no-clone", func(t *testing.T) {
		got := parseKV(runHelper(t, "proc-overmount", "TEST_DIR="+t.TempDir(), "NO_OPEN_TREE=1"))
		expectKV(t, got, map[string]string{"plain fake": "true"})
		if !strings.Contains(got["guarded error"], "something is mounted over it") {
			t.Errorf("guarded error = %q, want the overmount refused", got["guarded error"])
		}
	})
}
