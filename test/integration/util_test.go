package integration

import (
	"bufio"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func itoa(i int) string { return strconv.Itoa(i) }

func killPid(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// ownCgroupDir is the v1 directory of pid in the named hierarchy.
func ownCgroupDir(t *testing.T, pid int, controller string) string {
	t.Helper()
	f, err := os.Open("/proc/" + itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 && (parts[1] == controller || (controller == "" && parts[1] == "")) {
			if parts[1] == "" {
				if _, err := os.Stat("/sys/fs/cgroup/unified"); err == nil {
					return "/sys/fs/cgroup/unified" + parts[2]
				}
				return "/sys/fs/cgroup" + parts[2]
			}
			return "/sys/fs/cgroup/" + controller + parts[2]
		}
	}
	t.Skipf("no %s cgroup for %d", controller, pid)
	return ""
}

func hostMounts(t *testing.T) string {
	t.Helper()
	return readFile(t, "/proc/self/mountinfo")
}

func addCaps(s *specs.Spec, caps ...string) {
	c := s.Process.Capabilities
	c.Bounding = append(c.Bounding, caps...)
	c.Effective = append(c.Effective, caps...)
	c.Permitted = append(c.Permitted, caps...)
}

// openUp makes every directory above p traversable by others.
func openUp(t *testing.T, p string) {
	t.Helper()
	for d := p; d != "/" && d != "."; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, st.Mode().Perm()|0o011)
	}
}

func fmtSscan(s string, v *float64) {
	f, err := strconv.ParseFloat(s, 64)
	if err == nil {
		*v = f
	}
}
