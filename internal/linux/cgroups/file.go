package cgroups

import (
	"errors"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cgfs is how the resource code reads and writes cgroup interface files.
// The kernel's answers steer what gets written next (runc retries a period
// after the quota on EINVAL, orders memory and memsw by the current limit,
// skips files an older kernel lacks), so that code is written against this
// small interface: the unit tests swap in a recorder that plays the
// kernel's part and check the exact file/value sequence without root.
type cgfs interface {
	read(dir, file string) (string, error)
	write(dir, file, value string) error
	// writeLines writes each line with its own write(2) on one open file,
	// because the kernel parses every write as one entry (devices.allow,
	// io.bfq.weight, multi-line unified values).
	writeLines(dir, file string, lines []string) error
	exists(dir, file string) bool
}

// hostFS is cgfs on the real cgroup filesystems.
//
// Files are opened with plain syscalls: os.OpenFile would stat them and try
// to register each with the runtime's poller, costing more syscalls than
// the write itself. Safety comes from elsewhere: every directory was
// checked to lie on a cgroup filesystem (checkPaths), file names are
// cleaned so they cannot climb out of it, and cgroupfs itself cannot hold
// symlinks, so O_NOFOLLOW on the last component is all that is left to
// guard.
type hostFS struct{}

// cgroupFile joins dir and file; Clean("/"+file) keeps a file name such as
// "../x" (from linux.resources.unified) inside dir.
func cgroupFile(dir, file string) string {
	return filepath.Join(dir, filepath.Clean("/"+file))
}

func (hostFS) read(dir, file string) (string, error) {
	if dir == "" {
		return "", errors.New("no directory specified for " + file)
	}
	b, err := readProcFile(cgroupFile(dir, file))
	return string(b), err
}

func (h hostFS) write(dir, file, value string) error {
	return h.writeLines(dir, file, []string{value})
}

func (hostFS) writeLines(dir, file string, lines []string) error {
	path := cgroupFile(dir, file)
	if dir == "" {
		return &writeError{Path: file, Value: strings.Join(lines, "\n"), Err: errors.New("no cgroup directory")}
	}
	fd, err := openNoEINTR(path, unix.O_WRONLY)
	if err != nil {
		return &writeError{Path: path, Value: strings.Join(lines, "\n"), Err: err}
	}
	defer unix.Close(fd)
	for _, l := range lines {
		if err := writeOnce(fd, l); err != nil {
			return &writeError{Path: path, Value: l, Err: err}
		}
	}
	return nil
}

func (hostFS) exists(dir, file string) bool {
	return unix.Access(cgroupFile(dir, file), unix.F_OK) == nil
}

func openNoEINTR(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// writeOnce writes s with a single write(2). A cgroup file parses each
// write on its own, so a short write cannot be completed by writing the
// rest: that would be a second, different value.
func writeOnce(fd int, s string) error {
	for {
		n, err := unix.Write(fd, []byte(s))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n != len(s) {
			return io.ErrShortWrite
		}
		return nil
	}
}

// readUint reads a single-number file the way runc's
// fscommon.GetCgroupParamUint does: "max" is the largest value, and the
// negative numbers some v1 files show mean 0.
func readUint(f cgfs, dir, file string) (uint64, error) {
	s, err := f.read(dir, file)
	if err != nil {
		return 0, err
	}
	s = strings.TrimSpace(s)
	if s == "max" {
		return math.MaxUint64, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		if i, ierr := strconv.ParseInt(s, 10, 64); (ierr == nil || errors.Is(ierr, strconv.ErrRange)) && i < 0 {
			return 0, nil
		}
		return 0, errors.New("parse " + cgroupFile(dir, file) + ": " + err.Error())
	}
	return v, nil
}
