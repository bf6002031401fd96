package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"golang.org/x/sys/unix"
)

// CVE-2019-5736: a process of the container opens /proc/<pid>/exe of a hako
// process in its namespaces (here the init waiting for start), keeps the
// O_PATH handle past that process's exec or exit, and reopens it for
// writing to replace hako's binary. The sealed overlay makes that reopen
// fail with EROFS; without the seal it would succeed on this test's copy.
func TestCVE2019_5736_RuntimeBinaryNotWritable(t *testing.T) {
	e := newEnv(t)
	e.spec.Process.Args = []string{"true"}
	e.write()
	e.hakoOK("create", "cve1")
	var st struct{ Pid int }
	json.Unmarshal([]byte(e.hakoOK("state", "cve1")), &st)
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/exe", st.Pid), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	e.hakoOK("delete", "--force", "cve1")
	w, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(w)
		t.Fatal("the runtime binary could be reopened for writing through the init's /proc/<pid>/exe")
	}
	if !errors.Is(err, unix.EROFS) {
		t.Fatalf("reopen failed with %v, want EROFS from the sealed overlay", err)
	}
}

// stackedHako puts a copy of hako where no overlay can be made over its
// directory, and where its own file is writable: on a writable overlay
// (upper layer) over another overlay, which is as deep as the kernel
// stacks them. script is a sh prelude that mounts the stack in the
// private mount namespace it runs in; bin is hako's path there.
func stackedHako(t *testing.T) (script, bin string) {
	t.Helper()
	d := t.TempDir()
	for _, s := range []string{"l", "e", "u", "w", "m1", "m2"} {
		if err := os.Mkdir(filepath.Join(d, s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(hakoBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "l", "hako"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	script = fmt.Sprintf("mount -t overlay -o lowerdir=%[1]s/l:%[1]s/e none %[1]s/m1 && "+
		"mount -t overlay -o lowerdir=%[1]s/m1,upperdir=%[1]s/u,workdir=%[1]s/w none %[1]s/m2 && "+
		"mkdir %[1]s/e3 %[1]s/m3 && ! mount -t overlay -o lowerdir=%[1]s/m2:%[1]s/e3 none %[1]s/m3 2>/dev/null || "+
		"{ echo overlay over the stack was possible; exit 99; }", d)
	return script, filepath.Join(d, "m2", "hako")
}

// unshared runs sh -c script in new namespaces (unshare(1) flags), so that
// its mounts and sysctls stay there; stdout and stderr come back.
func unshared(t *testing.T, flags []string, script string) (string, int) {
	t.Helper()
	out := tempOut(t)
	cmd := exec.Command("unshare", append(append([]string{"--propagation", "private"}, flags...), "sh", "-c", script)...)
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return readAll(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("unshare: %v", err)
	}
	return readAll(out), 0
}

// CVE-2019-5736 where the sealed overlay cannot be made: the defence must
// not switch off. hako then re-executes a sealed memfd copy of itself, and
// reopening the init's /proc/<pid>/exe gives no way to change the binary
// (EPERM from the seals). Without a seal the reopened handle is this
// test's writable copy of hako, and the write goes through.
func TestCVE2019_5736_SealedWithoutOverlay(t *testing.T) {
	e := newEnv(t)
	e.spec.Process.Args = []string{"true"}
	e.write()
	script, bin := stackedHako(t)
	out, code := unshared(t, []string{"-m"}, script+fmt.Sprintf(" && %s --root %s create --bundle %s c-cve-memfd", bin, e.root, e.bundle))
	if code != 0 {
		t.Fatalf("create from a stacked overlay: exit %d: %s", code, out)
	}
	var st struct{ Pid int }
	json.Unmarshal([]byte(e.hakoOK("state", "c-cve-memfd")), &st)
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/exe", st.Pid), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	target, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", st.Pid))
	e.hakoOK("delete", "--force", "c-cve-memfd")
	w, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EROFS) {
			t.Fatalf("reopen of %s failed with %v, want EPERM or EROFS", target, err)
		}
		return
	}
	defer unix.Close(w)
	if _, err := unix.Pwrite(w, []byte{0x7f}, 0); !errors.Is(err, unix.EPERM) {
		t.Fatalf("write to the runtime binary %s through the init's /proc/<pid>/exe: %v, want EPERM", target, err)
	}
	if err := unix.Ftruncate(w, 0); !errors.Is(err, unix.EPERM) {
		t.Fatalf("truncate of the runtime binary %s through the init's /proc/<pid>/exe: %v, want EPERM", target, err)
	}
}

// With neither the overlay nor a memfd that may be executed
// (vm.memfd_noexec=2, set in a private PID namespace, where the sysctl
// lives), root hako refuses to create the container, says why, and leaves
// nothing behind, rather than run it with the binary unsealed.
func TestCVE2019_5736_NoSealRefused(t *testing.T) {
	e := newEnv(t)
	e.spec.Process.Args = []string{"true"}
	e.write()
	script, bin := stackedHako(t)
	script = "echo 2 > /proc/sys/vm/memfd_noexec || exit 98; " + script
	out, code := unshared(t, []string{"-m", "-p", "-f", "--mount-proc"}, script+fmt.Sprintf(" && exec %s --root %s create --bundle %s c-cve-noseal", bin, e.root, e.bundle))
	if code == 98 || code == 99 {
		t.Fatalf("setup: exit %d: %s", code, out)
	}
	if code == 0 {
		t.Fatal("create succeeded with no seal for the runtime binary possible")
	}
	if !strings.Contains(out, "CVE-2019-5736") || !strings.Contains(out, "memfd_create") || !strings.Contains(out, "overlay") {
		t.Errorf("error does not say what failed: %q", out)
	}
	if _, err := os.Stat(filepath.Join(e.root, "c-cve-noseal")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state of the refused container left behind: %v", err)
	}
	// The default cgroupsPath is the id below the caller's own cgroup.
	for _, c := range []string{"pids", "memory", "devices"} {
		if _, err := os.Stat(filepath.Join(ownCgroupDir(t, os.Getpid(), c), "c-cve-noseal")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s cgroup of the refused container left behind: %v", c, err)
		}
	}
}

// CVE-2024-21626: process.cwd naming one of the runtime's own fds through
// /proc/self/fd must never give the process a working directory on the host.
func TestCVE2024_21626_CwdThroughLeakedFd(t *testing.T) {
	bothSides(t, func(t *testing.T) {
		e := newEnv(t)
		for fd := 3; fd <= 12; fd++ {
			for _, cmd := range []string{"run", "exec"} {
				cwd := fmt.Sprintf("/proc/self/fd/%d", fd)
				var so, se string
				var code int
				if cmd == "run" {
					e.spec.Process.Cwd = cwd
					e.spec.Process.Args = []string{"sh", "-c", "pwd; ls"}
					e.write()
					so, se, code = e.hako("run", fmt.Sprintf("cwd%d", fd))
				} else {
					e.spec.Process.Cwd = "/"
					if fd == 3 {
						e.background("cwdexec")
					}
					so, se, code = e.hako("exec", "--cwd", cwd, "cwdexec", "sh", "-c", "pwd; ls")
				}
				if cmd == "run" {
					// Also with host directories the caller left open
					// (not preserved) as fds 3 and up.
					so2, _, code2 := e.hakoWithFds([]string{"/", "/etc", e.root}, "run", fmt.Sprintf("cwdfd%d", fd))
					if code2 == 0 && (!strings.HasPrefix(so2, "/") || strings.Contains(so2, "passwd") || strings.Contains(so2, "state.json")) {
						t.Fatalf("run with cwd %s and the caller's fds escaped: %q", cwd, so2)
					}
				}
				if code == 0 && !strings.HasPrefix(so, "/") {
					t.Fatalf("%s with cwd %s escaped: %q", cmd, cwd, so)
				}
				if strings.Contains(so, "state.json") || strings.Contains(so, "exec.fifo") || strings.Contains(so, "unreachable") {
					t.Fatalf("%s with cwd %s sees a host directory: %q %q", cmd, cwd, so, se)
				}
			}
		}
	})
}

// CVE-2022-29162 (crun CVE-2022-27650): exec --cap must not put the
// capability in the inheritable set, from where an exec'd program with
// file capabilities could regain it.
func TestCVE2022_29162_ExecCapNotInheritable(t *testing.T) {
	e := newEnv(t)
	e.background("cap1")
	out := e.hakoOK("exec", "--cap", "CAP_SYS_ADMIN", "cap1", "grep", "-E", "Cap(Inh|Eff|Amb)", "/proc/self/status")
	if !strings.Contains(out, "CapInh:\t0000000000000000") || !strings.Contains(out, "CapAmb:\t0000000000000000") {
		t.Fatalf("exec --cap reached inheritable/ambient:\n%s", out)
	}
	var eff uint64
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:\t"); ok {
			eff, _ = strconv.ParseUint(v, 16, 64)
		}
	}
	if eff&(1<<21) == 0 { // CAP_SYS_ADMIN
		t.Fatalf("exec --cap CAP_SYS_ADMIN not effective:\n%s", out)
	}
}

// CVE-2019-19921, CVE-2023-27561: /proc (or /sys) in the image is a
// symlink; mounting procfs through it would land outside the container's
// /proc, and LSM label writes after it would go to a fake file.
func TestCVE2019_19921_ProcSymlinkRefused(t *testing.T) {
	bothSides(t, func(t *testing.T) {
		for _, dir := range []string{"proc", "sys"} {
			e := newEnv(t)
			p := filepath.Join(e.bundle, "rootfs", dir)
			os.Remove(p)
			os.MkdirAll(filepath.Join(e.bundle, "rootfs", "fake"), 0o755)
			os.Symlink("/fake", p)
			e.write()
			_, se, code := e.hako("run", "sym-"+dir)
			if code == 0 || !strings.Contains(se, "symlink") || !strings.Contains(se, "must be mounted on ordinary directory") {
				t.Errorf("/%s as a symlink: exit %d, %q (want runc's words and the cause)", dir, code, se)
			}
			assertNothingLeft(t, e, "sym-"+dir)
		}
	})
}

// CVE-2021-30465, crun CVE-2019-18837: a mount destination that is a
// symlink pointing out of the rootfs resolves inside it; a symlink swapped
// in while hako works (RENAME_EXCHANGE in a loop) never sends a mount or a
// created file to the host.
// The same class, where the destination exists both in the rootfs and on
// the host at the same path: resolved in the root (openat2's
// RESOLVE_IN_ROOT, hako's first lookup), the mount lands in the container;
// resolved as a host path, it would land on the host's directory, out of
// the container's sight.
func TestCVE2021_30465_DestinationResolvedInRoot(t *testing.T) {
	bothSides(t, func(t *testing.T) {
		e := newEnv(t)
		host := t.TempDir()
		sub := filepath.Join(host, "sub")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(e.bundle, "rootfs", sub), 0o755); err != nil {
			t.Fatal(err)
		}
		e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: sub, Type: "tmpfs", Source: "tmpfs"})
		if out := strings.TrimSpace(e.run("stat", "-f", "-c", "%T", sub)); out != "tmpfs" {
			t.Fatalf("the container's %s is on %q, want the tmpfs mounted there", sub, out)
		}
	})
}

func TestCVE2021_30465_SymlinkDestinationStaysInside(t *testing.T) {
	bothSides(t, func(t *testing.T) {
		e := newEnv(t)
		host := t.TempDir()
		rootfs := filepath.Join(e.bundle, "rootfs")
		os.Remove(filepath.Join(rootfs, "mnt"))
		os.Symlink("../../../../../../../../"+strings.TrimPrefix(host, "/"), filepath.Join(rootfs, "mnt"))
		e.spec.Root.Readonly = false
		e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/mnt/sub", Type: "tmpfs", Source: "tmpfs"})
		// Creating a mount point through a dangling symlink is refused; either
		// way nothing may reach the host.
		e.spec.Process.Args = []string{"true"}
		e.write()
		e.hako("run", "symdest")
		if strings.Contains(hostMounts(t), host) {
			t.Fatal("a mount landed on the host through a symlinked destination")
		}
		if _, err := os.Stat(filepath.Join(host, "sub")); err == nil {
			t.Fatal("a directory was created on the host through a symlinked destination")
		}

		// The race: /mnt flips between a real directory and a symlink to the
		// host directory while containers are created.
		os.Remove(filepath.Join(rootfs, "mnt"))
		os.MkdirAll(filepath.Join(rootfs, "mnt-dir", "sub"), 0o755)
		os.Symlink(host, filepath.Join(rootfs, "mnt-link"))
		os.Rename(filepath.Join(rootfs, "mnt-dir"), filepath.Join(rootfs, "mnt"))
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				unix.Renameat2(unix.AT_FDCWD, filepath.Join(rootfs, "mnt"), unix.AT_FDCWD, filepath.Join(rootfs, "mnt-link"), unix.RENAME_EXCHANGE)
			}
		}()
		e.spec.Process.Args = []string{"true"}
		e.write()
		for i := 0; i < 40; i++ {
			e.hako("run", fmt.Sprintf("race%d", i))
		}
		close(stop)
		<-done
		if strings.Contains(hostMounts(t), host) {
			t.Fatal("a mount landed on the host during the symlink exchange race")
		}
		if ents, _ := os.ReadDir(host); len(ents) != 0 {
			t.Fatalf("files created on the host during the race: %v", ents)
		}
	})
}

// CVE-2025-31133: with /dev taken from the image, /dev/null may be a
// symlink; masking must never bind whatever it points to.
func TestCVE2025_31133_DevNullSymlinkNotUsedForMasking(t *testing.T) {
	bothSides(t, func(t *testing.T) {
		e := newEnv(t)
		var mounts []specs.Mount
		for _, m := range e.spec.Mounts {
			if !strings.HasPrefix(m.Destination, "/dev") {
				mounts = append(mounts, m)
			}
		}
		e.spec.Mounts = mounts
		dev := filepath.Join(e.bundle, "rootfs", "dev")
		os.WriteFile(filepath.Join(e.bundle, "rootfs", "etc", "secret"), []byte("s"), 0o644)
		os.Symlink("/etc/secret", filepath.Join(dev, "null"))
		e.write()
		_, se, code := e.hako("run", "devnull")
		if code == 0 || !strings.Contains(se, "null device") {
			t.Fatalf("/dev/null symlink: exit %d, %q", code, se)
		}
		assertNothingLeft(t, e, "devnull")
	})
}

// CVE-2025-52565: /dev/console from the image as a symlink must not
// redirect the pty bind mount.
func TestCVE2025_52565_DevConsoleSymlinkRefused(t *testing.T) {
	e := newEnv(t)
	var mounts []specs.Mount
	for _, m := range e.spec.Mounts {
		if m.Destination != "/dev" {
			mounts = append(mounts, m)
		}
	}
	e.spec.Mounts = mounts
	dev := filepath.Join(e.bundle, "rootfs", "dev")
	os.MkdirAll(filepath.Join(dev, "pts"), 0o755)
	os.MkdirAll(filepath.Join(dev, "shm"), 0o755)
	os.MkdirAll(filepath.Join(dev, "mqueue"), 0o755)
	exec.Command("mknod", "-m", "666", filepath.Join(dev, "null"), "c", "1", "3").Run()
	os.Symlink("/etc/passwd", filepath.Join(dev, "console"))
	e.spec.Process.Terminal = true
	e.write()
	sock := filepath.Join(t.TempDir(), "c.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			defer c.Close()
			c.Read(make([]byte, 16))
		}
	}()
	_, se, code := e.hako("create", "--console-socket", sock, "console")
	if code == 0 || !strings.Contains(se, "/dev/console") {
		t.Fatalf("/dev/console symlink: exit %d, %q", code, se)
	}
	assertNothingLeft(t, e, "console")
}

// bubblewrap CVE-2017-5226: the container's init leads a session of its
// own, so it has no controlling terminal of the caller to push input into
// with TIOCSTI.
func TestCVE2017_5226_NewSession(t *testing.T) {
	e := newEnv(t)
	out := e.run("sh", "-c", "cut -d' ' -f6 /proc/1/stat")
	if strings.TrimSpace(out) != "1" {
		t.Fatalf("init's session id %q, want 1 (its own session)", out)
	}
}

// Devices: with CAP_MKNOD a container can make any node, but the devices
// cgroup lets it open only the allowed ones.
func TestDevicesCgroupOnlyAllowedOpen(t *testing.T) {
	e := newEnv(t)
	addCaps(e.spec, "CAP_MKNOD")
	e.spec.Root.Readonly = false
	out := e.run("sh", "-c", "mknod /tmp/mem c 1 1 && cat /tmp/mem 2>&1 | head -c 80; echo; mknod /tmp/null2 c 1 3 && echo ok > /tmp/null2 && echo null-ok")
	if !strings.Contains(out, "not permitted") || !strings.Contains(out, "null-ok") {
		t.Fatalf("devices cgroup:\n%s", out)
	}
}

// CVE-2023-25809: rootless without a cgroup namespace, /sys/fs/cgroup is
// read-only even when the config's cgroup mount asks for read-write.
func TestCVE2023_25809_RootlessCgroupViewReadOnly(t *testing.T) {
	e := newEnv(t)
	for i, m := range e.spec.Mounts {
		if m.Type == "cgroup" {
			var opts []string
			for _, o := range m.Options {
				if o != "ro" {
					opts = append(opts, o)
				}
			}
			e.spec.Mounts[i].Options = append(opts, "rw")
		}
	}
	e.spec.Process.Args = []string{"sh", "-c", "grep ' /sys/fs/cgroup ' /proc/self/mountinfo; touch /sys/fs/cgroup/x 2>&1; true"}
	e.write()
	out := e.hakoOK("--rootless", "true", "run", "rl1")
	if !strings.Contains(out, " /sys/fs/cgroup ro,") || !strings.Contains(out, "Read-only file system") {
		t.Fatalf("rootless cgroup view is writable:\n%s", out)
	}
	// The control: not rootless, the config's rw is honoured.
	e.spec.Process.Args = []string{"sh", "-c", "grep ' /sys/fs/cgroup ' /proc/self/mountinfo"}
	e.write()
	if out := e.hakoOK("run", "rl2"); !strings.Contains(out, " /sys/fs/cgroup rw,") {
		t.Fatalf("control: rw cgroup mount not honoured:\n%s", out)
	}
}

// Fds the caller leaves open without --preserve-fds never reach the
// container's process.
func TestCVE2024_21626_CallerFdsDoNotLeak(t *testing.T) {
	bothSides(t, func(t *testing.T) {
		e := newEnv(t)
		e.spec.Process.Args = []string{"ls", "/proc/self/fd"}
		e.write()
		so, se, code := e.hakoWithFds([]string{"/", "/etc", "/etc/passwd"}, "run", "leak1")
		if code != 0 {
			t.Fatalf("run: %d %s", code, se)
		}
		// 0 1 2 and ls's own directory fd.
		if fds := strings.Fields(so); len(fds) != 4 {
			t.Fatalf("fds in the container: %q", fds)
		}
	})
}

// The same for exec, whose plain plan nsexec.c applies in C: the fds hako
// got from its caller are not the exec'd process's.
func TestCVE2024_21626_CallerFdsDoNotLeakIntoExec(t *testing.T) {
	bothSides(t, func(t *testing.T) {
		e := newEnv(t)
		e.background("leakexec")
		so, se, code := e.hakoWithFds([]string{"/", "/etc", "/etc/passwd"}, "exec", "leakexec", "ls", "/proc/self/fd")
		if code != 0 {
			t.Fatalf("exec: %d %s", code, se)
		}
		if fds := strings.Fields(so); len(fds) != 4 {
			t.Fatalf("fds in the exec'd process: %q", fds)
		}
		e.hakoOK("delete", "--force", "leakexec")
	})
}

// exec's working directory is resolved without following a /proc magic
// link, in nsexec.c's plan as in Go's (CVE-2024-21626): the exec'd
// process holds no fd of hako's to escape through, but a cwd through its
// own fds is refused all the same, with the reason.
func TestCVE2024_21626_ExecCwdMagicLinkRefused(t *testing.T) {
	bothSides(t, func(t *testing.T) {
		e := newEnv(t)
		e.background("cwdmagic")
		for _, cwd := range []string{"/proc/self/fd/0", "/proc/self/cwd", "/proc/1/root"} {
			so, se, code := e.hako("exec", "--cwd", cwd, "cwdmagic", "pwd")
			if code == 0 || !strings.Contains(se, "goes through a /proc magic link") {
				t.Errorf("exec --cwd %s: exit %d, stdout %q, stderr %q; want refused (ELOOP)", cwd, code, so, se)
			}
		}
		e.hakoOK("delete", "--force", "cwdmagic")
	})
}

// runc #1962 (no CVE was assigned; fixed in runc 1.0.0-rc7, refined by #2647):
// with --no-pivot the host's /proc and /sys stay in the container's mount
// namespace, out of the chroot's sight but not of the kernel's
// mount_too_revealing check, which lets a user namespace mount a new procfs
// only where one is fully visible in the mount namespace. A container could
// then unshare and mount a procfs free of the masked and read-only paths.
// With a user namespace of the container's own the host mounts are locked
// and cannot be unmounted: they are covered instead.
func TestRuncPR1962_NoPivotHostProcfsHidden(t *testing.T) {
	script := "unshare -r -m -p -f sh -c 'echo in-userns; mount -t proc -o nosuid,nodev,noexec proc /proc && echo procfs-mounted'; true"
	for _, userns := range []bool{false, true} {
		e := newEnv(t)
		if userns {
			openUp(t, e.bundle)
			e.addNS(specs.UserNamespace)
			e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 310000, Size: 65536}}
			e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 310000, Size: 65536}}
		}
		// Not root: mapping uid 0 into the nested user namespace would
		// need CAP_SETFCAP, which the default capabilities lack.
		e.spec.Process.User = specs.User{UID: 1000, GID: 1000}
		e.spec.Process.Args = []string{"sh", "-c", script}
		e.write()
		id := fmt.Sprintf("d-nopivot-proc-%v", userns)
		runtimes := map[string]string{"hako": hakoBin}
		if p, err := runcPath(); err == nil {
			runtimes["runc"] = p
		}
		for name, bin := range runtimes {
			cmd := exec.Command(bin, "--root", e.root+"-"+name, "run", "--no-pivot", id)
			cmd.Dir = e.bundle
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s userns=%v: %v\n%s", name, userns, err, out)
			}
			t.Logf("%s userns=%v: %s", name, userns, out)
			if !strings.Contains(string(out), "in-userns") {
				t.Fatalf("%s userns=%v: the container could not make a user namespace, so the check proves nothing:\n%s", name, userns, out)
			}
			if strings.Contains(string(out), "procfs-mounted") {
				t.Errorf("%s userns=%v --no-pivot: a new procfs could be mounted (the host's /proc is still fully visible in the mount namespace):\n%s", name, userns, out)
			}
		}
	}
}

// CVE-2019-5736 for `hako bwrap`: the sandbox's PID 1 (hako's reaper,
// which never execs) runs from the sealed binary too, so a sandbox that
// reopens its /proc/<pid>/exe cannot rewrite hako.
func TestCVE2019_5736_BwrapReaperSealed(t *testing.T) {
	bwrapReaperSealed(t, nil)
}

// With --userns2 the init re-executes itself to enter the namespace
// (here A, a child of the host's): what it re-executes is the sealed
// binary it was started from, and the parent-death signal survives.
func TestCVE2019_5736_BwrapUserns2Sealed(t *testing.T) {
	hold := exec.Command("unshare", "-U", "--map-root-user", "sleep", "600")
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { hold.Process.Kill(); hold.Wait() }()
	p := fmt.Sprintf("/proc/%d/ns/user", hold.Process.Pid)
	var a string
	for i := 0; i < 500; i++ {
		a, _ = os.Readlink(p)
		if self, _ := os.Readlink("/proc/self/ns/user"); a != "" && a != self {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reaper := bwrapReaperSealed(t, []string{"--userns2", "3"}, f)
	if reaper.ns != a || reaper.comm != "hako:[init]" {
		t.Errorf("the sandbox's init is %q in %s, want hako:[init] in A (%s)", reaper.comm, reaper.ns, a)
	}
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", reaper.pid)); errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("the sandbox's init outlived the killed hako bwrap (--die-with-parent)")
}

type sandboxInit struct {
	pid      int
	ns, comm string
}

func bwrapReaperSealed(t *testing.T, extra []string, files ...*os.File) sandboxInit {
	// --die-with-parent: the sandbox, whose init outlives a killed hako
	// bwrap as bwrap's does, goes with it rather than sleep on.
	args := append([]string{"bwrap"}, extra...)
	cmd := exec.Command(hakoBin, append(args, "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "--dev", "/dev", "--die-with-parent", "sleep", "30")...)
	cmd.ExtraFiles = files
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// The sandbox's PID 1, among hako's children (the short-lived
	// intermediate of nsexec is one too): NSpid ends in 1.
	var reaper int
	// Any of hako's threads may be the one that forked it: read them all.
	for i := 0; i < 500 && reaper == 0; i++ {
		paths, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", cmd.Process.Pid))
		var data []byte
		for _, p := range paths {
			b, _ := os.ReadFile(p)
			data = append(append(data, b...), ' ')
		}
		for _, f := range strings.Fields(string(data)) {
			st, _ := os.ReadFile("/proc/" + f + "/status")
			if regexp.MustCompile(`(?m)^NSpid:\s+\d+\s+1$`).Match(st) {
				fmt.Sscan(f, &reaper)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if reaper == 0 {
		t.Fatal("no sandbox process appeared")
	}
	// The init re-executes itself for --userns2: wait until it runs Go
	// (named by nsexec.c, and by it again after the re-exec) and has
	// started the command.
	var si sandboxInit
	for i := 0; i < 500; i++ {
		si.ns, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/user", reaper))
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", reaper))
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", reaper, reaper))
		si.comm = strings.TrimSpace(string(comm))
		if len(strings.Fields(string(children))) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	si.pid = reaper
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/exe", reaper), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	cmd.Process.Kill()
	cmd.Wait()
	w, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(w)
		t.Fatal("the hako binary could be reopened for writing through the bwrap reaper's /proc/<pid>/exe")
	}
	if !errors.Is(err, unix.EROFS) {
		t.Fatalf("reopen failed with %v, want EROFS from the sealed overlay", err)
	}
	return si
}
