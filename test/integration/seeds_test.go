package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Seed 002/004: a new PID namespace needs its own /proc; the container sees
// only its own processes, and its process is PID 1.
func TestSeedPIDNamespaceProc(t *testing.T) {
	e := newEnv(t)
	out := e.run("sh", "-c", "echo $$; ls /proc | grep '^[0-9]*$' | wc -l")
	lines := strings.Fields(out)
	if len(lines) != 2 || lines[0] != "1" {
		t.Fatalf("want pid 1, got %q", out)
	}
	// sh, ls, grep and wc at most: nothing of the host's.
	if n := lines[1]; n > "4" || len(n) > 1 {
		t.Fatalf("container /proc shows %s processes", n)
	}
}

// Seed 003: a mount made inside the container never reaches the host, even
// when the bundle lives on a shared mount.
func TestSeedMountDoesNotLeakFromSharedMount(t *testing.T) {
	e := newEnv(t)
	shared := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "hako-shared", shared).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	defer exec.Command("umount", "-l", shared).Run()
	if out, err := exec.Command("mount", "--make-shared", shared).CombinedOutput(); err != nil {
		t.Fatalf("make-shared: %v %s", err, out)
	}
	if out, err := exec.Command("cp", "-a", e.bundle, shared).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	e.bundle = filepath.Join(shared, "bundle")
	e.spec.Root.Readonly = false
	addCaps(e.spec, "CAP_SYS_ADMIN")
	marker := "hako-leak-" + sanitize(t.Name())
	e.run("sh", "-c", "mount -t tmpfs "+marker+" /mnt && grep -q "+marker+" /proc/self/mountinfo && echo mounted")
	if strings.Contains(hostMounts(t), marker) {
		t.Fatal("the container's mount leaked to the host")
	}
	e.spec.Process.Args = []string{"sh", "-c", "mount -t tmpfs " + marker + " /mnt && sleep 1000"}
	e.write()
	e.hakoOK("run", "-d", "--bundle", e.bundle, "leak")
	if strings.Contains(hostMounts(t), marker) {
		t.Fatal("the running container's mount is visible on the host")
	}
}

// Seed 000: a private tmpfs /tmp, gone with the container.
func TestSeedPrivateTmp(t *testing.T) {
	e := newEnv(t)
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}})
	hostTmp := filepath.Join(e.bundle, "rootfs/tmp")
	e.background("tmp1")
	out := e.hakoOK("exec", "tmp1", "sh", "-c", "echo secret > /tmp/f && cat /tmp/f && grep ' /tmp ' /proc/self/mountinfo")
	if !strings.Contains(out, "secret") || !strings.Contains(out, "tmpfs") {
		t.Fatalf("exec: %q", out)
	}
	if _, err := os.Stat(filepath.Join(hostTmp, "f")); err == nil {
		t.Fatal("the container's /tmp file is in the rootfs on the host")
	}
	e.hakoOK("delete", "--force", "tmp1")
	if strings.Contains(hostMounts(t), e.bundle) {
		t.Fatalf("mounts under the bundle left after delete:\n%s", hostMounts(t))
	}
}

// Seed 002: uid/gid maps hold inside and on files written to a bind mount.
func TestSeedUserNamespaceMaps(t *testing.T) {
	e := newEnv(t)
	e.addNS(specs.UserNamespace)
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
	e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
	// The container's root is host uid 200000: it must be able to reach
	// the rootfs through the test's private temporary directories.
	openUp(t, e.bundle)
	shared := t.TempDir()
	os.Chown(shared, 200000, 200000)
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: shared, Options: []string{"rbind", "rw"}})
	out := e.run("sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /mnt/f")
	f := strings.Fields(out)
	if len(f) != 7 || f[0] != "0" || f[1] != "200000" || f[2] != "65536" || f[6] != "0" {
		t.Fatalf("maps inside: %q", out)
	}
	var st = statOwner(t, filepath.Join(shared, "f"))
	if st != [2]uint32{200000, 200000} {
		t.Fatalf("file written by container root is owned by %v on the host, want 200000:200000", st)
	}
}

// Seed 001: /proc/<pid>/ns links differ from the host's exactly for the
// configured namespaces, and exec joins the same ones.
func TestSeedNamespacesExactlyAsConfigured(t *testing.T) {
	e := newEnv(t)
	// Default config: pid, network, ipc, uts, mount (no cgroup/user/time).
	pid := e.background("ns1")
	fresh := map[string]bool{"pid": true, "net": true, "ipc": true, "uts": true, "mnt": true}
	for _, n := range []string{"pid", "net", "ipc", "uts", "mnt", "user", "cgroup", "time"} {
		host, _ := os.Readlink("/proc/self/ns/" + n)
		ctr, err := os.Readlink("/proc/" + itoa(pid) + "/ns/" + n)
		if err != nil {
			t.Fatal(err)
		}
		if (host != ctr) != fresh[n] {
			t.Errorf("%s: host %s container %s, new=%v", n, host, ctr, fresh[n])
		}
		out := e.hakoOK("exec", "ns1", "readlink", "/proc/self/ns/"+n)
		if strings.TrimSpace(out) != ctr {
			t.Errorf("exec %s namespace %s, init's %s", n, strings.TrimSpace(out), ctr)
		}
	}
}

// Seed 001/004: after pivot_root the host's / is unreachable: no mount of
// the host's is left in the container's table but the rootfs and its own.
func TestSeedHostRootUnreachable(t *testing.T) {
	e := newEnv(t)
	os.WriteFile("/hako-host-marker", []byte("x"), 0o644)
	defer os.Remove("/hako-host-marker")
	out := e.run("sh", "-c", "ls / ; cat /proc/self/mountinfo; ls /hako-host-marker 2>&1; cd /..; ls")
	if strings.Contains(out, "hako-host-marker\n") && !strings.Contains(out, "No such file") {
		t.Fatalf("host root visible:\n%s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[4] == "/" && f[3] != filepath.Join(e.bundle, "rootfs") {
			t.Fatalf("/ in the container is %q, not the rootfs", f[3])
		}
	}
}
