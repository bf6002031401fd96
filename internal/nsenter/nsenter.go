// Package nsenter owns the part of process creation that must run before the
// Go runtime starts: joining cgroups, setns into existing namespaces (user
// and mount namespaces cannot be joined by a multithreaded process) and
// unsharing new ones. See nsexec.c for the steps and why they are ordered so.
//
// It speaks internal/frame's framing, like every later message on the
// same socket: the parent sends the request as frames (Request.Frames),
// with the namespace and cgroup files it opened attached as fds, so nothing
// is resolved by path in a process that is about to change namespaces; the
// constructor answers with frames that Wait reads.
//
// A program that imports this package (the hako binary does) gets the C
// constructor; it does nothing unless the environment names a sync fd, so
// the ordinary CLI pays nothing for it.
package nsenter

// #cgo CFLAGS: -Wall -O2
// #cgo LDFLAGS: -static
// #include "nsframe.h"
import "C"

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/explain"
	"github.com/hako-runtime/hako/internal/frame"
	"github.com/hako-runtime/hako/internal/linux/ns"
)

// cFrames is nsframe.h's view of the frame layout, for the test that holds
// it equal to internal/frame's.
var cFrames = struct {
	Magic, Header, OOMScoreAdj              int
	Cgroup, Join, Unshare, TimeOffsets, End int
	Maps, MapsDone, Pid, Error              int
	Options                                 int
	KeepIDs, DisableUserns, AssertDisabled  int
	Place, PlaceDone                        int
	Ready, CPlanFrame, CError, CPlanOpt     int
}{
	C.HAKO_FRAME_MAGIC, C.HAKO_FRAME_HEADER, C.HAKO_FRAME_NS_OOM_SCORE_ADJ,
	C.HAKO_FRAME_NS_CGROUP, C.HAKO_FRAME_NS_JOIN, C.HAKO_FRAME_NS_UNSHARE, C.HAKO_FRAME_NS_TIME_OFFSETS, C.HAKO_FRAME_NS_END,
	C.HAKO_FRAME_NS_MAPS, C.HAKO_FRAME_NS_MAPS_DONE, C.HAKO_FRAME_NS_PID, C.HAKO_FRAME_NS_ERROR,
	C.HAKO_FRAME_NS_OPTIONS,
	C.HAKO_NS_KEEPIDS, C.HAKO_NS_DISABLE_USERNS, C.HAKO_NS_ASSERT_USERNS_DISABLED,
	C.HAKO_FRAME_NS_PLACE, C.HAKO_FRAME_NS_PLACE_DONE,
	C.HAKO_FRAME_READY, C.HAKO_FRAME_NS_C_PLAN, C.HAKO_FRAME_NS_C_ERROR, C.HAKO_NS_CPLAN,
}

// maxPayload is nsexec.c's MAX_PAYLOAD: a longer request frame is refused
// there, so it is refused here first, with the path named.
const maxPayload = 4096

// EnvSync names the fd, in the child, of the socket the constructor reads.
const EnvSync = "_HAKO_SYNC"

// EnvCgroupHold makes the constructor a cgroup placeholder: it waits for
// EOF on stdin and exits, never starting Go (see hold_cgroup in nsexec.c).
const EnvCgroupHold = "_HAKO_CGROUP_HOLD"

// EnvSetnsUser names, in an init that re-executes itself once its sandbox
// is set up (bwrap --userns2), the fd of the user namespace the
// constructor enters before Go starts: the kernel refuses
// setns(CLONE_NEWUSER) to a multithreaded process, as the init is by then.
const EnvSetnsUser = "_HAKO_SETNS_USER"

// SetnsUserErr is the errno of the constructor's setns into
// EnvSetnsUser's namespace; nil if it entered it, or was not asked to.
func SetnsUserErr() error {
	if n := C.hako_setns_user_errno; n != 0 {
		return unix.Errno(n)
	}
	return nil
}

// TimeOffset is one line of /proc/self/timens_offsets.
type TimeOffset struct {
	Clock string // "monotonic" or "boottime"
	Secs  int64
	Nanos uint32
}

// Request says what the constructor does before handing over to Go.
type Request struct {
	CgroupTasks []string // v1 "tasks" files to write "0" into
	Join        []string // namespace files to setns into
	// JoinFiles are namespaces hako made itself and holds open (a network
	// namespace made ahead, netns.Ahead), joined after Join. They stay the
	// caller's, to keep open until the frames are sent.
	JoinFiles   []NamedFile
	Unshare     uintptr // CLONE_NEW* flags of new namespaces
	TimeOffsets []TimeOffset
	// OOMScoreAdj is written to /proc/self/oom_score_adj first of all,
	// while the process is still dumpable and in hako's user namespace:
	// later it could not lower it, and every process it forks inherits it
	// (runc's nsexec does the same, update_oom_score_adj).
	OOMScoreAdj *int
	// Options are Opt* bits: bubblewrap's user namespace options.
	Options uint32
	// Place makes the process stop, before any namespace step, until the
	// parent has had it moved into its cgroup (Wait's place): for when the
	// kernel refused to clone it there.
	Place bool
}

// NamedFile is an open namespace file and what to call it in errors and
// --debug.
type NamedFile struct {
	File *os.File
	Name string
}

// Request options (frame ns-options).
const (
	// OptKeepIDs: in a joined or new user namespace, keep the ids we
	// have (as it maps them) rather than become its root (bwrap --userns,
	// and --userns-block-fd, whose maps the caller writes).
	OptKeepIDs uint32 = 1 << iota
	// OptDisableUserns nests a user namespace under a limit of one right
	// after the new one (bwrap --disable-userns).
	OptDisableUserns
	// OptAssertUsernsDisabled fails unless, in the end, no user namespace
	// can be made (bwrap --assert-userns-disabled, and --disable-userns).
	OptAssertUsernsDisabled
	// OptCPlan: the process that goes on does not start Go; it reads an
	// ns-c-plan frame and applies it in the constructor (EncodeCPlan).
	OptCPlan
)

// ErrUsernsNotDisabled: a user namespace could still be made, against
// OptAssertUsernsDisabled. The text is bubblewrap's.
var ErrUsernsNotDisabled = errors.New("creation of new user namespaces was not disabled as requested")

// String is the request as `hako --debug` logs it, in the order the
// constructor applies it.
func (r *Request) String() string {
	var parts []string
	if r.OOMScoreAdj != nil {
		parts = append(parts, fmt.Sprintf("oom_score_adj=%d", *r.OOMScoreAdj))
	}
	for _, p := range r.CgroupTasks {
		parts = append(parts, "cgroup "+p)
	}
	for _, p := range r.Join {
		parts = append(parts, "join "+p)
	}
	for _, j := range r.JoinFiles {
		parts = append(parts, "join "+j.Name)
	}
	if r.Unshare != 0 {
		parts = append(parts, "unshare "+ns.FlagNames(r.Unshare))
	}
	for _, o := range r.TimeOffsets {
		parts = append(parts, fmt.Sprintf("time offset %s %d.%09ds", o.Clock, o.Secs, o.Nanos))
	}
	if r.Options != 0 {
		parts = append(parts, fmt.Sprintf("options %#x", r.Options))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, "; ")
}

// Frames renders the request as the frames nsexec.c reads, opening here,
// in the parent, every file it names. The caller sends them in order and
// then closes the returned files (their fds travel as copies).
func (r *Request) Frames() ([]*frame.Frame, []*os.File, error) {
	var frames []*frame.Frame
	var files []*os.File
	fail := func(err error) ([]*frame.Frame, []*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, nil, err
	}
	withFile := func(t frame.Type, path string, flag int, what string) error {
		if err := checkPath(path); err != nil {
			return err
		}
		f, err := os.OpenFile(path, flag|unix.O_CLOEXEC, 0)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fmt.Errorf("open %s %s: %w", what, path, err)
		}
		files = append(files, f)
		frames = append(frames, &frame.Frame{Type: t, Payload: []byte(path), Fds: []int{int(f.Fd())}})
		return nil
	}
	if r.OOMScoreAdj != nil {
		frames = append(frames, &frame.Frame{Type: frame.TypeNsOOMScoreAdj, Payload: []byte(strconv.Itoa(*r.OOMScoreAdj))})
	}
	for _, p := range r.CgroupTasks {
		if err := withFile(frame.TypeNsCgroup, p, os.O_WRONLY, "cgroup"); err != nil {
			return fail(err)
		}
	}
	if n := len(r.Join) + len(r.JoinFiles); n > 16 {
		return fail(fmt.Errorf("%d namespaces to join: at most 16", n))
	}
	for _, p := range r.Join {
		if err := withFile(frame.TypeNsJoin, p, os.O_RDONLY, "namespace"); err != nil {
			return fail(err)
		}
	}
	for _, j := range r.JoinFiles {
		frames = append(frames, &frame.Frame{Type: frame.TypeNsJoin, Payload: []byte(j.Name), Fds: []int{int(j.File.Fd())}})
	}
	if r.Options != 0 {
		frames = append(frames, &frame.Frame{Type: frame.TypeNsOptions, Payload: binary.LittleEndian.AppendUint32(nil, r.Options)})
	}
	if r.Unshare != 0 {
		frames = append(frames, &frame.Frame{Type: frame.TypeNsUnshare, Payload: binary.LittleEndian.AppendUint64(nil, uint64(r.Unshare))})
	}
	if len(r.TimeOffsets) > 0 {
		var b strings.Builder
		for _, o := range r.TimeOffsets {
			fmt.Fprintf(&b, "%s %d %d\n", o.Clock, o.Secs, o.Nanos)
		}
		// nsexec.c's buffer for the offsets.
		if b.Len() >= 512 {
			return fail(fmt.Errorf("time offsets: %d bytes, at most 511", b.Len()))
		}
		frames = append(frames, &frame.Frame{Type: frame.TypeNsTimeOffsets, Payload: []byte(b.String())})
	}
	if r.Place {
		frames = append(frames, &frame.Frame{Type: frame.TypeNsPlace})
	}
	frames = append(frames, &frame.Frame{Type: frame.TypeNsEnd})
	return frames, files, nil
}

// ownChildByNSpid finds the child of ours (by any thread: CLONE_PARENT
// made it ours) whose pid in the namespace just above its own is nspid:
// the process the constructor started in a PID namespace below a joined
// one, which reports its number as seen from there.
func ownChildByNSpid(nspid int) (int, error) {
	paths, _ := filepath.Glob("/proc/self/task/*/children")
	for _, p := range paths {
		data, _ := os.ReadFile(p)
		for _, c := range strings.Fields(string(data)) {
			st, err := os.ReadFile("/proc/" + c + "/status")
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(st), "\n") {
				f := strings.Fields(strings.TrimPrefix(l, "NSpid:"))
				if !strings.HasPrefix(l, "NSpid:") || len(f) < 3 {
					continue
				}
				if f[len(f)-2] == strconv.Itoa(nspid) {
					return strconv.Atoi(f[0])
				}
			}
		}
	}
	return 0, fmt.Errorf("%w: no child of ours is pid %d in the joined PID namespace", ErrChild, nspid)
}

func checkPath(p string) error {
	if p == "" || strings.IndexByte(p, 0) >= 0 || len(p) > maxPayload {
		return fmt.Errorf("path %q: cannot be passed to the namespace helper", p)
	}
	return nil
}

// ErrChild is wrapped by errors the constructor reported.
var ErrChild = errors.New("container process setup")

// ErrGone is wrapped, with ErrChild, when the constructor's process ended
// without a report.
var ErrGone = errors.New("the process exited before reporting its pid")

// Wait reads the constructor's answers until it reports the pid of the
// process that goes on into Go. place is called when the process waits to
// be moved into its cgroup (Request.Place; nil when not asked for),
// writeMaps when it has unshared its user namespace; send answers them.
func Wait(next func() (*frame.Frame, error), send func(*frame.Frame) error, place, writeMaps func() error) (int, error) {
	for {
		f, err := next()
		if err != nil {
			if f != nil {
				closeFds(f.Fds)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return 0, fmt.Errorf("%w: %w: %v", ErrChild, ErrGone, err)
			}
			// The reader bounds the wait: a frozen or silent child.
			return 0, fmt.Errorf("%w: waiting for its pid: %w", ErrChild, err)
		}
		if len(f.Fds) > 0 {
			closeFds(f.Fds)
			return 0, fmt.Errorf("%w: %s frame with unexpected fds", ErrChild, f.Type)
		}
		switch f.Type {
		case frame.TypeNsPlace:
			if place == nil {
				return 0, fmt.Errorf("%w: asks to be placed in its cgroup, which was not requested", ErrChild)
			}
			if err := place(); err != nil {
				return 0, err
			}
			if err := send(&frame.Frame{Type: frame.TypeNsPlaceDone}); err != nil {
				return 0, err
			}
		case frame.TypeNsMaps:
			if err := writeMaps(); err != nil {
				return 0, err
			}
			if err := send(&frame.Frame{Type: frame.TypeNsMapsDone}); err != nil {
				return 0, err
			}
		case frame.TypeNsPid:
			if len(f.Payload) != 4 && len(f.Payload) != 8 {
				return 0, fmt.Errorf("%w: bad pid report of %d bytes", ErrChild, len(f.Payload))
			}
			pid := int(int32(binary.LittleEndian.Uint32(f.Payload)))
			if pid <= 0 {
				return 0, fmt.Errorf("%w: bad pid report %d", ErrChild, pid)
			}
			if len(f.Payload) == 8 {
				// The joined PID namespace's number for it.
				return ownChildByNSpid(pid)
			}
			return pid, nil
		case frame.TypeNsError:
			return 0, fmt.Errorf("%w: %w", ErrChild, childError(f.Payload))
		default:
			return 0, fmt.Errorf("%w: unexpected %s frame", ErrChild, f.Type)
		}
	}
}

func closeFds(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// childError turns the constructor's ns-error payload (errno, then
// "what\0arg\0message") into an error that wraps the errno and, for the
// namespace steps whose refusals have known causes (seed 002's user
// namespaces, the ENOSPC of a user.max_*_namespaces limit), says which one
// holds here.
func childError(p []byte) error {
	if len(p) < 4 {
		return fmt.Errorf("malformed error report of %d bytes", len(p))
	}
	n := int32(binary.LittleEndian.Uint32(p))
	parts := bytes.SplitN(p[4:], []byte{0}, 3)
	if len(parts) != 3 || n <= 0 {
		return fmt.Errorf("malformed error report %q", p)
	}
	what, arg := string(parts[0]), string(parts[1])
	errno := unix.Errno(n)
	if what == "assert-userns-disabled" {
		return ErrUsernsNotDisabled
	}
	var op explain.Op
	switch {
	case what == "unshare" && arg == "user namespace":
		op = explain.UnshareUser
	case what == "unshare":
		op = explain.UnshareOther
	case what == "setns" && strings.HasSuffix(arg, "/user"):
		op = explain.SetnsUser
	case what == "setns" && strings.HasSuffix(arg, "/mnt"):
		op = explain.SetnsMount
	case what == "clone":
		op = explain.Fork
	default:
		return fmt.Errorf("%s %s: %w", what, arg, errno)
	}
	f := explain.Gather()
	// The constructor runs before the Go runtime, on one thread; the
	// facts gathered here are the parent's, and its threads are not.
	f.Threads = 1
	return explain.WrapFacts(op, arg, errno, f)
}

// WithCallerSlack runs start, which starts a process, on a thread whose
// timer slack is the one hako was started with, so that the process gets
// it (and keeps it as its default: a child's default slack is its
// forker's slack at the fork). hako's own threads run with a larger one
// (nsexec.c's set_slack says why).
func WithCallerSlack(start func() error) error {
	orig := int64(C.hako_caller_slack)
	if orig <= 0 {
		return start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(orig), 0, 0, 0); err != nil {
		return fmt.Errorf("give a new process the caller's timer slack: prctl PR_SET_TIMERSLACK: %w", err)
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, C.HAKO_TIMER_SLACK_NS, 0, 0, 0)
	return start()
}
