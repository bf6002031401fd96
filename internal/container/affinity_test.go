package container

import (
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The main goroutine keeps the main thread, which Go never terminates, so
// that startWithAffinity's goroutine runs on a thread that can exit: there
// the bug below shows every time, not only under load.
func init() { runtime.LockOSThread() }

// A child started with an initial CPU set must outlive the goroutine that
// forked it: its PDEATHSIG fires when the forking thread exits, which a
// goroutine that returns still locked to its thread causes.
func TestStartWithAffinityChildSurvives(t *testing.T) {
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		t.Fatal(err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	cmd := &child{path: sleep, argv: []string{"sleep", "5"}, files: []uintptr{0, 1, 2}, sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}}
	if err := startWithAffinity(cmd, &cpus); err != nil {
		t.Fatal(err)
	}
	defer cmd.kill()
	done := make(chan error, 1)
	go func() { done <- cmd.wait() }()
	select {
	case err := <-done:
		t.Fatalf("the child died before its time: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	var own unix.CPUSet
	unix.SchedGetaffinity(0, &own)
	if own != cpus {
		t.Fatalf("the runtime's own affinity changed: %v, was %v", own, cpus)
	}
}
