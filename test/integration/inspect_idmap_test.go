package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// rootlessHako makes the unprivileged test user (as the other rootless
// tests do) and a directory in its home holding a copy of hako; it returns
// the directory and the user's credentials.
func rootlessHako(t *testing.T) (string, *syscall.Credential) {
	t.Helper()
	if _, err := user.Lookup(rootlessUser); err != nil {
		if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", rootlessUser).CombinedOutput(); err != nil {
			t.Skipf("no unprivileged user: useradd: %v %s", err, out)
		}
	}
	u, _ := user.Lookup(rootlessUser)
	dir, err := os.MkdirTemp(u.HomeDir, "inspect-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data, _ := os.ReadFile(hakoBin)
	if err := os.WriteFile(filepath.Join(dir, "hako"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	exec.Command("chown", "-R", u.Uid+":"+u.Gid, dir).Run()
	var uid, gid uint32
	json.Unmarshal([]byte(u.Uid), &uid)
	json.Unmarshal([]byte(u.Gid), &gid)
	return dir, &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}
}

// asUser runs argv with cred from dir; it returns the combined output and
// the exit status.
func asUser(cred *syscall.Credential, dir string, env []string, argv ...string) (string, int) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		return err.Error(), -1
	}
	return string(out), code
}

// A container with two idmapped bind mounts, one with the container's user
// namespace maps and one with maps of its own: `hako inspect` reads each
// mount's idmap with statmount(2) and shows it, in text and --json, as the
// config asked (ids of this, the host's, user namespace). An unprivileged
// user sees that the mounts are idmapped (mountinfo is world-readable) and
// why the maps are not shown, not a made-up map.
func TestInspectIdmappedMounts(t *testing.T) {
	e := newEnv(t)
	openUp(t, e.bundle)
	src := t.TempDir()
	openUp(t, src)
	e.addNS(specs.UserNamespace)
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 410000, Size: 65536}}
	e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 420000, Size: 65536}}
	e.spec.Mounts = append(e.spec.Mounts,
		specs.Mount{Destination: "/mnt", Type: "bind", Source: src, Options: []string{"bind", "idmap"}},
		specs.Mount{Destination: "/tmp", Type: "bind", Source: src, Options: []string{"bind"},
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 5, HostID: 1000, Size: 1}, {ContainerID: 10, HostID: 2000, Size: 3}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 7, HostID: 1001, Size: 2}}})
	e.background("idm")

	want := map[string][2][]string{
		"/mnt": {{"0 410000 65536"}, {"0 420000 65536"}},
		"/tmp": {{"5 1000 1", "10 2000 3"}, {"7 1001 2"}},
	}
	var r struct {
		Mounts []struct {
			Target   string
			Idmapped bool
			IDMap    *struct {
				UID []string `json:"uid_map"`
				GID []string `json:"gid_map"`
			} `json:"idmap"`
			IDMapError string `json:"idmap_error"`
		}
	}
	out := e.hakoOK("inspect", "--json", "idm")
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	seen := 0
	for _, m := range r.Mounts {
		w, ok := want[m.Target]
		if !ok {
			continue
		}
		seen++
		if !m.Idmapped || m.IDMap == nil {
			t.Errorf("%s: idmapped %v, idmap %v, error %q", m.Target, m.Idmapped, m.IDMap, m.IDMapError)
			continue
		}
		if strings.Join(m.IDMap.UID, ";") != strings.Join(w[0], ";") || strings.Join(m.IDMap.GID, ";") != strings.Join(w[1], ";") {
			t.Errorf("%s: idmap uid %q gid %q, want %q %q", m.Target, m.IDMap.UID, m.IDMap.GID, w[0], w[1])
		}
	}
	if seen != 2 {
		t.Fatalf("found %d of the 2 idmapped mounts in:\n%s", seen, out)
	}
	for _, m := range r.Mounts {
		if m.Idmapped && want[m.Target][0] == nil {
			t.Errorf("%s reported idmapped", m.Target)
		}
	}
	text := e.hakoOK("inspect", "idm")
	for _, l := range []string{"idmap uid 0 410000 65536 gid 0 420000 65536", "idmap uid 5 1000 1,10 2000 3 gid 7 1001 2"} {
		if !strings.Contains(text, l) {
			t.Errorf("text lacks %q:\n%s", l, text)
		}
	}

	dir, cred := rootlessHako(t)
	var st struct{ Pid int }
	json.Unmarshal([]byte(e.hakoOK("state", "idm")), &st)
	uout, code := asUser(cred, dir, nil, filepath.Join(dir, "hako"), "inspect", "--json", itoa(st.Pid))
	if code != 0 {
		t.Fatalf("unprivileged inspect: exit %d\n%s", code, uout)
	}
	r.Mounts = nil
	if err := json.Unmarshal([]byte(uout), &r); err != nil {
		t.Fatalf("%v\n%s", err, uout)
	}
	seen = 0
	for _, m := range r.Mounts {
		if _, ok := want[m.Target]; ok {
			seen++
			if !m.Idmapped || m.IDMap != nil || !strings.Contains(m.IDMapError, "permission denied") || !strings.Contains(m.IDMapError, "needs root or the process's owner") {
				t.Errorf("unprivileged view of %s: idmapped %v map %v error %q", m.Target, m.Idmapped, m.IDMap, m.IDMapError)
			}
		}
	}
	if seen != 2 {
		t.Errorf("unprivileged view has %d of the 2 idmapped mounts:\n%s", seen, uout)
	}
	utext, _ := asUser(cred, dir, nil, filepath.Join(dir, "hako"), "inspect", itoa(st.Pid))
	if !strings.Contains(utext, "idmapped (statx") || !strings.Contains(utext, "mount ns owned by an unreadable user namespace") {
		t.Errorf("unprivileged text:\n%s", utext)
	}
}

// The kernel's refusals at hako's own sites, explained by the table's row:
// a remount that would clear a flag locked by the user namespace boundary
// (runc#3931), from `hako sandbox` (ReadWritePaths= below a read-only
// mount, as an unprivileged user) and from `hako run` (a "rw" bind of a
// read-only mount in a user-namespaced container).
func TestExplainRemountLockedAtSites(t *testing.T) {
	ro, err := os.MkdirTemp("/var/lib", "hako-ro-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(ro)
	openUp(t, ro)
	if err := unix.Mount("tmpfs", ro, "tmpfs", unix.MS_RDONLY, "size=64k,mode=755"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(ro, unix.MNT_DETACH)
	cause := "were locked when it was copied into a mount namespace owned by a less privileged user namespace"

	t.Run("run", func(t *testing.T) {
		e := newEnv(t)
		openUp(t, e.bundle)
		e.addNS(specs.UserNamespace)
		e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 430000, Size: 65536}}
		e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 430000, Size: 65536}}
		e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: ro, Options: []string{"rbind", "rw"}})
		e.spec.Process.Args = []string{"true"}
		e.write()
		_, se, code := e.hako("run", "lk")
		if code == 0 || !strings.Contains(se, "remount /mnt: ") || !strings.Contains(se, "operation not permitted") || !strings.Contains(se, cause) {
			t.Errorf("exit %d, stderr:\n%s", code, se)
		}
		if ids, _ := os.ReadDir(e.root); len(ids) != 0 {
			t.Errorf("state left behind: %v", ids)
		}
	})
	t.Run("sandbox", func(t *testing.T) {
		dir, cred := rootlessHako(t)
		out, code := asUser(cred, "/", nil, filepath.Join(dir, "hako"), "sandbox", "-p", "ReadWritePaths="+ro, "--", "true")
		if code == 0 || !strings.Contains(out, "remount "+ro+": ") || !strings.Contains(out, cause) {
			t.Errorf("exit %d:\n%s", code, out)
		}
		_ = dir
	})
}

// newuidmap's refusals, at the site where hako calls it (an unprivileged
// `hako run` mapping more than the caller's own id): a range outside the
// user's /etc/subuid, and a newuidmap that has lost its setuid bit (a copy
// first in PATH, so the host's is untouched).
func TestExplainNewuidmapAtSites(t *testing.T) {
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s missing", tool)
		}
	}
	dir, cred := rootlessHako(t)
	u, _ := user.Lookup(rootlessUser)
	first := 0
	for _, l := range strings.Split(readFile(t, "/etc/subuid"), "\n") {
		if f := strings.Split(l, ":"); len(f) == 3 && (f[0] == rootlessUser || f[0] == u.Uid) {
			json.Unmarshal([]byte(f[1]), &first)
		}
	}
	bb, _ := os.ReadFile(busybox(t))
	rootfs := filepath.Join(dir, "rootfs")
	os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "bin/busybox"), bb, 0o755)
	os.Symlink("busybox", filepath.Join(rootfs, "bin/true"))
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		p, _ := exec.LookPath(tool)
		data, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(bin, tool), data, 0o755) // no setuid bit
	}
	exec.Command("chown", "-R", u.Uid+":"+u.Gid, dir).Run()
	if out, code := asUser(cred, dir, nil, "./hako", "spec", "--rootless"); code != 0 {
		t.Fatalf("spec: %s", out)
	}
	var s specs.Spec
	json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "config.json"))), &s)
	s.Process.Terminal = false
	s.Process.Args = []string{"true"}
	write := func(hostID uint32) {
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(cred.Uid), Size: 1}, {ContainerID: 1, HostID: hostID, Size: 1000}}
		data, _ := json.Marshal(&s)
		os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644)
	}
	for _, c := range []struct {
		name   string
		hostID uint32
		path   string
		cause  string
	}{
		{"outside-subuid", 4000000, "", "is not in this user's /etc/subuid or /etc/subgid"},
		{"not-setuid", uint32(first), bin + ":", "has neither the setuid bit nor file capabilities"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "not-setuid" && first == 0 {
				t.Skipf("%s has no /etc/subuid range", rootlessUser)
			}
			write(c.hostID)
			run := filepath.Join(dir, "run-"+c.name)
			os.MkdirAll(run, 0o700)
			os.Chown(run, int(cred.Uid), int(cred.Gid))
			out, code := asUser(cred, dir, []string{"PATH=" + c.path + "/usr/bin:/bin", "XDG_RUNTIME_DIR=" + run}, "./hako", "run", "m1")
			if code == 0 || !strings.Contains(out, "newuidmap /proc/") || !strings.Contains(out, "operation not permitted") || !strings.Contains(out, c.cause) {
				t.Errorf("exit %d:\n%s", code, out)
			}
			if ids, _ := os.ReadDir(filepath.Join(run, "hako")); len(ids) != 0 {
				t.Errorf("state left behind: %v", ids)
			}
		})
	}
}
