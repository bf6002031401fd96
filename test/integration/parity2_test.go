package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Masking N directories shares one read-only tmpfs (runc 1.5, crun 1.24):
// Kubernetes masks hundreds of per-CPU sysfs directories, and a superblock
// each costs kernel memory. Every mask is a mount of the same superblock
// (one major:minor in mountinfo), read-only and empty.
func TestParityMaskedPathsShareOneTmpfs(t *testing.T) {
	e := newEnv(t)
	var masked []string
	for i := 0; i < 50; i++ {
		d := fmt.Sprintf("/mnt/m%02d", i)
		if err := os.MkdirAll(filepath.Join(e.bundle, "rootfs", d), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(e.bundle, "rootfs", d, "secret"), []byte("x"), 0o644)
		masked = append(masked, d)
	}
	// A file mask still binds the container's /dev/null.
	os.WriteFile(filepath.Join(e.bundle, "rootfs/etc/hidden"), []byte("x"), 0o644)
	masked = append(masked, "/etc/hidden", "/mnt/m00")
	e.spec.Linux.MaskedPaths = masked
	e.spec.Process.Args = []string{"sh", "-c", "cat /proc/self/mountinfo; ls -A /mnt/m07 | wc -l; touch /mnt/m07/x 2>/dev/null && echo WRITABLE; true"}
	e.write()
	rts := map[string][]string{"hako": {hakoBin, "--root", e.root}}
	if rc := runc15(t); rc != nil {
		rts["runc-1.5"] = rc
	}
	for who, rt := range rts {
		out, code := runWith(t, rt, e.bundle, "c-mask-"+strings.ReplaceAll(who, ".", ""))
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", who, code, out)
		}
		devs, n := map[string]bool{}, 0
		var hidden string
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) < 5 {
				continue
			}
			if strings.HasPrefix(f[4], "/mnt/m") {
				devs[f[2]] = true
				n++
				if !strings.HasPrefix(f[5], "ro") {
					t.Errorf("%s: mask %s is not read-only: %s", who, f[4], l)
				}
			}
			if f[4] == "/etc/hidden" {
				hidden = l
			}
		}
		if n != 50 {
			t.Errorf("%s: %d masks of /mnt/m*, want 50 (a duplicate masked once)\n%s", who, n, out)
		}
		if len(devs) != 1 {
			t.Errorf("%s: masks use %d superblocks (%v), want 1 shared tmpfs", who, len(devs), devs)
		}
		if !strings.Contains(hidden, " - devtmpfs ") && !strings.Contains(hidden, " - tmpfs ") {
			t.Errorf("%s: /etc/hidden not masked by /dev/null: %q", who, hidden)
		}
		if strings.Contains(out, "WRITABLE") {
			t.Errorf("%s: a masked directory is writable", who)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if last := strings.TrimSpace(lines[len(lines)-1]); last != "0" {
			t.Errorf("%s: masked directory lists %s entries, want 0", who, last)
		}
	}
}
