package initproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/frame"
	"github.com/hako-runtime/hako/internal/nsenter"
	"github.com/hako-runtime/hako/internal/plan"
)

// EnvResume names, in an init that re-executed itself (OpEnterUserNS),
// the memfd holding the rest of its plan.
const EnvResume = "_HAKO_RESUME"

// resume is what crosses OpEnterUserNS's exec: the socket to the parent,
// the fds the process held, and the steps still to apply. Every other bit
// of the process's state (root, cwd, namespaces, umask, rlimits, session,
// the parent-death signal) is the kernel's and survives the exec itself.
type resume struct {
	Conn int       `json:"conn"`
	Fds  []int     `json:"fds"` // what the steps' FD index, by number
	Plan plan.Plan `json:"-"`
	// Wire is Plan in its wire form, as every plan travels.
	Wire []byte `json:"plan"`
	// Number is applier.number: the steps after the held fds' are
	// numbered as in the compiled plan.
	Number int `json:"number"`
}

func (r *resume) encode() ([]byte, error) {
	r.Wire = plan.Encode(&r.Plan)
	return json.Marshal(r)
}

// holdExe opens the binary this process runs while the host's /proc is in
// reach: the sealed handle hako started it through (exeseal), so the
// re-exec keeps the CVE-2019-5736 seal.
func holdExe(a *applier) error {
	fd, err := unix.Open("/proc/self/exe", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /proc/self/exe: %w", err)
	}
	a.exe = fd
	return nil
}

// enterUserNSStep is bubblewrap's --userns2: once the sandbox is set up,
// the process moves into another user namespace. The kernel refuses
// setns(CLONE_NEWUSER) to a multithreaded process, and a Go process always
// is, so the init re-executes the binary it runs with nsexec.c armed to
// make that one setns before Go starts, and the new image applies the
// steps after this one (Main, resumeMain): the same handlers, in the same
// process (pid, parent-death signal and all), no second copy of them.
func enterUserNSStep(a *applier, s *plan.Step) error {
	ns := a.userns
	if ns <= 0 {
		return errors.New("no user namespace held (hold-fd userns)")
	}
	a.userns = 0
	defer unix.Close(ns)
	if a.exe <= 0 {
		return errors.New("the binary to re-execute was not held (hold-fd exe)")
	}
	// Only what resume carries survives the exec.
	if a.root != nil || a.exec.path != "" || a.kept != nil || a.cwdRefused || a.cwdFound || a.taskCg != (taskCgroup{}) || a.cgroupRead != nil {
		return errors.New("must come after the root change and before the steps whose state lives in the process")
	}
	next := -1
	for i := range a.plan.Steps {
		if &a.plan.Steps[i] == s {
			next = i + 1
		}
	}
	if next < 0 {
		return errors.New("step not in the plan")
	}
	for _, st := range a.plan.Steps[next:] {
		// The plan's fds are closed at the root change.
		if st.FD >= 0 {
			return fmt.Errorf("a later step (%s) has an fd of the plan", st.Op)
		}
	}
	r := resume{Conn: a.conn.Fd(), Plan: plan.Plan{Kind: a.plan.Kind, Fds: a.plan.Fds}}
	hold := func(fd int, value string) {
		if fd >= 0 {
			r.Plan.Steps = append(r.Plan.Steps, plan.Step{Op: plan.OpHoldFD, Value: value, FD: len(r.Fds)})
			r.Fds = append(r.Fds, fd)
		}
	}
	hold(a.status, "status")
	hold(a.block, "block")
	for _, fd := range a.held {
		hold(fd, "")
	}
	r.Number = a.number + next - len(r.Plan.Steps)
	r.Plan.Steps = append(r.Plan.Steps, a.plan.Steps[next:]...)
	data, err := r.encode()
	if err != nil {
		return err
	}
	// A memfd, not a pipe or socket: nobody reads it before the exec, and
	// a plan can be larger than their buffers.
	mfd, err := unix.MemfdCreate("hako-resume", unix.MFD_CLOEXEC|unix.MFD_NOEXEC_SEAL)
	if errors.Is(err, unix.EINVAL) {
		// Kernels before 6.3 know no MFD_NOEXEC_SEAL.
		mfd, err = unix.MemfdCreate("hako-resume", unix.MFD_CLOEXEC)
	}
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	defer unix.Close(mfd)
	if _, err := unix.Pwrite(mfd, data, 0); err != nil {
		return fmt.Errorf("write the plan's rest to a memfd: %w", err)
	}
	pass := append([]int{mfd, ns, r.Conn}, r.Fds...)
	for _, fd := range pass {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("fcntl F_SETFD fd %d: %w", fd, err)
		}
	}
	env := []string{
		EnvResume + "=" + strconv.Itoa(mfd),
		nsenter.EnvSetnsUser + "=" + strconv.Itoa(ns),
		"GOGC=off", "GOMAXPROCS=1",
		// The runtime would otherwise read the sandbox's
		// /sys/fs/cgroup and /proc/self/mountinfo for its CPU limit,
		// files the sandbox's mounts decide.
		"GODEBUG=containermaxprocs=0,updatemaxprocs=0",
	}
	err = execveat(a.exe, os.Args, env)
	for _, fd := range pass {
		unix.CloseOnExec(fd)
	}
	return fmt.Errorf("re-execute hako (fd %d) to enter the user namespace: %w", a.exe, err)
}

// execveat runs the file open at fd (x/sys has no wrapper): after the root
// change, /proc/self/fd may not be mounted.
func execveat(fd int, argv, env []string) error {
	empty, err := syscall.BytePtrFromString("")
	if err != nil {
		return err
	}
	av, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	ev, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&av[0])), uintptr(unsafe.Pointer(&ev[0])), unix.AT_EMPTY_PATH, 0)
	return e
}

// resumeMain is Main in an init that re-executed itself (OpEnterUserNS):
// the rest of the plan comes from the memfd, the constructor has entered
// the user namespace, or says why not.
func resumeMain() {
	r, err := readResume(os.Getenv(EnvResume))
	os.Unsetenv(EnvResume)
	os.Unsetenv(nsenter.EnvSetnsUser)
	if err != nil {
		// No socket to the parent is known: stderr is the last word.
		fmt.Fprintf(os.Stderr, "hako init: resume after re-exec: %v\n", err)
		os.Exit(1)
	}
	for _, fd := range append([]int{r.Conn}, r.Fds...) {
		unix.CloseOnExec(fd)
	}
	a := &applier{conn: frame.NewConn(r.Conn), sys: realSys{}, status: -1, block: -1, plan: &r.Plan, fds: r.Fds, number: r.Number}
	if err := nsenter.SetnsUserErr(); err != nil {
		a.fail(&bwrapError{"Setting userns2 failed: " + strerror(err)})
	}
	a.fail(apply(a, r.Plan.Steps, handlers))
}

func readResume(env string) (*resume, error) {
	fd, err := strconv.Atoi(env)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", EnvResume, env, err)
	}
	f := os.NewFile(uintptr(fd), "resume")
	defer f.Close()
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("read fd %d: %w", fd, err)
	}
	var r resume
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("fd %d: %w", fd, err)
	}
	p, err := plan.Decode(r.Wire)
	if err != nil {
		return nil, fmt.Errorf("fd %d: %w", fd, err)
	}
	r.Plan, r.Wire = *p, nil
	if err := checkFds(&r.Plan, r.Fds, "it"); err != nil {
		return nil, err
	}
	return &r, nil
}
