package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The --json form of `hako inspect`, as much as these tests read.
type inspectJSON struct {
	PID        int
	Namespaces []struct {
		Kind        string
		Inode       uint64
		Host        bool
		ForChildren uint64 `json:"for_children"`
		Pending     bool   `json:"for_children_pending"`
	}
	Identity struct {
		Maps struct {
			UIDMap []specs.LinuxIDMapping `json:"uid_map"`
			GIDMap []specs.LinuxIDMapping `json:"gid_map"`
		}
	}
	Mounts []struct {
		Target      string
		HostPath    string `json:"host_path"`
		Propagation struct{ Type string }
	}
	Properties []struct {
		Name, Value, Reason string
		InForce             bool `json:"in_force"`
	}
}

func inspectPID(t *testing.T, args ...string) (inspectJSON, string) {
	t.Helper()
	var global []string
	if len(args) > 1 && args[0] == "--root" {
		global, args = args[:2], args[2:]
	}
	out, err := exec.Command(hakoBin, append(append(global, "inspect", "--json"), args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("hako inspect %v: %v\n%s", args, err, out)
	}
	var r inspectJSON
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}
	return r, string(out)
}

// startIn starts argv and waits (without a clock) until its mount table
// shows want, so that the test reads the finished situation.
func startIn(t *testing.T, want string, argv ...string) int {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	r, w, _ := os.Pipe()
	cmd.Stdout = w
	// A group of its own, killed whole: a child the script leaves (the
	// init of a PID namespace it made) must not outlive the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	buf := make([]byte, 16)
	r.Read(buf) // the script says "ready" after its mounts
	r.Close()
	if want != "" && !strings.Contains(readFile(t, fmt.Sprintf("/proc/%d/mountinfo", cmd.Process.Pid)), want) {
		t.Fatalf("%s missing in the process's mounts", want)
	}
	return cmd.Process.Pid
}

// Seed 000: Apache's /tmp under PrivateTmp is a bind of
// /tmp/systemd-private-…/tmp (and /var/tmp one of
// /var/tmp/systemd-private-…/tmp); inspect traces it back to the host and
// reads PrivateTmp=yes back from the two binds.
func TestInspectPrivateTmp(t *testing.T) {
	host, err := os.MkdirTemp("/tmp", "systemd-private-hako-test.service-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(host)
	vhost, err := os.MkdirTemp("/var/tmp", "systemd-private-hako-test.service-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(vhost)
	os.Mkdir(host+"/tmp", 0o1777)
	os.Mkdir(vhost+"/tmp", 0o1777)
	os.WriteFile(host+"/tmp/krb5cc_0", nil, 0o600)
	pid := startIn(t, " /var/tmp ", "unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount --bind "+host+"/tmp /tmp && mount --bind "+vhost+"/tmp /var/tmp && echo ready && exec sleep 1000")
	r, _ := inspectPID(t, "--properties", strconv.Itoa(pid))
	found := false
	for _, m := range r.Mounts {
		if m.Target == "/tmp" {
			found = true
			if m.HostPath != host+"/tmp" {
				t.Errorf("/tmp traced to %q, want %q", m.HostPath, host+"/tmp")
			}
		}
	}
	if !found {
		t.Fatal("no /tmp mount in the report")
	}
	prop := false
	for _, p := range r.Properties {
		if p.Name == "PrivateTmp" && p.Value == "yes" && p.InForce && strings.Contains(p.Reason, host+"/tmp") && strings.Contains(p.Reason, vhost+"/tmp") {
			prop = true
		}
	}
	if !prop {
		t.Errorf("no PrivateTmp=yes naming %s: %+v", host, r.Properties)
	}
	out, err := exec.Command(hakoBin, "inspect", "--diff", strconv.Itoa(pid)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "+ /tmp") || !strings.Contains(string(out), "← host "+host+"/tmp") || !strings.Contains(string(out), "no mount propagates") {
		t.Errorf("--diff: %v\n%s", err, out)
	}
	// The host's own /tmp is not private.
	self, _ := inspectPID(t, "--properties", strconv.Itoa(os.Getpid()))
	for _, p := range self.Properties {
		if p.Name == "PrivateTmp" && (p.InForce || p.Value != "no") {
			t.Errorf("the test process itself reported %+v", p)
		}
	}
}

// findmntProp is findmnt's PROPAGATION word for inspect's type.
func findmntProp(typ string) string {
	switch typ {
	case "shared", "shared,slave", "shared,unbindable":
		return typ
	case "slave":
		return "private,slave"
	case "unbindable":
		return "private,unbindable"
	}
	return typ
}

// Containers with rslave and private root propagation, under a bundle on
// a shared mount, checked against findmnt reading the container's mount
// namespace.
func TestInspectPropagation(t *testing.T) {
	for _, c := range []struct{ prop, want string }{{"rslave", "private,slave"}, {"private", "private"}} {
		t.Run(c.prop, func(t *testing.T) {
			e := newEnv(t)
			dir := filepath.Dir(e.bundle)
			if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
				t.Fatal(err)
			}
			defer unix.Unmount(dir, unix.MNT_DETACH)
			if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
				t.Fatal(err)
			}
			e.spec.Linux.RootfsPropagation = c.prop
			pid := e.background("p-" + c.prop)
			r, _ := inspectPID(t, "--root", e.root, "p-"+c.prop)
			if r.PID != pid {
				t.Fatalf("inspect by id gave pid %d, state says %d", r.PID, pid)
			}
			// findmnt reads the container's mount namespace through
			// --task (nsenter -m would leave it at the container's root,
			// which has no findmnt).
			out, err := exec.Command("findmnt", "--task", strconv.Itoa(pid), "-rn", "-o", "TARGET,PROPAGATION").Output()
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != len(r.Mounts) {
				t.Fatalf("findmnt lists %d mounts, inspect %d:\n%s", len(lines), len(r.Mounts), out)
			}
			var got []string
			for i, m := range r.Mounts {
				g := strings.ReplaceAll(m.Target, " ", "\\x20") + " " + findmntProp(m.Propagation.Type)
				if g != lines[i] {
					t.Errorf("mount %d: inspect %q, findmnt %q", i, g, lines[i])
				}
				got = append(got, g)
			}
			if r.Mounts[0].Target != "/" || findmntProp(r.Mounts[0].Propagation.Type) != c.want {
				t.Errorf("root propagation %+v, want %s", r.Mounts[0], c.want)
			}
		})
	}
}

// A user-namespaced container: maps and namespace inodes compared field
// by field with /proc and lsns.
func TestInspectUserNSContainer(t *testing.T) {
	e := newEnv(t)
	openUp(t, e.bundle)
	e.addNS(specs.UserNamespace)
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 320000, Size: 65536}}
	e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 330000, Size: 65536}}
	pid := e.background("ins-userns")
	r, _ := inspectPID(t, "--root", e.root, "ins-userns")
	if len(r.Identity.Maps.UIDMap) != 1 || r.Identity.Maps.UIDMap[0] != e.spec.Linux.UIDMappings[0] ||
		len(r.Identity.Maps.GIDMap) != 1 || r.Identity.Maps.GIDMap[0] != e.spec.Linux.GIDMappings[0] {
		t.Errorf("maps %+v", r.Identity.Maps)
	}
	out, err := exec.Command("lsns", "-J", "-p", strconv.Itoa(pid), "-o", "NS,TYPE").Output()
	if err != nil {
		t.Fatal(err)
	}
	var ls struct {
		Namespaces []struct {
			NS   uint64
			Type string
		}
	}
	if err := json.Unmarshal(out, &ls); err != nil {
		t.Fatalf("lsns: %v %s", err, out)
	}
	byKind := map[string]uint64{}
	for _, n := range r.Namespaces {
		byKind[n.Kind] = n.Inode
		if n.Kind == "user" && n.Host {
			t.Error("user namespace reported as the host's")
		}
	}
	if len(ls.Namespaces) != 8 {
		t.Fatalf("lsns gave %d namespaces: %s", len(ls.Namespaces), out)
	}
	for _, n := range ls.Namespaces {
		if byKind[n.Type] != n.NS {
			t.Errorf("%s: inspect %d, lsns %d", n.Type, byKind[n.Type], n.NS)
		}
	}
}

// Seed 001: after unshare(CLONE_NEWPID) without a fork the process stays in
// its PID namespace; only its children would enter the new one, which has
// no init yet, so the kernel shows no pid_for_children link at all. After
// the first fork it names the new namespace.
func TestInspectPidForChildren(t *testing.T) {
	pid := startIn(t, "", "unshare", "--pid", "sh", "-c", "echo ready; exec sleep 1000")
	pending := pidNS(t, pid)
	if _, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid_for_children", pid)); !os.IsNotExist(err) {
		t.Fatalf("kernel's pid_for_children: %v", err)
	}
	if !pending.Host || !pending.Pending || pending.ForChildren != 0 {
		t.Errorf("before a fork: %+v", pending)
	}
	// With a child (the namespace's init) the link appears.
	pid2 := startIn(t, "", "unshare", "--pid", "sh", "-c", "sleep 1000 & echo ready; wait")
	n := pidNS(t, pid2)
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid_for_children", pid2))
	if err != nil {
		t.Fatal(err)
	}
	if !n.Host || n.Pending || link != fmt.Sprintf("pid:[%d]", n.ForChildren) {
		t.Errorf("after a fork: %+v, the kernel says %s", n, link)
	}
}

func pidNS(t *testing.T, pid int) struct {
	Host, Pending bool
	ForChildren   uint64
} {
	t.Helper()
	r, _ := inspectPID(t, strconv.Itoa(pid))
	for _, n := range r.Namespaces {
		if n.Kind == "pid" {
			return struct {
				Host, Pending bool
				ForChildren   uint64
			}{n.Host, n.Pending, n.ForChildren}
		}
	}
	t.Fatal("no pid namespace in the report")
	panic("unreachable")
}
