package container

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/frame"
	"github.com/hako-runtime/hako/internal/linux/exeseal"
	"github.com/hako-runtime/hako/internal/linux/idmap"
	"github.com/hako-runtime/hako/internal/nsenter"
	"github.com/hako-runtime/hako/internal/plan"
	"github.com/hako-runtime/hako/internal/timing"
)

// spawnOpts describes a container process to start.
type spawnOpts struct {
	req        nsenter.Request
	cgroup2Dir string // joined at birth with clone3(CLONE_INTO_CGROUP)
	// place, if set, moves a process into cgroup2Dir through the
	// cgroup's owner (systemd) when the kernel refuses to clone it there:
	// cgroup v2 lets a process move another only where it may write the
	// cgroup.procs of their common ancestor, which a rootless hako in a
	// login session (session-N.scope, in root's user-UID.slice) may not
	// for a unit of the user's systemd.
	place func(pid int) error
	plan  *plan.Plan
	// cplan is plan as nsexec.c applies it itself (nsenter.EncodeCPlan),
	// sent instead of plan; req asks for it with OptCPlan. cinit: the
	// same for an init's plan, encoded only when it is sent, once its
	// fds are numbered (onPid) and the fifo's too (here).
	cplan []byte
	cinit bool
	// afterSend runs once the plan is sent, while the process applies it.
	afterSend func()
	timeline  *timing.Timeline // --debug's breakdown, or nil
	preserved []*os.File       // become fds 3, 4, ... in the container
	// inherit are fds of ours that the container gets at the same
	// numbers (hako bwrap's caller's); not with preserved. They are
	// closed here once the process has them.
	inherit []int
	fifoDir *os.File
	console *os.File
	receipt *os.File // hako sandbox's receipt pipe (plan.Fds.Receipt)
	uidMaps []specs.LinuxIDMapping
	gidMaps []specs.LinuxIDMapping
	// onPid runs once the container process's pid is known and before
	// the plan is sent: the state must name it before anything can fail.
	onPid func(pid int) error
	// passFds go to the child attached to the plan's frame (onPid may
	// set them); the plan's steps name them by index.
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
	// initialCPUs, if set, is the CPU affinity the process is born with
	// (process.execCPUAffinity.initial).
	initialCPUs *unix.CPUSet
}

// proc is a started container process and the parent's end of its socket.
type proc struct {
	pid  int
	conn *syncConn
	r    *frame.Reader
	thaw func()
	// onFd takes ownership of a seccomp listener fd the moment its frame
	// arrives; the child does not wait for it to be forwarded.
	onFd func(fd int) error
	// ready is the payload of the ready frame: the init's timings when
	// the plan asked for them.
	ready []byte
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
	p := &proc{pid: -1, conn: parent, thaw: o.thaw, onFd: o.onFd}
	parent.checkStuck = o.stuck
	parent.pid = func() int { return p.pid }

	extra := append([]*os.File{}, o.preserved...)
	if len(o.inherit) > 0 && len(o.preserved) == 0 {
		// ExtraFiles[i] is fd 3+i: each at its own place, the gaps
		// closed in the child, hako's own fds above them all.
		extra = make([]*os.File, slices.Max(o.inherit)-2)
		for _, fd := range o.inherit {
			extra[fd-3] = os.NewFile(uintptr(fd), "inherited")
		}
		defer func() {
			for _, fd := range o.inherit {
				extra[fd-3].Close()
			}
		}()
	}
	next := func(f *os.File) int {
		if f == nil {
			return -1
		}
		extra = append(extra, f)
		return 2 + len(extra)
	}
	syncFd := next(childEnd)
	o.plan.Fds.FifoDir = next(o.fifoDir)
	o.plan.Fds.Console = next(o.console)
	o.plan.Fds.Receipt = next(o.receipt)

	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	exePath := "/proc/self/exe"
	if o.sealDir != "" && !(o.rootless && exeseal.OutOfReach()) {
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
	stdio, err := stdioFiles(o.stdin, o.stdout, o.stderr)
	if err != nil {
		parent.Close()
		return nil, err
	}
	defer stdio.close()
	files := append([]uintptr{stdio.fds[0], stdio.fds[1], stdio.fds[2]}, fdsOf(extra)...)
	newCmd := func() *child {
		return &child{
			path: exePath,
			argv: []string{self, "init"},
			// The child lives for milliseconds (or waits idle for start) on
			// one thread: with one P and no GC, its Go runtime starts fewer
			// threads, and each fault on a fresh page needs no TLB shootdown
			// across CPUs (measured here: run 20% faster). The user's process
			// gets its own environment from the config, not these.
			env:   []string{nsenter.EnvSync + "=" + strconv.Itoa(syncFd), "GOGC=off", "GOMAXPROCS=1"},
			files: files,
			sys: &syscall.SysProcAttr{
				// If we die before it has reported, it must not linger.
				Pdeathsig: syscall.SIGKILL,
			},
		}
	}
	o.timeline.Mark("seal")
	cmd := newCmd()
	if o.cgroup2Dir != "" {
		cg, err := os.OpenFile(o.cgroup2Dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			parent.Close()
			return nil, fmt.Errorf("open cgroup %s: %w", o.cgroup2Dir, err)
		}
		defer cg.Close()
		cmd.sys.UseCgroupFD = true
		cmd.sys.CgroupFD = int(cg.Fd())
	}
	reqFrames, reqFiles, err := o.req.Frames()
	if err != nil {
		parent.Close()
		return nil, err
	}
	defer func() {
		for _, f := range reqFiles {
			f.Close()
		}
	}()
	err = startWithAffinity(cmd, o.initialCPUs)
	var place func() error
	if err != nil && cmd.sys.UseCgroupFD && o.place != nil && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) {
		// Tried first because it is free where it works (root, or a
		// rootless hako already in a cgroup of the user's systemd, as
		// under podman); runc's exec falls back the same way. The
		// process is then born in our cgroup and, told so by an
		// ns-place frame before ns-end, waits before any namespace step
		// until place has moved it (a fresh Cmd: one that failed to
		// start cannot be started again).
		end := reqFrames[len(reqFrames)-1]
		reqFrames = append(reqFrames[:len(reqFrames)-1], &frame.Frame{Type: frame.TypeNsPlace}, end)
		cmd = newCmd()
		err = startWithAffinity(cmd, o.initialCPUs)
		place = func() error { return o.place(cmd.pid) }
	}
	if err != nil {
		parent.Close()
		return nil, fmt.Errorf("start container process: %w", err)
	}
	childEnd.Close()
	o.timeline.Mark("fork+exec")
	parent.pid = func() int {
		if p.pid > 0 {
			return p.pid
		}
		return cmd.pid
	}
	fail := func(err error) (*proc, error) {
		cmd.kill()
		if p.pid > 0 {
			unix.Kill(p.pid, unix.SIGKILL)
		}
		if p.thaw != nil {
			p.thaw()
		}
		reap(cmd.pid)
		if p.pid > 0 {
			reap(p.pid)
		}
		parent.Close()
		return nil, err
	}
	p.r = frame.NewReader(bufio.NewReader(parent), &parent.fds)
	wait := func() (int, error) {
		return nsenter.Wait(p.r.Next, parent.send, place, func() error {
			if len(o.uidMaps) == 0 && len(o.gidMaps) == 0 {
				// The caller writes them (bwrap --userns-block-fd).
				return nil
			}
			return idmap.NewWriter().Write(cmd.pid, o.uidMaps, o.gidMaps)
		})
	}
	for _, f := range reqFrames {
		if err := parent.send(f); err != nil {
			// A constructor that refused an earlier frame said why
			// before it closed the socket: that is the error to give.
			if _, werr := wait(); werr != nil && !errors.Is(werr, nsenter.ErrGone) {
				return fail(werr)
			}
			return fail(fmt.Errorf("send namespace request: %w", err))
		}
	}
	pid, err := wait()
	if err != nil {
		return fail(err)
	}
	p.pid = pid
	if err := cmd.wait(); err != nil {
		return fail(fmt.Errorf("namespace setup process: %w", err))
	}
	o.timeline.Mark("constructor")
	if o.onPid != nil {
		if err := o.onPid(pid); err != nil {
			return fail(err)
		}
		o.timeline.Mark("pid recorded")
	}
	var fr *frame.Frame
	if o.cinit {
		b, ok := nsenter.EncodeCPlan(o.plan)
		if !ok {
			// Decided before the process started; nothing since
			// adds a step nsexec.c does not know.
			return fail(errors.New("encode plan for nsexec.c: a step it cannot apply"))
		}
		o.cplan = b
	}
	if o.cplan != nil {
		fr = &frame.Frame{Type: frame.TypeNsCPlan, Payload: o.cplan}
	} else {
		fr = &frame.Frame{Type: frame.TypePlan, Payload: plan.Encode(o.plan)}
	}
	for _, f := range o.passFds {
		fr.Fds = append(fr.Fds, int(f.Fd()))
	}
	err = parent.send(fr)
	for _, f := range o.passFds {
		f.Close()
	}
	if err != nil {
		return fail(fmt.Errorf("send plan: %w", err))
	}
	o.timeline.Mark("send plan")
	if o.afterSend != nil {
		o.afterSend()
	}
	return p, nil
}

// next reads the next frame from the container process and returns its
// type. An error frame becomes an error; a seccomp listener fd goes to onFd
// at once; EOF means the process died or exec'd.
func (p *proc) next() (frame.Type, error) {
	for {
		f, err := p.r.Next()
		if err != nil {
			if f != nil {
				closeAll(f.Fds)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return 0, io.EOF
			}
			return 0, fmt.Errorf("read from container process: %w", err)
		}
		switch f.Type {
		case frame.TypeSeccompFd:
			if len(f.Fds) != 1 || p.onFd == nil {
				closeAll(f.Fds)
				return 0, fmt.Errorf("%w: unexpected seccomp listener frame with %d fds", ErrProcess, len(f.Fds))
			}
			if err := p.onFd(f.Fds[0]); err != nil {
				return 0, fmt.Errorf("receive seccomp listener fd from container process %d: %w", p.pid, err)
			}
			continue
		case frame.TypeError:
			closeAll(f.Fds)
			return f.Type, fmt.Errorf("%w: %s", ErrProcess, f.Payload)
		case frame.TypeNsCError:
			// What the Go side would have said in a TypeError.
			closeAll(f.Fds)
			return frame.TypeError, fmt.Errorf("%w: %s", ErrProcess, nsenter.CError(f.Payload))
		}
		if len(f.Fds) > 0 {
			closeAll(f.Fds)
			return 0, fmt.Errorf("%w: %s frame with unexpected fds", ErrProcess, f.Type)
		}
		if f.Type == frame.TypeReady {
			p.ready = f.Payload
		}
		return f.Type, nil
	}
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

func (p *proc) send(t frame.Type) error {
	return p.conn.send(&frame.Frame{Type: t})
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
	p.conn.closeFds()
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

// startWithAffinity starts cmd from a thread of its own whose CPU affinity
// is cpus, which the child inherits (runc's startWithCPUAffinity). That
// thread is left locked, so the Go runtime retires it rather than let
// other goroutines run on the narrowed affinity.
func startWithAffinity(cmd *child, cpus *unix.CPUSet) error {
	if cpus == nil {
		return cmd.start()
	}
	errc := make(chan error, 1)
	go func() {
		// The child inherits the affinity of the thread that forks it,
		// so that thread gets the initial set for the fork and its own
		// back after. It must then live on: the child's PDEATHSIG fires
		// when the thread that forked it exits, which a goroutine that
		// returns while still locked to its thread causes (runc leaves
		// its thread locked, but its child has no PDEATHSIG set then).
		runtime.LockOSThread()
		var own unix.CPUSet
		if err := unix.SchedGetaffinity(0, &own); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("process.execCPUAffinity.initial: sched_getaffinity: %w", err)
			return
		}
		if err := unix.SchedSetaffinity(0, cpus); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("process.execCPUAffinity.initial: sched_setaffinity: %w", err)
			return
		}
		err := cmd.start()
		if rerr := unix.SchedSetaffinity(0, &own); rerr == nil {
			runtime.UnlockOSThread()
		} else if err == nil {
			// A thread left with the container's CPUs must not run
			// other goroutines; nor may it exit while the child
			// lives. Park it: the command ends soon anyway.
			errc <- nil
			select {}
		}
		errc <- err
	}()
	return <-errc
}

// child is the constructor's process. It is started with syscall.ForkExec,
// not os/exec: os.StartProcess's first call in a process probes pidfd
// support with a throwaway clone (a process made, exited and reaped, every
// create and exec), and hako keeps no pidfd of this short-lived process.
type child struct {
	path      string
	argv, env []string
	files     []uintptr // the child's fd i; ^uintptr(0) closes it there
	sys       *syscall.SysProcAttr
	pid       int
}

func (c *child) start() error {
	return nsenter.WithCallerSlack(func() error {
		pid, err := syscall.ForkExec(c.path, c.argv, &syscall.ProcAttr{Env: c.env, Files: c.files, Sys: c.sys})
		if err != nil {
			return &os.PathError{Op: "fork/exec", Path: c.path, Err: err}
		}
		c.pid = pid
		return nil
	})
}

// wait reaps the process and says how it ended, as os/exec words it.
func (c *child) wait() error {
	ws, err := wait4(c.pid)
	if err != nil {
		return fmt.Errorf("wait4 %d: %w", c.pid, err)
	}
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Exited():
		return fmt.Errorf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Errorf("signal: %v", ws.Signal())
	}
	return fmt.Errorf("wait status %#x", uint32(ws))
}

func (c *child) kill() {
	if c.pid > 0 {
		_ = unix.Kill(c.pid, unix.SIGKILL)
	}
}

// stdio is the child's fds 0 to 2: the caller's files, or /dev/null where
// it gave none, as os/exec does.
type stdio struct {
	fds  [3]uintptr
	null []*os.File
}

func stdioFiles(in, out, errf *os.File) (*stdio, error) {
	s := &stdio{}
	for i, f := range []*os.File{in, out, errf} {
		if f == nil {
			flag := os.O_WRONLY
			if i == 0 {
				flag = os.O_RDONLY
			}
			n, err := os.OpenFile(os.DevNull, flag, 0)
			if err != nil {
				s.close()
				return nil, err
			}
			s.null = append(s.null, n)
			f = n
		}
		s.fds[i] = f.Fd()
	}
	return s, nil
}

func (s *stdio) close() {
	for _, f := range s.null {
		f.Close()
	}
}

// fdsOf is ExtraFiles' rule: a nil file is a gap, closed in the child.
func fdsOf(files []*os.File) []uintptr {
	out := make([]uintptr, len(files))
	for i, f := range files {
		out[i] = ^uintptr(0)
		if f != nil {
			out[i] = f.Fd()
		}
	}
	return out
}
