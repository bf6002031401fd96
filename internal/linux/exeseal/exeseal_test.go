package exeseal

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestEscape(t *testing.T) {
	if got := escape(`/a:b\c`); got != `/a\:b\\c` {
		t.Fatalf("escape = %q", got)
	}
}

// TestHelperSleep is the process the CVE test execs through the seal.
func TestHelperSleep(t *testing.T) {
	if os.Getenv("EXESEAL_HELPER") == "" {
		t.Skip("helper")
	}
	var buf [1]byte
	os.Stdin.Read(buf[:])
}

// CVE-2019-5736: the attacker holds /proc/<pid>/exe of a runtime process
// with O_PATH, waits for it to exit, then reopens the handle for writing.
// Through the seal that reopen fails with EROFS. The control runs the same
// attack on an unsealed copy of the binary and must succeed, or the test
// would prove nothing.
func TestCVE2019_5736_BinaryCannotBeReopenedForWriting(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (overlayfs over the host's filesystems)")
	}
	exe, err := Seal(t.TempDir())
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	if err := attack(t, exe.Path()); !errors.Is(err, unix.EROFS) {
		t.Fatalf("reopening the sealed binary for writing: %v, want EROFS", err)
	}

	copyPath := filepath.Join(t.TempDir(), "unsealed")
	data, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := attack(t, copyPath); err != nil {
		t.Fatalf("control: reopening an unsealed binary failed (%v); the attack is not reproduced", err)
	}
}

// attack starts path (a test binary) as a helper, opens /proc/<pid>/exe
// with O_PATH, lets it exit, and tries to reopen the handle for writing.
func attack(t *testing.T, path string) error {
	t.Helper()
	cmd := exec.Command(path, "-test.run=TestHelperSleep")
	cmd.Env = append(os.Environ(), "EXESEAL_HELPER=1")
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	stdin.Close()
	cmd.Wait()
	w, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(w)
	}
	return err
}
