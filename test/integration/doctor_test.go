package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

type doctorJSON struct {
	Rootless bool
	Failed   int
	Checks   []struct{ Name, Status, Detail, Fix string }
}

func parseDoctor(t *testing.T, out []byte) doctorJSON {
	t.Helper()
	var d doctorJSON
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}
	return d
}

func (d doctorJSON) check(t *testing.T, name string) (string, string) {
	t.Helper()
	for _, c := range d.Checks {
		if c.Name == name {
			return c.Status, c.Detail + " fix: " + c.Fix
		}
	}
	t.Fatalf("no check %q in %+v", name, d.Checks)
	return "", ""
}

func TestDoctorRoot(t *testing.T) {
	out, err := exec.Command(hakoBin, "doctor", "--json", "--path", t.TempDir()).Output()
	if err != nil {
		t.Fatalf("doctor as root on this host: %v\n%s", err, out)
	}
	d := parseDoctor(t, out)
	if d.Rootless || d.Failed != 0 {
		t.Errorf("rootless=%v failed=%d", d.Rootless, d.Failed)
	}
	for _, name := range []string{"namespace user", "namespace time", "user namespaces", "proc mount", "new mount API", "cgroup mode", "idmapped mount --path"} {
		if s, detail := d.check(t, name); s != "ok" {
			t.Errorf("%s: %s %s", name, s, detail)
		}
	}
	// This machine's oddities: hugetlb on the cgroup2 tree of a hybrid
	// host, no CAP_SYS_RESOURCE in the bounding set.
	if data, _ := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers"); strings.Contains(string(data), "hugetlb") {
		if s, _ := d.check(t, "hybrid hugetlb"); s != "warn" {
			t.Errorf("hybrid hugetlb: %s", s)
		}
	}
	if s, detail := d.check(t, "capability bounding set"); strings.Contains(readFile(t, "/proc/self/status"), "CapBnd:\t000001fffeffffff") && (s != "warn" || !strings.Contains(detail, "CAP_SYS_RESOURCE")) {
		t.Errorf("bounding set: %s %s", s, detail)
	}
}

// user.max_user_namespaces=0 set inside a fresh user+mount namespace (the
// limit is per user namespace, so the host's stays as it was): doctor
// must fail the user namespace checks, say why, and exit non-zero.
func TestDoctorForcedFailure(t *testing.T) {
	before := readFile(t, "/proc/sys/user/max_user_namespaces")
	cmd := exec.Command("unshare", "-Urm", "sh", "-c", "echo 0 > /proc/sys/user/max_user_namespaces && exec "+hakoBin+" doctor --json")
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("doctor with user namespaces disabled: %v (want exit 1)\n%s", err, out)
	}
	d := parseDoctor(t, out)
	s, detail := d.check(t, "user namespaces")
	if s != "fail" || !strings.Contains(detail, "max_user_namespaces") || !strings.Contains(detail, "sysctl -w user.max_user_namespaces") {
		t.Errorf("user namespaces: %s %s", s, detail)
	}
	if after := readFile(t, "/proc/sys/user/max_user_namespaces"); after != before {
		t.Fatalf("host's max_user_namespaces changed: %s -> %s", before, after)
	}
}

// As an unprivileged user: rootless checks, subordinate ids, and the same
// forced failure.
func TestDoctorUnprivileged(t *testing.T) {
	u, err := user.Lookup(rootlessUser)
	if err != nil {
		t.Skipf("needs the %s user (TestRootlessByUnprivilegedUser creates it)", rootlessUser)
	}
	dir, err := os.MkdirTemp("", "hako-doctor-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "hako")
	data, _ := os.ReadFile(hakoBin)
	os.WriteFile(bin, data, 0o755)
	out, err := exec.Command("su", rootlessUser, "-s", "/bin/sh", "-c", bin+" doctor --json").Output()
	d := parseDoctor(t, out)
	if !d.Rootless {
		t.Error("not reported as rootless")
	}
	if s, detail := d.check(t, "user namespaces"); s != "ok" {
		t.Errorf("user namespaces as %s: %s %s (%v)", u.Username, s, detail, err)
	}
	if s, detail := d.check(t, "/etc/subuid"); s == "fail" {
		t.Errorf("/etc/subuid: %s %s", s, detail)
	}
	if s, _ := d.check(t, "idmapped mount --root"); s == "ok" {
		t.Error("an unprivileged user cannot clone a mount tree, yet the idmap probe passed")
	}
	out, err = exec.Command("su", rootlessUser, "-s", "/bin/sh", "-c", "unshare -Urm sh -c 'echo 0 > /proc/sys/user/max_user_namespaces && exec "+bin+" doctor --json --rootless'").Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("unprivileged doctor with user namespaces disabled: %v\n%s", err, out)
	}
	if s, detail := parseDoctor(t, out).check(t, "user namespaces"); s != "fail" || !strings.Contains(detail, "max_user_namespaces") {
		t.Errorf("user namespaces: %s %s", s, detail)
	}
}
