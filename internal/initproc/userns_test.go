package initproc

import (
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/plan"
)

// The rest of a plan crosses the re-exec in a memfd and comes back whole;
// a step naming an fd that did not come with it is refused before any
// step runs.
func TestReadResume(t *testing.T) {
	write := func(r resume) string {
		data, err := r.encode()
		if err != nil {
			t.Fatal(err)
		}
		fd, err := unix.MemfdCreate("test", unix.MFD_CLOEXEC)
		if err != nil {
			t.Skip(err)
		}
		if _, err := unix.Pwrite(fd, data, 0); err != nil {
			t.Fatal(err)
		}
		return strconv.Itoa(fd)
	}
	in := resume{Conn: 7, Fds: []int{9}, Number: 30, Plan: plan.Plan{Kind: plan.KindInit, Steps: []plan.Step{
		{Op: plan.OpHoldFD, Value: "status", FD: 0},
		{Op: plan.OpUser, User: nil, Value: plan.UserNoSetgroups, FD: plan.NoFD},
	}}}
	got, err := readResume(write(in))
	if err != nil {
		t.Fatal(err)
	}
	if got.Conn != 7 || len(got.Fds) != 1 || got.Fds[0] != 9 || got.Number != 30 || len(got.Plan.Steps) != 2 || got.Plan.Steps[1].Value != plan.UserNoSetgroups {
		t.Errorf("got %+v", got)
	}
	in.Plan.Steps[0].FD = 1
	if _, err := readResume(write(in)); err == nil || !strings.Contains(err.Error(), "fd #1, but 1 fds came with it") {
		t.Errorf("step with a missing fd: %v", err)
	}
	if _, err := readResume("x"); err == nil {
		t.Error("no fd: no error")
	}
}
