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

	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Log("runc not installed: compared with runc 1.1.5's list recorded above")
		return
	}
	runcRoot := t.TempDir()
	// Files, not pipes: the detached container keeps its stdio open.
	errf := tempOut(t)
	cmd := exec.Command(runc, "--root", runcRoot, "run", "-d", "--bundle", e.bundle, "c-devlist-runc")
	cmd.Stdout, cmd.Stderr = errf, errf
	if err := cmd.Run(); err != nil {
		t.Skipf("runc cannot run here: %v %s", err, readAll(errf))
	}
	defer exec.Command(runc, "--root", runcRoot, "delete", "--force", "c-devlist-runc").Run()
	out, err := exec.Command(runc, "--root", runcRoot, "state", "c-devlist-runc").Output()
	if err != nil {
		t.Fatalf("runc state: %v", err)
	}
	var st struct{ Pid int }
	json.Unmarshal(out, &st)
	if theirs := sortedDevicesList(t, st.Pid); !slices.Equal(got, theirs) {
		t.Errorf("devices.list (sorted) differs for the same bundle:\nhako %q\nrunc %q", got, theirs)
	}
}
