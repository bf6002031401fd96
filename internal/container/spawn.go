package container

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/initproc"
	"github.com/hako-runtime/hako/internal/linux/exeseal"
	"github.com/hako-runtime/hako/internal/linux/idmap"
	"github.com/hako-runtime/hako/internal/nsenter"
)

// spawnOpts describes a container process to start.
type spawnOpts struct {
	req        nsenter.Request
	cgroup2Dir string // joined at birth with clone3(CLONE_INTO_CGROUP)
	plan       *initproc.Plan
	preserved  []*os.File // become fds 3, 4, ... in the container
	fifoDir    *os.File
	console    *os.File
	uidMaps    []specs.LinuxIDMapping
	gidMaps    []specs.LinuxIDMapping
	// onPid runs once the container process's pid is known and before
	// the plan is sent: the state must name it before anything can fail.
	onPid func(pid int) error
	// passFds go to the child with SCM_RIGHTS just before the plan
	// (onPid may set them).
	passFds               []*os.File
	stdin, stdout, stderr *os.File
	// sealDir is an empty directory for exeseal's overlay.
	sealDir string
	// onFd gets the seccomp listener fd the child sends, the moment it
	// arrives; the child does not wait for it to be forwarded.
	onFd func(fd int) error
	// stuck reports why a silent child cannot go on (its cgroup is
	// frozen), ending the wait for it.
	stuck func() error
	// thaw lets a child in a frozen v1 cgroup die of the SIGKILL it got:
	// until thawed it would not, and reaping it would hang.
	thaw func()
	// rootless allows running unsealed when no seal can be had at all;
	// warn then says so.
	rootless bool
	warn     func(string)
}

// proc is a started container process and the parent's end of its socket.
type proc struct {
	pid  int
	conn *syncConn
	dec  *json.Decoder
	thaw func()
}

// ErrProcess is wrapped by errors the container process reported.
var ErrProcess = errors.New("container process")

// spawn re-executes hako; nsexec.c does the namespace work before Go starts
// there and reports the pid of the process that goes on (a child of ours,
// thanks to CLONE_PARENT). That process then receives the plan.
func spawn(o *spawnOpts) (*proc, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	childEnd := os.NewFile(uintptr(fds[1]), "sync-child")
	defer childEnd.Close()
	parent, err := newSyncConn(fds[0])
	if err != nil {
		return nil, err
	}
	p := &proc{pid: -1, conn: parent, thaw: o.thaw}
	parent.onFd, parent.checkStuck = o.onFd, o.stuck
	parent.pid = func() int { return p.pid }

	extra := append([]*os.File{}, o.preserved...)
	next := func(f *os.File) int {
		if f == nil {
			return -1
		}
		extra = append(extra, f)
		return 2 + len(extra)
	}
	syncFd := next(childEnd)
	o.plan.FifoDirFd = next(o.fifoDir)
	o.plan.ConsoleFd = next(o.console)
	o.plan.PreserveFds = len(o.preserved)

	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	exePath := "/proc/self/exe"
	if o.sealDir != "" {
		// os/exec's fork moves an fd that sits below its target up to
		// len(fds) and beyond, and its error pipe too: above all of
		// those, the sealed binary's fd cannot be overwritten.
		exe, err := exeseal.Seal(o.sealDir, 2*(3+len(extra))+2)
		switch {
		case err == nil:
			defer exe.Close()
			exePath = exe.Path()
		case errors.Is(err, exeseal.ErrUnsupported) && o.rootless:
			// Neither an overlay nor a sealed memfd (say, memfd exec
			// forbidden by vm.memfd_noexec=2). A rootless hako's binary
			// is normally not writable by the container's users anyway,
			// and the process stays non-dumpable until it execs, but the
			// seal is gone, and that must be said.
			if o.warn != nil {
				o.warn(fmt.Sprintf("running without CVE-2019-5736 binary seal: %v", err))
			}
		case errors.Is(err, exeseal.ErrUnsupported):
			parent.Close()
			return nil, fmt.Errorf("refusing to start a container process without CVE-2019-5736 binary seal: %w", err)
		default:
			parent.Close()
			return nil, err
		}
	}
	cmd := &exec.Cmd{
		Path: exePath,
		Args: []string{self, "init"},
		// The child lives for milliseconds (or waits idle for start) on
		// one thread: with one P and no GC, its Go runtime starts fewer
		// threads, and each fault on a fresh page needs no TLB shootdown
		// across CPUs (measured here: run 20% faster). The user's process
		// gets its own environment from the config, not these.
		Env:        []string{nsenter.EnvSync + "=" + strconv.Itoa(syncFd), "GOGC=off", "GOMAXPROCS=1"},
		Stdin:      o.stdin,
		Stdout:     o.stdout,
		Stderr:     o.stderr,
		ExtraFiles: extra,
		SysProcAttr: &syscall.SysProcAttr{
			// If we die before it has reported, it must not linger.
			Pdeathsig: syscall.SIGKILL,
		},
	}
	if o.cgroup2Dir != "" {
		cg, err := os.OpenFile(o.cgroup2Dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			parent.Close()
			return nil, fmt.Errorf("open cgroup %s: %w", o.cgroup2Dir, err)
		}
		defer cg.Close()
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(cg.Fd())
	}
	req, err := o.req.Encode()
	if err != nil {
		parent.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		parent.Close()
		return nil, fmt.Errorf("start container process: %w", err)
	}
	childEnd.Close()
	parent.pid = func() int {
		if p.pid > 0 {
			return p.pid
		}
		return cmd.Process.Pid
	}
	fail := func(err error) (*proc, error) {
		cmd.Process.Kill()
		if p.pid > 0 {
			unix.Kill(p.pid, unix.SIGKILL)
		}
		if p.thaw != nil {
			p.thaw()
		}
		reap(cmd.Process.Pid)
		if p.pid > 0 {
			reap(p.pid)
		}
		parent.Close()
		return nil, err
	}
	if _, err := parent.Write(req); err != nil {
		return fail(fmt.Errorf("send namespace request: %w", err))
	}
	r := bufio.NewReader(parent)
	pid, err := nsenter.Wait(r, parent, func() error {
		return idmap.NewWriter().Write(cmd.Process.Pid, o.uidMaps, o.gidMaps)
	})
	if err != nil {
		return fail(err)
	}
	p.pid = pid
	if err := cmd.Wait(); err != nil {
		return fail(fmt.Errorf("namespace setup process: %w", err))
	}
	p.dec = json.NewDecoder(r)
	if o.onPid != nil {
		if err := o.onPid(pid); err != nil {
			return fail(err)
		}
	}
	// Always one message, with or without fds: the child reads it before
	// the plan, so its JSON decoder can never swallow the fds' byte.
	var rights []byte
	if len(o.passFds) > 0 {
		fds := make([]int, len(o.passFds))
		for i, f := range o.passFds {
			fds[i] = int(f.Fd())
		}
		rights = unix.UnixRights(fds...)
	}
	err = parent.sendmsg([]byte{'F'}, rights)
	for _, f := range o.passFds {
		f.Close()
	}
	if err != nil {
		return fail(fmt.Errorf("send fds: %w", err))
	}
	if err := json.NewEncoder(parent).Encode(o.plan); err != nil {
		return fail(fmt.Errorf("send plan: %w", err))
	}
	return p, nil
}

// next reads the next message from the container process. An error message
// becomes an error; EOF means the process died or exec'd.
func (p *proc) next() (initproc.Message, error) {
	var m initproc.Message
	if err := p.dec.Decode(&m); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return m, io.EOF
		}
		return m, fmt.Errorf("read from container process: %w", err)
	}
	if m.Type == initproc.MsgError {
		return m, fmt.Errorf("%w: %s", ErrProcess, m.Error)
	}
	return m, nil
}

func (p *proc) send(m initproc.Message) error {
	return json.NewEncoder(p.conn).Encode(m)
}

// kill stops and reaps the process; used on failure paths.
func (p *proc) kill() {
	if p.pid > 0 {
		unix.Kill(p.pid, unix.SIGKILL)
		if p.thaw != nil {
			p.thaw()
		}
		reap(p.pid)
	}
	p.conn.Close()
}

// reap waits a little for a SIGKILLed child. A task in a frozen v1 cgroup
// does not die until the cgroup is thawed, which may never happen (exec
// into a container someone froze meanwhile): then it is left to die later,
// reparented once hako exits, rather than hold hako forever.
func reap(pid int) {
	for range 200 {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if wpid == pid || (err != nil && err != unix.EINTR) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
