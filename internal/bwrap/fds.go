package bwrap

import (
	"errors"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// consumed are the caller's fds the options use up: hako bwrap reads or
// writes them itself, and the command does not get them (bubblewrap closes
// each in the sandbox once used). --sync-fd is held outside the command
// unless --as-pid-1 makes the command the sandbox's only process.
func (o *Options) consumed() map[int]bool {
	m := map[int]bool{}
	for _, fd := range []int{o.InfoFD, o.JSONStatusFD, o.BlockFD, o.UsernsBlockFD} {
		if fd >= 0 {
			m[fd] = true
		}
	}
	if o.SyncFD >= 0 && !o.AsPid1 {
		m[o.SyncFD] = true
	}
	for _, fd := range o.SeccompFDs {
		m[fd] = true
	}
	for _, op := range o.Ops {
		if op.FD >= 0 {
			m[op.FD] = true
		}
	}
	return m
}

// Inherited lists the fds (3 and up) the caller left open across exec, not
// counting those the options consume, and makes those close-on-exec here
// so that no process of the sandbox holds them by accident (an --info-fd
// pipe must reach EOF when hako bwrap closes it). Go opens its own fds
// close-on-exec, so what is open without the flag is the caller's.
func Inherited(o *Options) []int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	used := o.consumed()
	var out []int
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		if used[fd] {
			unix.CloseOnExec(fd)
			continue
		}
		out = append(out, fd)
	}
	sort.Ints(out)
	return out
}

// JoinError words a failure to enter --userns's or --pidns's namespace as
// bubblewrap does (its setns fails with EINVAL for a file that is not one,
// or a user namespace that is no descendant of ours); ok is false for any
// other error.
func JoinError(o *Options, err error) (text string, ok bool) {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return "", false
	}
	if errno == unix.ENOTTY {
		// hako asks the file's namespace type first: not a namespace.
		errno = unix.EINVAL
	}
	names := func(fd int) bool {
		return fd >= 0 && strings.Contains(err.Error(), "/proc/self/fd/"+strconv.Itoa(fd)+":")
	}
	switch {
	case names(o.UsernsFD) && errno == unix.EINVAL:
		return "Joining the specified user namespace failed, it might not be a descendant of the current user namespace.", true
	case names(o.UsernsFD):
		return "Joining specified user namespace failed: " + strerror(errno), true
	case names(o.PidnsFD):
		return "Setting pidns failed: " + strerror(errno), true
	}
	return "", false
}
