package explain_test

// Each cause provoked for real on this kernel: the test makes the
// situation (in helper processes with their own namespaces, so the host is
// not changed), performs the operation, and checks that the explanation
// hako gives is the row for that cause.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/explain"
	"github.com/hako-runtime/hako/internal/linux/rootfs"
)

const scenarioEnv = "HAKO_EXPLAIN_SCENARIO"

func TestMain(m *testing.M) {
	if s := os.Getenv(scenarioEnv); s != "" {
		err := scenarios[s](os.Getenv("HAKO_EXPLAIN_DIR"))
		if x, ok := explain.Of(err); ok {
			fmt.Printf("ID=%s\n", x.ID)
		}
		fmt.Printf("ERR=%v\n", err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func child(flags uintptr, rootMap bool, argv ...string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags}
	if rootMap && flags&unix.CLONE_NEWUSER != 0 {
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	return cmd
}

// helper re-runs this test binary as scenario s in new namespaces.
func helper(s, dir string, flags uintptr, cred *syscall.Credential) string {
	bin, _ := os.Executable()
	if dir != "" && cred != nil {
		bin = filepath.Join(dir, "explain.test")
	}
	cmd := child(flags, cred == nil, bin)
	cmd.SysProcAttr.Credential = cred
	cmd.Env = append(os.Environ(), scenarioEnv+"="+s, "HAKO_EXPLAIN_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("helper %s: %v: %s", s, err, out)
	}
	return string(out)
}

func privateRoot() error {
	return unix.Mount("", "/", "", unix.MS_PRIVATE|unix.MS_REC, "")
}

var scenarios = map[string]func(dir string) error{
	"userns-limit": func(string) error {
		os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0"), 0)
		return explain.Wrap(explain.UnshareUser, "", child(unix.CLONE_NEWUSER, false, "/bin/true").Run())
	},
	"ns-limit": func(string) error {
		os.WriteFile("/proc/sys/user/max_mnt_namespaces", []byte("0"), 0)
		return explain.Wrap(explain.UnshareOther, "", child(unix.CLONE_NEWNS, false, "/bin/true").Run())
	},
	"userns-chroot": func(dir string) error {
		if err := privateRoot(); err != nil {
			return err
		}
		os.MkdirAll(dir+"/c/proc", 0o755)
		if err := unix.Mount("/proc", dir+"/c/proc", "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		if err := unix.Chroot(dir + "/c"); err != nil {
			return err
		}
		cmd := child(unix.CLONE_NEWUSER, false, "/bin/true")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr // no /dev in the chroot
		return explain.Wrap(explain.UnshareUser, "", cmd.Run())
	},
	"gid-map": func(string) error { return unprivMap("gid", "0 %d 1") },
	"uid-map": func(string) error { return unprivMap("uid", "0 0 1") },
	"proc-pidns-owner": func(dir string) error {
		return explain.Wrap(explain.MountProc, dir, unix.Mount("proc", dir, "proc", 0, ""))
	},
	"proc-overmount-outer": func(dir string) error {
		if err := privateRoot(); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", "/proc/sys", "tmpfs", 0, ""); err != nil {
			return err
		}
		out := helper("proc-mount", dir, unix.CLONE_NEWUSER|unix.CLONE_NEWNS|unix.CLONE_NEWPID, nil)
		return errors.New(strings.TrimSpace(out))
	},
	"proc-mount": func(dir string) error {
		return explain.Wrap(explain.MountProc, dir, unix.Mount("proc", dir, "proc", 0, ""))
	},
	"remount-outer": func(dir string) error {
		if err := privateRoot(); err != nil {
			return err
		}
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return err
		}
		if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			return err
		}
		out := helper("remount-rw", dir, unix.CLONE_NEWUSER|unix.CLONE_NEWNS, nil)
		return errors.New(strings.TrimSpace(out))
	},
	"remount-rw": func(dir string) error {
		return explain.Wrap(explain.Remount, dir, unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND, ""))
	},
	"pivot-not-mountpoint": func(dir string) error {
		if err := privateRoot(); err != nil {
			return err
		}
		return rootfs.PivotRoot(dir)
	},
	"pivot-shared": func(dir string) error {
		if err := unix.Mount("", "/", "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
			return err
		}
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return err
		}
		return rootfs.PivotRoot(dir)
	},
	"not-mountpoint": func(dir string) error {
		if err := privateRoot(); err != nil {
			return err
		}
		return explain.Wrap(explain.Propagation, dir, unix.Mount("", dir, "", unix.MS_PRIVATE, ""))
	},
	"open-tree": func(string) error {
		fd, err := unix.OpenTree(unix.AT_FDCWD, "/", unix.OPEN_TREE_CLONE)
		if err == nil {
			unix.Close(fd)
		}
		return explain.Wrap(explain.OpenTree, "/", err)
	},
	"pidns-init-gone": func(string) error {
		runtime.LockOSThread() // namespaces are per thread; this one stays locked until exit
		if err := unix.Unshare(unix.CLONE_NEWPID); err != nil {
			return err
		}
		// The first child becomes the namespace's init and exits at once;
		// every fork after that (the Go runtime may have made the first)
		// fails.
		err := exec.Command("/bin/true").Run()
		if err == nil {
			err = exec.Command("/bin/true").Run()
		}
		return explain.Wrap(explain.Fork, "", err)
	},
	"subid-range": func(string) error {
		cmd := child(unix.CLONE_NEWUSER, false, "/bin/sleep", "10")
		if err := cmd.Start(); err != nil {
			return err
		}
		defer cmd.Process.Kill()
		out, err := exec.Command("/usr/bin/newuidmap", fmt.Sprint(cmd.Process.Pid), "0", "7", "1").CombinedOutput()
		if err == nil {
			return errors.New("newuidmap succeeded")
		}
		// newuidmap reports in words; hako's Writer passes its output on.
		return explain.WrapFacts(explain.NewUIDMap, "", fmt.Errorf("%s: %w", strings.TrimSpace(string(out)), unix.EPERM), explain.Gather())
	},
}

// unprivMap writes a map for a fresh user namespace as an unprivileged
// user, without writing setgroups first.
func unprivMap(kind, line string) error {
	cmd := child(unix.CLONE_NEWUSER, false, "/bin/sleep", "10")
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	if strings.Contains(line, "%d") {
		line = fmt.Sprintf(line, os.Getegid())
	}
	p := fmt.Sprintf("/proc/%d/%s_map", cmd.Process.Pid, kind)
	op := explain.WriteUIDMap
	if kind == "gid" {
		op = explain.WriteGIDMap
	}
	return explain.WrapFacts(op, p, os.WriteFile(p, []byte(line), 0), explain.MapFacts(cmd.Process.Pid, kind))
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("provoking these causes needs root (they build namespaces and mounts)")
	}
}

// unprivileged returns the test user's credentials and a copy of this test
// binary that user can execute.
func unprivileged(t *testing.T) (*syscall.Credential, string) {
	data, _ := os.ReadFile("/etc/passwd")
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 3 && f[0] == "hako-rootless" {
			var uid, gid uint32
			fmt.Sscan(f[2], &uid)
			fmt.Sscan(f[3], &gid)
			dir, err := os.MkdirTemp("", "hako-explain-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			os.Chmod(dir, 0o755)
			self, _ := os.Executable()
			b, _ := os.ReadFile(self)
			os.WriteFile(filepath.Join(dir, "explain.test"), b, 0o755)
			return &syscall.Credential{Uid: uid, Gid: gid}, dir
		}
	}
	t.Skip("needs the hako-rootless user (created by test/integration's TestRootlessByUnprivilegedUser)")
	return nil, ""
}

func TestExplainProvoked(t *testing.T) {
	needRoot(t)
	cases := []struct {
		scenario string
		flags    uintptr
		unpriv   bool
		want     string
	}{
		{"userns-limit", unix.CLONE_NEWUSER, false, "userns-limit"},
		{"ns-limit", unix.CLONE_NEWUSER, false, "ns-limit"},
		{"userns-chroot", unix.CLONE_NEWNS, false, "userns-chroot"},
		{"proc-pidns-owner", unix.CLONE_NEWUSER | unix.CLONE_NEWNS, false, "proc-pidns-owner"},
		{"proc-overmount-outer", unix.CLONE_NEWNS, false, "proc-locked-overmount"},
		{"remount-outer", unix.CLONE_NEWNS, false, "remount-locked"},
		{"pivot-not-mountpoint", unix.CLONE_NEWNS, false, "pivot-same-mount"},
		{"pivot-shared", unix.CLONE_NEWNS, false, "pivot-shared"},
		{"not-mountpoint", unix.CLONE_NEWNS, false, "mount-not-mountpoint"},
		{"open-tree", unix.CLONE_NEWUSER, false, "open-tree-no-cap"},
		{"pidns-init-gone", 0, false, "pidns-init-gone"},
		{"gid-map", 0, true, "gidmap-setgroups"},
		{"uid-map", 0, true, "map-not-own"},
		{"subid-range", 0, true, "subid-range"},
	}
	for _, c := range cases {
		t.Run(c.scenario, func(t *testing.T) {
			dir := t.TempDir()
			var cred *syscall.Credential
			if c.unpriv {
				cred, dir = unprivileged(t)
			}
			out := helper(c.scenario, dir, c.flags, cred)
			if !strings.Contains(out, "ID="+c.want+"\n") {
				t.Fatalf("want cause %s, got:\n%s", c.want, out)
			}
			t.Logf("%s", strings.TrimSpace(out))
		})
	}
}

// Causes provoked in this (multithreaded, root) test process itself.
func TestExplainProvokedInProcess(t *testing.T) {
	needRoot(t)
	check := func(err error, want string) {
		t.Helper()
		x, ok := explain.Of(err)
		if !ok || x.ID != want {
			t.Errorf("want %s, got %v", want, err)
		}
	}
	check(explain.Wrap(explain.UnshareUser, "", unix.Unshare(unix.CLONE_NEWUSER)), "userns-multithreaded")

	sleeper := func(flags uintptr, mapped bool) *exec.Cmd {
		cmd := child(flags, mapped, "/bin/sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	u := sleeper(unix.CLONE_NEWUSER|unix.CLONE_NEWNS, true)
	for _, c := range []struct {
		name string
		flag int
		op   explain.Op
		want string
	}{{"user", unix.CLONE_NEWUSER, explain.SetnsUser, "setns-userns-threads"}, {"mnt", unix.CLONE_NEWNS, explain.SetnsMount, "setns-mntns-threads"}} {
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/%s", u.Process.Pid, c.name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		check(explain.Wrap(c.op, "", unix.Setns(fd, c.flag)), c.want)
		unix.Close(fd)
	}

	// Maps written by root for a child in a new user namespace.
	n := sleeper(unix.CLONE_NEWUSER, false)
	p := fmt.Sprintf("/proc/%d/", u.Process.Pid)
	check(explain.WrapFacts(explain.WriteUIDMap, p, os.WriteFile(p+"uid_map", []byte("0 0 1"), 0), explain.MapFacts(u.Process.Pid, "uid")), "map-written")
	m := fmt.Sprintf("/proc/%d/", n.Process.Pid)
	check(explain.WrapFacts(explain.WriteUIDMap, m, os.WriteFile(m+"uid_map", []byte("0 0 0"), 0), explain.MapFacts(n.Process.Pid, "uid")), "map-invalid")
	if err := os.WriteFile(m+"gid_map", []byte("0 0 1"), 0); err != nil {
		t.Fatal(err)
	}
	check(explain.Wrap(explain.WriteSetgroup, m, os.WriteFile(m+"setgroups", []byte("deny"), 0)), "setgroups-after-map")

	// idmapped mounts: a filesystem without FS_ALLOW_IDMAP, and a mount
	// that is not detached.
	userns, err := unix.Open(p+"ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(userns)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns)}
	tree, err := unix.OpenTree(unix.AT_FDCWD, "/proc", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	check(explain.Wrap(explain.MountSetattr, "/proc", unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, attr), "detached"), "idmap-fs-unsupported")
	unix.Close(tree)
	tree, err = unix.OpenTree(unix.AT_FDCWD, "/", unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	check(explain.Wrap(explain.MountSetattr, "/", unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, attr)), "idmap-attached")
	unix.Close(tree)
}
