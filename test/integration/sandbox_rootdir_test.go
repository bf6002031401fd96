package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// busyboxRoot makes a minimal root directory for RootDirectory=, owned by
// the sandboxer, and lists what it holds.
func busyboxRoot(t *testing.T, s sandboxer) string {
	t.Helper()
	bb := busybox(t)
	r := filepath.Join(s.dir, "root")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "var/tmp", "run", "etc", "mnt", "data"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(r, "bin/busybox"), data, 0o755)
	for _, a := range []string{"sh", "cat", "ls", "touch", "pwd", "id"} {
		os.Symlink("busybox", filepath.Join(r, "bin", a))
	}
	os.WriteFile(filepath.Join(r, "etc/marker"), []byte("in-root"), 0o644)
	if s.cred != nil {
		filepath.Walk(r, func(p string, _ os.FileInfo, _ error) error {
			return os.Lchown(p, int(s.cred.Uid), int(s.cred.Gid))
		})
	}
	return r
}

func treeList(t *testing.T, dir string) string {
	var out []string
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error {
		out = append(out, strings.TrimPrefix(p, dir))
		return nil
	})
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func TestSandboxRootDirectory(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		r := busyboxRoot(t, s)
		src := filepath.Join(s.dir, "src")
		os.MkdirAll(src, 0o755)
		os.WriteFile(filepath.Join(src, "f"), []byte("from-host"), 0o644)
		if s.cred != nil {
			os.Chown(src, int(s.cred.Uid), int(s.cred.Gid))
		}
		before := treeList(t, r)
		script := `pwd; cat /etc/marker; echo; ls /; cat /mnt/f; echo
touch /etc/x 2>/dev/null && echo etc-writable
touch /data/x 2>/dev/null && echo data-writable
touch /tmp/x && echo tmp-writable
touch /var/tmp/x && echo vartmp-writable
cat /dev/null && echo dev-null
ls /sys/kernel >/dev/null && echo sys`
		out := s.mustRun(t, "-p", "RootDirectory="+r, "-p", "MountAPIVFS=yes", "-p", "PrivateTmp=yes", "-p", "ProtectSystem=strict",
			"-p", "BindReadOnlyPaths="+src+":/mnt", "-p", "ReadWritePaths=+/var/tmp", "-p", "ReadOnlyPaths="+r+"/data", "--", "sh", "-c", script)
		want := "/\nin-root\nbin\ndata\ndev\netc\nmnt\nproc\nrun\nsys\ntmp\nvar\nfrom-host\ntmp-writable\nvartmp-writable\ndev-null\nsys\n"
		if out != want {
			t.Errorf("inside RootDirectory:\n%s\nwant\n%s", out, want)
		}
		if after := treeList(t, r); after != before {
			t.Errorf("the root directory changed on the host:\n%s\nwas\n%s", after, before)
		}
		// Without MountAPIVFS the root's own /dev, as systemd leaves it.
		if out := s.mustRun(t, "-p", "RootDirectory="+r, "--", "ls", "/dev"); out != "" {
			t.Errorf("root's own /dev: %q", out)
		}
		for _, c := range []struct{ prop, want string }{
			{"ReadOnlyPaths=/etc", `property ReadOnlyPaths=/etc: path "/etc" is outside RootDirectory=` + r},
			{"TemporaryFileSystem=/srv", "mount point " + r + "/srv: no such file or directory"},
		} {
			out, errs, code := s.run(t, "-p", "RootDirectory="+r, "-p", c.prop, "--", "echo", "RAN")
			if code != 1 || out != "" || !strings.Contains(errs, c.want) {
				t.Errorf("%s: status %d %q %q", c.prop, code, out, errs)
			}
		}
		if _, errs, code := s.run(t, "-p", "RootDirectory="+r+"/nonexistent", "--", "true"); code != 1 || !strings.Contains(errs, "no such file or directory") {
			t.Errorf("missing root: %d %q", code, errs)
		}
		if _, errs, code := s.run(t, "-p", "RootImage=/x.raw", "--", "true"); code != 1 || !strings.Contains(errs, "property RootImage is not supported (") {
			t.Errorf("RootImage: %d %q", code, errs)
		}
	})
}

// An unprivileged sandbox re-executes hako sealed (a memfd copy: it may
// not make the overlay) only where its user could rewrite the binary
// through /proc/<pid>/exe: a binary it may not write or chmod (root's,
// 0755) is out of its reach already, and the ~7 ms copy is skipped.
func TestSandboxBinarySealRootless(t *testing.T) {
	ss := sandboxers(t)
	if len(ss) < 2 {
		t.Skip("no unprivileged user")
	}
	s := ss[1]
	own := filepath.Join(s.dir, "hako-own")
	data, _ := os.ReadFile(s.bin)
	os.WriteFile(own, data, 0o755)
	os.Chown(own, int(s.cred.Uid), int(s.cred.Gid))
	for _, c := range []struct {
		bin, exe string
	}{{s.bin, s.bin}, {own, "/memfd:hako (deleted)"}} {
		s := s
		s.bin = c.bin
		cmd := s.cmd("--", "sleep", "5")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exe := ""
		for deadline := time.Now().Add(5 * time.Second); exe == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
			for _, k := range strings.Fields(string(kids)) {
				if comm, _ := os.ReadFile("/proc/" + k + "/comm"); strings.Contains(string(comm), "init") {
					exe, _ = os.Readlink("/proc/" + k + "/exe")
				}
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
		if exe != c.exe {
			t.Errorf("%s: the sandbox's init runs %q, want %q", c.bin, exe, c.exe)
		}
	}
}
