package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// refRuntimes are the reference runtimes installed here, each with its own
// --root, for side-by-side runs of the same bundle.
func refRuntimes(t *testing.T) map[string][]string {
	t.Helper()
	refs := map[string][]string{}
	if p, err := runcPath(); err == nil {
		refs["runc"] = []string{p, "--root", t.TempDir()}
	}
	if p, err := exec.LookPath("crun"); err == nil {
		refs["crun"] = []string{p, "--root", t.TempDir()}
	}
	return refs
}

// hakoAndRunc is hako with the env's --root and, when installed, Debian's
// runc with its own.
func hakoAndRunc(e *env) map[string][]string {
	rts := map[string][]string{"hako": {hakoBin, "--root", e.root}}
	if ref, ok := refRuntimes(e.t)["runc"]; ok {
		rts["runc"] = ref
	}
	return rts
}

// runcPath is the runc these tests compare with: Debian's package (1.1.5),
// whose behaviour the expectations record, even where a newer runc (a
// reference build of 1.5 in ~/go/bin, say) comes first on PATH.
func runcPath() (string, error) {
	for _, p := range []string{"/usr/sbin/runc", "/usr/bin/runc"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return exec.LookPath("runc")
}

// runWith runs the bundle's process to completion under a runtime (argv0
// and its global flags) and returns its combined output and exit code.
func runWith(t *testing.T, rt []string, bundle, id string) (string, int) {
	t.Helper()
	so, se, code := rtCmd(t, rt, "run", "--bundle", bundle, id)
	rtCmd(t, rt, "delete", "--force", id)
	return so + se, code
}

// Seed 001: a daemon probing a closed port on 127.0.0.1 in a new network
// namespace must be refused at once. The kernel creates the namespace with
// lo down (ENETUNREACH); runc and crun bring it up.
func TestLoopbackUpInNewNetworkNamespace(t *testing.T) {
	e := newEnv(t)
	e.spec.Root.Path = filepath.Join(e.bundle, "rootfs")
	e.spec.Process.Args = []string{"sh", "-c", "cat /sys/class/net/lo/flags; nc 127.0.0.1 9050 </dev/null 2>&1; true"}
	for _, a := range []string{"nc"} {
		os.Symlink("busybox", filepath.Join(e.bundle, "rootfs/bin", a))
	}
	e.write()
	check := func(name, out string) {
		t.Helper()
		if !strings.Contains(out, "Connection refused") {
			t.Errorf("%s: a probe of 127.0.0.1:9050 was not refused:\n%s", name, out)
		}
		// IFF_UP is bit 0 of the flags sysfs prints in hex.
		if f := strings.Fields(out); len(f) == 0 || !strings.HasSuffix(f[0], "9") {
			t.Errorf("%s: lo flags %q, want IFF_UP|IFF_LOOPBACK (0x9) set", name, out)
		}
	}
	out, code := runWith(t, []string{hakoBin, "--root", e.root}, e.bundle, "lo-up")
	if code != 0 {
		t.Fatalf("hako run: exit %d\n%s", code, out)
	}
	check("hako", out)
	for name, rt := range refRuntimes(t) {
		if out, code := runWith(t, rt, e.bundle, "lo-up"); code == 0 {
			check(name, out)
		}
	}
}

// Both forms sysctl(8) and runc accept name the same file.
func TestSysctlSlashAndDotForms(t *testing.T) {
	e := newEnv(t)
	e.spec.Root.Path = filepath.Join(e.bundle, "rootfs")
	e.spec.Linux.Sysctl = map[string]string{"net/ipv4/ip_default_ttl": "99", "net.ipv4.tcp_syncookies": "0"}
	e.spec.Process.Args = []string{"cat", "/proc/sys/net/ipv4/ip_default_ttl", "/proc/sys/net/ipv4/tcp_syncookies"}
	e.write()
	rts := refRuntimes(t)
	rts["hako"] = []string{hakoBin, "--root", e.root}
	for name, rt := range rts {
		out, code := runWith(t, rt, e.bundle, "sysctl-forms")
		if name != "hako" && code != 0 {
			continue
		}
		if code != 0 || strings.Fields(out)[0] != "99" || strings.Fields(out)[1] != "0" {
			t.Errorf("%s: exit %d, got %q, want 99 and 0", name, code, out)
		}
	}
}

// A read-only /dev (runc's rule) is made read-only after everything under
// it: devpts, shm, the device nodes and /dev/console.
func TestReadonlyDevAppliedLast(t *testing.T) {
	e := newEnv(t)
	for i, m := range e.spec.Mounts {
		if m.Destination == "/dev" {
			e.spec.Mounts[i].Options = append(m.Options, "ro")
		}
	}
	out := e.run("sh", "-c", "grep -E ' /dev(/pts|/shm)? ' /proc/self/mountinfo; touch /dev/x 2>&1; ls /dev/null /dev/pts/ptmx")
	if !strings.Contains(out, " /dev ro,") {
		t.Errorf("/dev is not read-only:\n%s", out)
	}
	if !strings.Contains(out, " /dev/pts rw,") || !strings.Contains(out, " /dev/shm ") {
		t.Errorf("/dev's submounts missing or read-only:\n%s", out)
	}
	if !strings.Contains(out, "Read-only file system") {
		t.Errorf("touch /dev/x did not fail with EROFS:\n%s", out)
	}
}

// mountShared mounts a tmpfs on dir and makes it a shared mount, as /
// is on systemd hosts; the test's cleanup detaches it.
func mountShared(t *testing.T, dir, name string) {
	t.Helper()
	if out, err := exec.Command("mount", "-t", "tmpfs", name, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-R", "-l", dir).Run() })
	if out, err := exec.Command("mount", "--make-rshared", dir).CombinedOutput(); err != nil {
		t.Fatalf("make-rshared: %v %s", err, out)
	}
}

// Kubernetes' Bidirectional propagation (critest's rshared case):
// rootfsPropagation rshared with the rootfs a shared mount point of its own,
// as containerd's overlay is. pivot_root refuses a shared parent, so the
// rootfs's mount is made private first (runc's rootfsParentMountPrivate) and
// rshared applied after; mounts made on either side of an rshared bind still
// reach the other.
func TestRootfsPropagationRshared(t *testing.T) {
	e := newEnv(t)
	area := t.TempDir()
	mountShared(t, area, "hako-area")
	if out, err := exec.Command("cp", "-a", e.bundle, area).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	e.bundle = filepath.Join(area, "bundle")
	rootfs := filepath.Join(e.bundle, "rootfs")
	if out, err := exec.Command("mount", "--bind", rootfs, rootfs).CombinedOutput(); err != nil {
		t.Fatalf("bind rootfs: %v %s", err, out)
	}
	vol := t.TempDir()
	mountShared(t, vol, "hako-vol")
	e.spec.Root.Path = rootfs
	e.spec.Linux.RootfsPropagation = "rshared"
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/mnt/vol", Type: "bind", Source: vol, Options: []string{"rbind", "rshared"}})
	addCaps(e.spec, "CAP_SYS_ADMIN")
	e.background("rshared")
	e.hakoOK("exec", "rshared", "sh", "-c", "mkdir /mnt/vol/in && mount -t tmpfs hako-from-inside /mnt/vol/in")
	if !strings.Contains(hostMounts(t), filepath.Join(vol, "in")+" ") {
		t.Errorf("a mount made in the container under an rshared bind did not reach the host:\n%s", hostMounts(t))
	}
	os.Mkdir(filepath.Join(vol, "late"), 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "hako-from-host", filepath.Join(vol, "late")).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	if out := e.hakoOK("exec", "rshared", "grep", "/mnt/vol/late", "/proc/self/mountinfo"); !strings.Contains(out, "hako-from-host") {
		t.Errorf("a host mount under the volume did not reach the container: %q", out)
	}
	if out := e.hakoOK("exec", "rshared", "grep", "-E", "^[0-9]+ [0-9]+ [0-9:]+ [^ ]+ / ", "/proc/self/mountinfo"); !strings.Contains(out, "shared:") {
		t.Errorf("the container's / is not shared: %q", out)
	}
	e.hakoOK("delete", "--force", "rshared")
}

// Each hook gets its status and working directory. prestart and
// createRuntime get "created": the runtime-spec's lifecycle runs them after
// step 2, and runtime-tools' hooks_stdin checks it (runc says "creating",
// the one place hako follows the spec's validation suite over runc).
// createContainer gets runc's "creating", startContainer "created"; the
// parent's hooks run from the bundle and createContainer from the rootfs,
// as under runc.
func TestHookStatusAndCwdMatchRunc(t *testing.T) {
	e := newEnv(t)
	rootfs := filepath.Join(e.bundle, "rootfs")
	e.spec.Root.Path = rootfs
	e.spec.Root.Readonly = false
	out := t.TempDir()
	openUp(t, out)
	record := func(kind, dir string) specs.Hook {
		// status from the state JSON on stdin, then the cwd.
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", `{ sed 's/.*"status":"\([a-z]*\)".*/\1/'; echo; pwd; } > ` + dir + "/" + kind}}
	}
	e.spec.Hooks = &specs.Hooks{
		Prestart:        []specs.Hook{record("prestart", out)}, //nolint:staticcheck
		CreateRuntime:   []specs.Hook{record("createRuntime", out)},
		CreateContainer: []specs.Hook{record("createContainer", out)},
		StartContainer:  []specs.Hook{record("startContainer", "/tmp")},
	}
	os.Symlink("busybox", filepath.Join(rootfs, "bin/sed"))
	os.Symlink("busybox", filepath.Join(rootfs, "bin/pwd"))
	e.spec.Process.Args = []string{"true"}
	e.write()
	results := func(rt []string) map[string]string {
		os.RemoveAll(filepath.Join(rootfs, "tmp/startContainer"))
		if o, code := runWith(t, rt, e.bundle, "hook-status"); code != 0 {
			t.Fatalf("%s run: exit %d\n%s", rt[0], code, o)
		}
		got := map[string]string{}
		for _, k := range []string{"prestart", "createRuntime", "createContainer"} {
			got[k] = readFile(t, filepath.Join(out, k))
		}
		got["startContainer"] = readFile(t, filepath.Join(rootfs, "tmp/startContainer"))
		return got
	}
	hako := results([]string{hakoBin, "--root", e.root})
	want := map[string]string{"prestart": "created\n", "createRuntime": "created\n", "createContainer": "creating\n" + rootfs + "\n", "startContainer": "created\n"}
	for k, w := range want {
		if !strings.HasPrefix(hako[k], w) {
			t.Errorf("hako: %s hook saw %q, want %q first", k, hako[k], w)
		}
	}
	for name, rt := range refRuntimes(t) {
		if name != "runc" {
			continue
		}
		ref := results(rt)
		for _, k := range []string{"createContainer", "startContainer"} {
			if strings.Fields(ref[k])[0] != strings.Fields(hako[k])[0] {
				t.Errorf("%s hook status: hako %q, runc %q", k, hako[k], ref[k])
			}
		}
		for _, k := range []string{"prestart", "createRuntime", "createContainer"} {
			if strings.Fields(ref[k])[1] != strings.Fields(hako[k])[1] {
				t.Errorf("%s cwd: hako %q, runc %q", k, hako[k], ref[k])
			}
		}
	}
}

// startContainer hooks run in the container under its seccomp filter, with
// and without no_new_privs (runc 1.2+ loads the filter before the init
// waits for start; 1.1 loaded it after the hooks when no_new_privs was set).
func TestStartContainerHookUnderSeccomp(t *testing.T) {
	for _, nnp := range []bool{true, false} {
		e := newEnv(t)
		e.spec.Root.Readonly = false
		e.spec.Process.NoNewPrivileges = nnp
		eperm := uint(1)
		e.spec.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &eperm}},
		}
		e.spec.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c",
			"if mkdir /tmp/hookdir 2>/dev/null; then echo unfiltered; else echo filtered; fi > /tmp/hook"}}}}
		out := e.run("cat", "/tmp/hook")
		if strings.TrimSpace(out) != "filtered" {
			t.Errorf("noNewPrivileges=%v: startContainer hook ran outside the seccomp filter: %q", nnp, out)
		}
	}
}

// The constructor's refusals are explained: unshare(CLONE_NEWUSER) with
// user.max_user_namespaces at 0 (set in a user namespace of the test's, so
// the host's value stays) names the sysctl and how to raise it.
func TestExplainUnshareUserLimit(t *testing.T) {
	e := newEnv(t)
	e.spec.Linux.Namespaces = append(e.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 1}}
	e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 1}}
	e.spec.Process.Args = []string{"true"}
	e.write()
	before := readFile(t, "/proc/sys/user/max_user_namespaces")
	cmd := exec.Command("unshare", "-Urm", "sh", "-c", "echo 0 > /proc/sys/user/max_user_namespaces && exec "+hakoBin+" --root "+e.root+" run --bundle "+e.bundle+" limited")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("run with user namespaces disabled succeeded:\n%s", out)
	}
	for _, want := range []string{"unshare(CLONE_NEWUSER)", "no space left on device", "user.max_user_namespaces", "sysctl -w"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("error lacks %q:\n%s", want, out)
		}
	}
	if after := readFile(t, "/proc/sys/user/max_user_namespaces"); after != before {
		t.Fatalf("host's max_user_namespaces changed: %s -> %s", before, after)
	}
}

// Seed 002: a new procfs needs CAP_SYS_ADMIN over the PID namespace's
// owner. A container with its own user namespace but the host's PID
// namespace cannot mount /proc, and the error says why.
func TestExplainProcNeedsOwnPIDNamespace(t *testing.T) {
	e := newEnv(t)
	e.dropNS(specs.PIDNamespace)
	e.addNS(specs.UserNamespace)
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	e.spec.Process.Args = []string{"true"}
	e.write()
	openUp(t, filepath.Join(e.bundle, "rootfs"))
	_, se, code := e.hako("run", "--bundle", e.bundle, "procowner")
	if code == 0 || !strings.Contains(se, "mount proc /proc") || !strings.Contains(se, "operation not permitted (") {
		t.Fatalf("run: exit %d, stderr %q (want mount proc's EPERM, explained)", code, se)
	}
	assertNothingLeft(t, e, "procowner")
}
