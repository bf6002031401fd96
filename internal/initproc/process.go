package initproc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/frame"
	"github.com/hako-runtime/hako/internal/linux/security"
)

// prepared is a process ready for execve: everything that may fail has.
type prepared struct {
	path      string
	args, env []string
	reaper    bool
	forward   bool
	cg        taskCgroup
	// kept: the caller's fds the program gets; a reaper lets go of them
	// once the program has them.
	kept []int
	// status, if not -1: the reaper writes the program's exit status
	// there (4 bytes) when it ends, and goes on reaping until the last
	// process is gone, as bubblewrap's pid 1 reports to its monitor.
	status int
}

// loadSeccomp loads the filter and, when it has notify rules, hands the
// listener fd to the parent at once, which passes it on to the agent. From
// the load on, every notified syscall of ours waits for an answer from
// whoever holds the listener; until the agent has it, that is nobody but
// us, and we would wait forever. So between the load and the send there is
// exactly one syscall, a sendmsg(2) built beforehand (building it then
// could allocate, and an allocation may mmap), and it is the only syscall
// that cannot be notified (validation refuses it). The parent forwards the
// fd without waiting for anything more from us: after the send, every
// syscall may be notified (close, write, fchdir, setresuid, capset,
// openat, execve...), the agent answers it.
//
// The Go runtime's own syscalls on this thread (a signal's rt_sigreturn,
// futex, mmap) could in principle fall into that one-syscall window too;
// a profile notifying those cannot work with any runtime written in Go.
func loadSeccomp(sc *security.Seccomp, sync int) error {
	var tx *fdSender
	if sc.Notify() {
		if sync < 0 {
			return fmt.Errorf("seccomp: notify rules, but no socket to pass the listener fd on")
		}
		tx = newFdSender()
	}
	fd, err := sc.Load()
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	if fd < 0 {
		return nil
	}
	err = tx.send(sync, fd)
	// Our copy only: the parent holds another, and the agent gets one.
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("seccomp: send listener fd to hako over the sync socket (fd %d): %w", sync, err)
	}
	return nil
}

// fdSender is one sendmsg(2) carrying a whole frame, a seccomp-fd header
// with the fd attached, laid out in advance so that sending needs no
// allocation and no other syscall.
type fdSender struct {
	msg unix.Msghdr
	iov unix.Iovec
	buf [frame.HeaderSize]byte
	oob []byte
}

func newFdSender() *fdSender {
	s := &fdSender{oob: unix.UnixRights(-1)}
	s.buf = frame.Header(frame.TypeSeccompFd, 0, 1)
	s.iov.Base = &s.buf[0]
	s.iov.SetLen(len(s.buf))
	s.msg.Iov = &s.iov
	s.msg.Iovlen = 1
	s.msg.Control = &s.oob[0]
	s.msg.SetControllen(len(s.oob))
	return s
}

func (s *fdSender) send(sock, fd int) error {
	*(*int32)(unsafe.Pointer(&s.oob[unix.CmsgLen(0)])) = int32(fd)
	for {
		// Raw: an 8-byte send on a unix socket does not block, and the
		// scheduler hooks of Syscall are code we need not run here.
		_, _, e := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(sock), uintptr(unsafe.Pointer(&s.msg)), 0)
		runtime.KeepAlive(s)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

func (pr *prepared) run() error {
	if pr.path == "" {
		return errors.New("exec before lookup")
	}
	if pr.reaper {
		return runReaped(pr)
	}
	err := unix.Exec(pr.path, pr.args, pr.env)
	return fmt.Errorf("exec %s: %w", pr.path, err)
}

// setUser switches to the process's user and groups.
//
// thisThread sets them for the calling thread only, where the process execs
// the program from this thread (which it is locked to): execve leaves no
// other thread behind, so the other threads' ids never reach the
// container, and x/sys's setresuid, which changes every thread by
// signalling each and waiting for it, cost ~150 µs of every start. runc's
// init sets them per thread for the same reason. A reaper stays, Go
// threads and all: it changes every thread.
func setUser(u specs.User, groups, thisThread bool) error {
	if allowed, _ := os.ReadFile("/proc/self/setgroups"); !groups {
		// The plan knows setgroups is denied here.
	} else if !strings.HasPrefix(string(allowed), "deny") {
		gids := make([]int, len(u.AdditionalGids))
		for i, g := range u.AdditionalGids {
			gids[i] = int(g)
		}
		if err := unix.Setgroups(gids); err != nil {
			return fmt.Errorf("setgroups %v: %w", u.AdditionalGids, err)
		}
	} else if len(u.AdditionalGids) > 0 {
		return fmt.Errorf("process.user.additionalGids: setgroups is denied in this user namespace (seed 002: /proc/self/setgroups is \"deny\")")
	}
	setresgid, setresuid := unix.Setresgid, unix.Setresuid
	if thisThread {
		setresgid = func(r, e, s int) error { return rawSetres(unix.SYS_SETRESGID, r, e, s) }
		setresuid = func(r, e, s int) error { return rawSetres(unix.SYS_SETRESUID, r, e, s) }
	}
	if err := setresgid(int(u.GID), int(u.GID), int(u.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w%s", u.GID, err, unmappedHint(err))
	}
	if err := setresuid(int(u.UID), int(u.UID), int(u.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w%s", u.UID, err, unmappedHint(err))
	}
	return nil
}

// rawSetres is setresuid(2) or setresgid(2) for the calling thread alone.
// (unix.Setgroups above already is: x/sys calls setgroups(2) directly.)
func rawSetres(nr uintptr, r, e, s int) error {
	if _, _, errno := unix.RawSyscall(nr, uintptr(r), uintptr(e), uintptr(s)); errno != 0 {
		return errno
	}
	return nil
}

func unmappedHint(err error) string {
	if errors.Is(err, unix.EINVAL) {
		return " (the id is not mapped in the container's user namespace)"
	}
	return ""
}

// withHome adds HOME from the container's /etc/passwd, as runc does.
func withHome(env []string, uid uint32) []string {
	for _, e := range env {
		if strings.HasPrefix(e, "HOME=") {
			return env
		}
	}
	home := "/"
	if f, err := os.Open("/etc/passwd"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Split(sc.Text(), ":")
			if len(fs) >= 6 && fs[2] == strconv.FormatUint(uint64(uid), 10) && fs[5] != "" {
				home = fs[5]
				break
			}
		}
		f.Close()
	}
	return append(env[:len(env):len(env)], "HOME="+home)
}

// lookPath finds the executable with the container's PATH, not hako's.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		if err := checkExec(name); err != nil {
			return "", fmt.Errorf("exec %q: %w", name, err)
		}
		return name, nil
	}
	path := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if checkExec(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec %q: executable file not found in $PATH", name)
}

func checkExec(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("is a directory")
	}
	if st.Mode()&0o111 == 0 {
		return os.ErrPermission
	}
	return nil
}

// enterCwd makes cwd, resolved by openCwd, the working directory.
func enterCwd(cwd string) error {
	f, err := openCwd(cwd)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fchdir(int(f.Fd())); err != nil {
		return fmt.Errorf("chdir to process.cwd %s: %w", cwd, err)
	}
	return nil
}

// openCwd resolves cwd inside the container's root, never through a magic
// link: "/proc/self/fd/N" naming one of hako's own fds (the state directory,
// say) would otherwise start the process with a working directory on the
// host (CVE-2024-21626).
func openCwd(cwd string) (*os.File, error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, cwd, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		hint := ""
		if errors.Is(err, unix.ELOOP) {
			hint = " (it goes through a /proc magic link, which could lead outside the container)"
		}
		return nil, fmt.Errorf("process.cwd %s: %w%s", cwd, err, hint)
	}
	return os.NewFile(uintptr(fd), cwd), nil
}
