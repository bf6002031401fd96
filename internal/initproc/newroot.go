package initproc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/linux/rootfs"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/signals"
)

// newRootStep is bubblewrap's start of setup_newroot: a fresh tmpfs at
// s.Path, pivoted into, so that the host's root is at /oldroot (where bind
// sources are read) and the sandbox's root is the directory /newroot, made
// a mount point so that the final pivot_root can enter it. Mounting on the
// tmpfs is invisible to the host: / was made a slave before.
//
// With Value "reopen" it only opens /newroot again: a mount on the
// sandbox's / (--bind / /) covers the directory the root fd names, and
// what follows must land on top of it.
func newRootStep(a *applier, s *plan.Step) error {
	if s.Value == "reopen" {
		return reopenNewRoot(a)
	}
	base := s.Path
	if err := unix.Mount("tmpfs", base, "tmpfs", unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return fmt.Errorf("mount tmpfs on %s for the new root: %w", base, err)
	}
	for _, d := range []string{"newroot", "oldroot", "proc"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", d, err)
		}
	}
	// --tmp-overlay's upper and work directories, on this tmpfs, which
	// the sandbox never sees (bubblewrap's tmp-overlay-{upper,work}-N).
	for i := 0; i < int(s.Flags); i++ {
		for _, d := range []string{"tmp-overlay-upper-", "tmp-overlay-work-"} {
			if err := os.Mkdir(filepath.Join(base, d+strconv.Itoa(i)), 0o755); err != nil {
				return fmt.Errorf("mkdir %s%d: %w", d, i, err)
			}
		}
	}
	nr := filepath.Join(base, "newroot")
	if err := unix.Mount(nr, nr, "", unix.MS_BIND|unix.MS_REC|unix.MS_NOSUID, ""); err != nil {
		return fmt.Errorf("bind %s onto itself: %w", nr, err)
	}
	if err := unix.Chdir(base); err != nil {
		return fmt.Errorf("chdir %s: %w", base, err)
	}
	if err := unix.PivotRoot(base, filepath.Join(base, "oldroot")); err != nil {
		return fmt.Errorf("pivot_root into the new root's tmpfs: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	// The mount code reaches fds through /proc/self/fd: the host's
	// procfs stays visible at /proc of the tmpfs, outside the new root.
	if err := unix.Mount("/oldroot/proc", "/proc", "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind /proc for the setup: %w", err)
	}
	return reopenNewRoot(a)
}

func reopenNewRoot(a *applier) error {
	r, err := rootfs.OpenRoot("/newroot")
	if err != nil {
		return err
	}
	if a.root != nil {
		a.root.Close()
	}
	a.root = r
	return nil
}

// reapAll waits for every process left in the sandbox (they are all ours
// to reap, in a PID namespace) and returns when none is.
func reapAll() {
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
	}
}

// lockFileStep is bubblewrap's do_init taking a --lock-file: a read lock
// held by this process (the sandbox's init) as long as it lives, on an fd
// that does not reach the program.
func lockFileStep(a *applier, s *plan.Step) error {
	fd, err := unix.Open(s.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &bwrapError{fmt.Sprintf("Unable to open lock file %s: %s", s.Path, strerror(err))}
	}
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk); err != nil {
		unix.Close(fd)
		return &bwrapError{fmt.Sprintf("Unable to lock file %s: %s", s.Path, strerror(err))}
	}
	return nil
}

// sameFileStep is --bind-fd's check that what got mounted by name is the
// fd's file, not something swapped in meanwhile.
func sameFileStep(a *applier, s *plan.Step) error {
	fd := a.takeFD(s)
	if fd < 0 {
		return errors.New("same-file step without its fd")
	}
	defer unix.Close(fd)
	var want, got unix.Stat_t
	if err := unix.Fstat(fd, &want); err != nil {
		return fmt.Errorf("stat fd: %w", err)
	}
	if err := unix.Lstat(s.Path, &got); err != nil {
		return fmt.Errorf("stat mount at %s: %w", s.Path, err)
	}
	if want.Ino != got.Ino || want.Dev != got.Dev {
		return &bwrapError{"Race condition binding dirfd"}
	}
	return nil
}

// bwrapError is a failure in bubblewrap's own words (callers match them);
// the step's number and kind are left off.
type bwrapError struct{ text string }

func (e *bwrapError) Error() string { return e.text }

// strerror is glibc's text for an errno ("No such file or directory").
func strerror(err error) string {
	s := err.Error()
	var errno unix.Errno
	if errors.As(err, &errno) && s != "" {
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return s
}

// parentDeathStep: the sandbox dies with the hako that started it (its
// parent, by CLONE_PARENT); if that is already gone, now.
func parentDeathStep(a *applier, s *plan.Step) error {
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(s.Flags), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_PDEATHSIG: %w", err)
	}
	if os.Getppid() == 1 {
		return fmt.Errorf("parent died before the sandbox started")
	}
	return nil
}

// withPWD is bwrap's environment: as given, with PWD the working directory
// the sandbox starts in.
func withPWD(env []string) []string {
	wd, err := os.Getwd()
	if err != nil {
		return env
	}
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if len(e) < 4 || e[:4] != "PWD=" {
			out = append(out, e)
		}
	}
	return append(out, "PWD="+wd)
}

// runReaped is bubblewrap's do_init: the program runs as a child, this
// process stays PID 1 of the namespace, reaps every orphan, and exits with
// the program's status (128+N for signal N) once the program is gone.
func runReaped(pr *prepared) error {
	sys := &syscall.SysProcAttr{}
	var sigs chan os.Signal
	if pr.forward {
		// tini's arrangement: the program leads its own process group,
		// the terminal's foreground one, so the terminal's Ctrl-C and
		// Ctrl-Z reach it (and not this init); what is sent to the init
		// from outside is passed on. Subscribed before the fork, so that
		// nothing sent meanwhile kills the init instead.
		sigs = make(chan os.Signal, 16)
		signal.Notify(sigs, signals.Forwarded...)
		sys.Setpgid = true
		// Only on our controlling terminal (a sandbox's own pty):
		// stdin may be the caller's terminal passed as it is, which
		// this session does not control (TIOCGPGRP: ENOTTY).
		if _, err := unix.IoctlGetInt(0, unix.TIOCGPGRP); err == nil {
			sys.Foreground, sys.Ctty = true, 0
		}
	}
	if pr.cg.cgroup2 > 0 {
		sys.UseCgroupFD, sys.CgroupFD = true, pr.cg.cgroup2
	}
	if pr.cg.v1Into > 0 {
		// The init is locked to this thread (Main), and ForkExec
		// forks from it.
		if err := moveThread(pr.cg.v1Into, "the program's"); err != nil {
			return err
		}
	}
	pid, err := syscall.ForkExec(pr.path, pr.args, &syscall.ProcAttr{
		Env:   pr.env,
		Files: []uintptr{0, 1, 2},
		Sys:   sys,
	})
	if pr.cg.v1Back > 0 {
		if berr := moveThread(pr.cg.v1Back, "its own"); berr != nil && err == nil {
			unix.Kill(pid, unix.SIGKILL)
			return berr
		}
	}
	if err != nil {
		return fmt.Errorf("exec %s: %w", pr.path, err)
	}
	if sigs != nil {
		go func() {
			for sig := range sigs {
				_ = unix.Kill(pid, sig.(syscall.Signal))
			}
		}()
	}
	// The program has the caller's fds now; an init holding them too
	// would keep a pipe from its reader's EOF (bubblewrap's pid 1 closes
	// them).
	for _, fd := range pr.kept {
		unix.Close(fd)
	}
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for %s: %w", pr.path, err)
		}
		if got != pid {
			continue
		}
		code := signals.ExitCode(ws)
		if pr.status < 0 {
			os.Exit(code)
		}
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(code))
		unix.Write(pr.status, b[:])
		unix.Close(pr.status)
		reapAll()
		os.Exit(code)
	}
}
