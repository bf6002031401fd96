// Package nsenter owns the part of process creation that must run before the
// Go runtime starts: joining cgroups, setns into existing namespaces (user
// and mount namespaces cannot be joined by a multithreaded process) and
// unsharing new ones. See nsexec.c for the steps and why they are ordered so.
//
// nsexec.c keeps its own few lines of text ("cg", "join", "unshare",
// "timens", "end" in; "maps", "pid N", "err ..." out) rather than speak
// internal/frame: it runs in a constructor before the Go runtime, where a
// bug is a hang or a crash with no Go error to report, it passes no fds
// either way, and every message is one short line parsed with plain libc.
// Teaching it frames would add C parsing code on the most fragile path for
// no fd and no message it lacks. The frames start right after its "pid"
// line, on the same socket.
//
// A program that imports this package (the hako binary does) gets the C
// constructor; it does nothing unless the environment names a sync fd, so
// the ordinary CLI pays nothing for it.
package nsenter

// #cgo CFLAGS: -Wall -O2
// #cgo LDFLAGS: -static
import "C"

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/explain"
)

// EnvSync names the fd, in the child, of the socket the constructor reads.
const EnvSync = "_HAKO_SYNC"

// EnvCgroupHold makes the constructor a cgroup placeholder: it waits for
// EOF on stdin and exits, never starting Go (see hold_cgroup in nsexec.c).
const EnvCgroupHold = "_HAKO_CGROUP_HOLD"

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
	Unshare     uintptr  // CLONE_NEW* flags of new namespaces
	TimeOffsets []TimeOffset
}

// Encode renders the request in the line protocol nsexec.c parses.
func (r *Request) Encode() ([]byte, error) {
	var b strings.Builder
	for _, p := range r.CgroupTasks {
		if err := checkLine(p); err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "cg %s\n", p)
	}
	for _, p := range r.Join {
		if err := checkLine(p); err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "join %s\n", p)
	}
	if r.Unshare != 0 {
		fmt.Fprintf(&b, "unshare %x\n", r.Unshare)
	}
	for _, o := range r.TimeOffsets {
		fmt.Fprintf(&b, "timens %s %d %d\n", o.Clock, o.Secs, o.Nanos)
	}
	b.WriteString("end\n")
	return []byte(b.String()), nil
}

func checkLine(p string) error {
	if p == "" || strings.ContainsAny(p, "\n\x00") || len(p) > 4000 {
		return fmt.Errorf("path %q: cannot be passed to the namespace helper", p)
	}
	return nil
}

// ErrChild is wrapped by errors the constructor reported.
var ErrChild = errors.New("container process setup")

// Wait reads the constructor's replies until it reports the pid of the
// process that goes on into Go. writeMaps is called when the process has
// unshared its user namespace; stagePid is the pid of the process the
// parent started (the one that unshared), to write its maps.
func Wait(r *bufio.Reader, w io.Writer, writeMaps func() error) (int, error) {
	for {
		line, err := r.ReadString('\n')
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("%w: the process exited before reporting its pid: %v", ErrChild, err)
		}
		if err != nil {
			// The reader bounds the wait: a frozen or silent child.
			return 0, fmt.Errorf("%w: waiting for its pid: %w", ErrChild, err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "maps":
			if err := writeMaps(); err != nil {
				io.WriteString(w, "fail\n")
				return 0, err
			}
			if _, err := io.WriteString(w, "ok\n"); err != nil {
				return 0, err
			}
		case strings.HasPrefix(line, "pid "):
			pid, err := strconv.Atoi(line[4:])
			if err != nil || pid <= 0 {
				return 0, fmt.Errorf("%w: bad pid report %q", ErrChild, line)
			}
			return pid, nil
		case strings.HasPrefix(line, "err "):
			return 0, fmt.Errorf("%w: %w", ErrChild, childError(line[4:]))
		default:
			return 0, fmt.Errorf("%w: unexpected message %q", ErrChild, line)
		}
	}
}

// childError turns the constructor's "ERRNO WHAT|ARG: MESSAGE" into an
// error that wraps the errno and, for the namespace steps whose refusals
// have known causes (seed 002's user namespaces, the ENOSPC of a
// user.max_*_namespaces limit), says which one holds here.
func childError(s string) error {
	num, rest, ok := strings.Cut(s, " ")
	n, err := strconv.Atoi(num)
	what, tail, ok2 := strings.Cut(rest, "|")
	arg, _, ok3 := strings.Cut(tail, ": ")
	if !ok || !ok2 || !ok3 || err != nil || n <= 0 {
		return errors.New(s)
	}
	errno := unix.Errno(n)
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
