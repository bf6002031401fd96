package exeseal

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	exe, err := Seal(t.TempDir(), 3)
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
	return reopenAndWrite(fmt.Sprintf("/proc/self/fd/%d", fd))
}

// reopenAndWrite opens p for writing and, should that work, tries to
// change the file the ways an attacker could: write, truncate. nil means
// one of them worked; otherwise the error of the first refusal.
func reopenAndWrite(p string) error {
	w, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(w)
	_, werr := unix.Pwrite(w, []byte{0x7f}, 0)
	if werr == nil {
		return nil
	}
	if err := unix.Ftruncate(w, 0); err == nil {
		return nil
	}
	return werr
}

// withOverlayFailing makes the overlay impossible for one test, as it is
// where the binary's filesystem is stacked too deep or the caller may not
// mount.
func withOverlayFailing(t *testing.T) {
	t.Helper()
	saved := sealOverlay
	sealOverlay = func(string, int) (*Exe, error) {
		return nil, fmt.Errorf("%w: create overlay: %w", errNoOverlay, unix.EINVAL)
	}
	t.Cleanup(func() { sealOverlay = saved })
}

// Without the overlay the defence must not switch off: the re-executed
// binary is a sealed memfd copy, and the attack on it fails (EPERM from the
// seals, at the write if the reopen itself succeeds). The control is the
// same attack on an unsealed copy in TestCVE2019_5736_BinaryCannotBeReopenedForWriting.
func TestCVE2019_5736_MemfdWhenNoOverlay(t *testing.T) {
	withOverlayFailing(t)
	exe, err := Seal(t.TempDir(), 3)
	if err != nil {
		t.Fatalf("Seal without an overlay: %v, want a sealed memfd", err)
	}
	defer exe.Close()
	if exe.Kind() != Memfd {
		t.Fatalf("seal kind %q, want %q", exe.Kind(), Memfd)
	}
	seals, err := unix.FcntlInt(exe.f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || seals&memfdSeals != memfdSeals {
		t.Fatalf("seals %#x (%v), want at least %#x", seals, err, memfdSeals)
	}
	if err := attack(t, exe.Path()); !errors.Is(err, unix.EPERM) {
		t.Fatalf("rewriting the memfd-sealed binary: %v, want EPERM", err)
	}
}

// With neither seal possible Seal fails, naming both causes, so that the
// caller can refuse (root) or warn (rootless); it never hands back an
// unsealed binary as if it were sealed.
func TestSealFailsWithoutAnySeal(t *testing.T) {
	withOverlayFailing(t)
	saved := sealMemfd
	sealMemfd = func(int) (*Exe, error) { return nil, fmt.Errorf("memfd copy: memfd_create: %w", unix.EACCES) }
	t.Cleanup(func() { sealMemfd = saved })
	exe, err := Seal(t.TempDir(), 3)
	if err == nil {
		exe.Close()
		t.Fatal("Seal succeeded with neither an overlay nor a memfd")
	}
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "create overlay") || !strings.Contains(err.Error(), "memfd_create") {
		t.Fatalf("error %q: want ErrUnsupported naming both causes", err)
	}
}

// A state directory below the binary's own directory (a benchmark or test
// that keeps both in one temporary directory) must not cost the overlay:
// overlayfs refuses overlapping layers (ELOOP), and the seal used to fall
// back to copying the whole binary into a memfd on every command.
func TestOverlayWhenEmptyDirIsBelowTheBinary(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (overlayfs over the host's filesystems)")
	}
	self, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(filepath.Dir(self), "root", "@exeseal-empty")
	t.Cleanup(func() { os.RemoveAll(filepath.Join(filepath.Dir(self), "root")) })
	exe, err := Seal(empty, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	if exe.Kind() != Overlay {
		t.Fatalf("seal is %s, want %s", exe.Kind(), Overlay)
	}
	if _, err := os.Stat(empty); err == nil {
		t.Errorf("%s was made, though the empty layer needs no directory", empty)
	}
}
