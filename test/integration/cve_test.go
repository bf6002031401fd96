package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

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
