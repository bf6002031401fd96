package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// devicesBundle lists /dev/tty and /dev/urandom (both runc defaults) and
// /dev/fuse in linux.devices, behind a deny-all rule list that opens only
// 10:200 (in an access order the kernel does not print) and reading
// urandom.
func devicesBundle(e *env) {
	mode := os.FileMode(0o666)
	e.spec.Linux.Devices = []specs.LinuxDevice{
		{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0, FileMode: &mode},
		{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9, FileMode: &mode},
		{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: &mode},
	}
	i64 := func(v int64) *int64 { return &v }
	e.spec.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: i64(10), Minor: i64(200), Access: "mrw"},
		{Allow: true, Type: "c", Major: i64(1), Minor: i64(9), Access: "r"},
	}
	e.spec.Root.Path = filepath.Join(e.bundle, "rootfs")
}

func sortedDevicesList(t *testing.T, pid int) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(readFile(t, ownCgroupDir(t, pid, "devices")+"/devices.list")), "\n")
	slices.Sort(lines)
	return lines
}

// linux.devices reaches the cgroup as runc 1.1.5 lets it: a listed node
// that is also a default (/dev/tty, /dev/urandom) loses its default rule,
// so only resources.devices decides its access, and a listed node gets no
// allow rule of its own (/dev/fuse stays denied). The kernel's list is
// compared with runc's for the same bundle where runc is installed; the
// order of the lines is each runtime's write order, so they are sorted.
func TestDevicesListMatchesRunc(t *testing.T) {
	e := newEnv(t)
	devicesBundle(e)
	pid := e.background("c-devlist")
	got := sortedDevicesList(t, pid)
	// What runc 1.1.5 leaves in devices.list for this bundle.
	want := []string{
		"b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
		"c 1:9 r", "c 10:200 rwm", "c 136:* rwm", "c 5:2 rwm",
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("hako devices.list (sorted) = %q\nwant %q", got, want)
	}

	compareDevicesListWithRunc(t, e, got, "c-devlist-runc")
}

// With the default rules only (`hako spec`'s deny-all list), the defaults
// runtimes add are what is left: runc's, /dev/net/tun's 10:200 included.
func TestDefaultDevicesListMatchesRunc(t *testing.T) {
	e := newEnv(t)
	e.spec.Root.Path = filepath.Join(e.bundle, "rootfs")
	got := sortedDevicesList(t, e.background("c-devdefault"))
	want := []string{
		"b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
		"c 1:9 rwm", "c 10:200 rwm", "c 136:* rwm", "c 5:0 rwm", "c 5:2 rwm",
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("hako devices.list (sorted) = %q\nwant %q", got, want)
	}
	compareDevicesListWithRunc(t, e, got, "c-devdefault-runc")
}

// compareDevicesListWithRunc runs e's bundle under runc, where installed,
// and compares its devices.list (sorted) with got.
func compareDevicesListWithRunc(t *testing.T, e *env, got []string, id string) {
	t.Helper()
	runc, err := runcPath()
	if err != nil {
		t.Log("runc not installed: compared with runc 1.1.5's list recorded above")
		return
	}
	runcRoot := t.TempDir()
	// Files, not pipes: the detached container keeps its stdio open.
	errf := tempOut(t)
	cmd := exec.Command(runc, "--root", runcRoot, "run", "-d", "--bundle", e.bundle, id)
	cmd.Stdout, cmd.Stderr = errf, errf
	if err := cmd.Run(); err != nil {
		t.Skipf("runc cannot run here: %v %s", err, readAll(errf))
	}
	defer exec.Command(runc, "--root", runcRoot, "delete", "--force", id).Run()
	out, err := exec.Command(runc, "--root", runcRoot, "state", id).Output()
	if err != nil {
		t.Fatalf("runc state: %v", err)
	}
	var st struct{ Pid int }
	json.Unmarshal(out, &st)
	if theirs := sortedDevicesList(t, st.Pid); !slices.Equal(got, theirs) {
		t.Errorf("devices.list (sorted) differs for the same bundle:\nhako %q\nrunc %q", got, theirs)
	}
}

// update takes resources.devices as runc's update does: any rule that
// decodes is accepted (access in any order, with repeats, even letters
// the kernel refuses) and the device rules stay as create made them,
// while the rest of the file applies.
func TestUpdateDeviceRulesLikeRunc(t *testing.T) {
	e := newEnv(t)
	devicesBundle(e)
	pid := e.background("c-devupdate")
	before := sortedDevicesList(t, pid)
	runc, runcErr := runcPath()
	runcPid := 0
	runcRoot := t.TempDir()
	if runcErr == nil {
		errf := tempOut(t)
		cmd := exec.Command(runc, "--root", runcRoot, "run", "-d", "--bundle", e.bundle, "c-devupdate-runc")
		cmd.Stdout, cmd.Stderr = errf, errf
		if err := cmd.Run(); err != nil {
			t.Fatalf("runc run: %v %s", err, readAll(errf))
		}
		defer exec.Command(runc, "--root", runcRoot, "delete", "--force", "c-devupdate-runc").Run()
		out, _ := exec.Command(runc, "--root", runcRoot, "state", "c-devupdate-runc").Output()
		var st struct{ Pid int }
		json.Unmarshal(out, &st)
		runcPid = st.Pid
	}
	for i, rule := range []string{
		`{"allow": true, "type": "c", "major": 10, "minor": 229, "access": "mrw"}`,
		`{"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rrw"}`,
		`{"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwx"}`,
		`{"allow": true, "type": "c", "major": 10, "minor": 229, "access": ""}`,
		`{"allow": true, "access": "rwm"}`,
	} {
		limit := 40 + i
		r := filepath.Join(t.TempDir(), "r.json")
		os.WriteFile(r, []byte(`{"devices": [`+rule+`], "pids": {"limit": `+itoa(limit)+`}}`), 0o644)
		if _, se, code := e.hako("update", "-r", r, "c-devupdate"); code != 0 {
			t.Errorf("update with %s: exit %d: %s", rule, code, se)
			continue
		}
		if got := sortedDevicesList(t, pid); !slices.Equal(got, before) {
			t.Errorf("update with %s changed devices.list:\n%q\nwas %q", rule, got, before)
		}
		if v := strings.TrimSpace(readFile(t, ownCgroupDir(t, pid, "pids")+"/pids.max")); v != itoa(limit) {
			t.Errorf("update with %s: pids.max = %s, want %d", rule, v, limit)
		}
		if runcPid == 0 {
			continue
		}
		if out, err := exec.Command(runc, "--root", runcRoot, "update", "-r", r, "c-devupdate-runc").CombinedOutput(); err != nil {
			t.Errorf("runc update with %s: %v %s (the premise of this test no longer holds)", rule, err, out)
		}
		if theirs := sortedDevicesList(t, runcPid); !slices.Equal(theirs, before) {
			t.Errorf("after update with %s: hako %q, runc %q", rule, before, theirs)
		}
	}
}
