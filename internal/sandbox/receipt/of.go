package receipt

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Of probes another process, for `hako inspect --properties`: the same
// checks the sandbox's init runs on itself, run from outside. Paths are
// resolved inside the process's root (/proc/PID/root with RESOLVE_IN_ROOT:
// its symlinks cannot lead to the reader's files), and access(2) is the
// reader's, so a read-only mount still answers EROFS and a permission
// refusal falls back to mountinfo as in the sandbox. Reading another
// user's process needs root (ptrace access to it).
func Of(pid int) (*Probe, error) {
	proc := fmt.Sprintf("/proc/%d/", pid)
	p := &Probe{Pid: pid, Status: map[string]string{}}
	var err error
	if p.Mounts, err = readMountinfo(proc + "mountinfo"); err != nil {
		return nil, err
	}
	f, err := os.Open(proc + "status")
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			p.Status[k] = strings.TrimSpace(v)
		}
	}
	f.Close()
	p.Limits = readLimits(proc + "limits")
	p.NS = func(kind string) (uint64, error) {
		var st unix.Stat_t
		if err := unix.Stat(proc+"ns/"+kind, &st); err != nil {
			return 0, err
		}
		return st.Ino, nil
	}
	open := func(path string, flags uint64) (int, error) {
		root, err := unix.Open(proc+"root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		defer unix.Close(root)
		rel := strings.TrimPrefix(filepath.Clean("/"+path), "/")
		if rel == "" {
			rel = "."
		}
		return unix.Openat2(root, rel, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	}
	p.Access = func(path string) error {
		fd, err := open(path, unix.O_PATH)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Faccessat2(fd, "", unix.W_OK, unix.AT_EMPTY_PATH)
	}
	p.Stat = func(path string) (unix.Stat_t, error) {
		var st unix.Stat_t
		fd, err := open(path, unix.O_PATH)
		if err != nil {
			return st, err
		}
		defer unix.Close(fd)
		err = unix.Fstat(fd, &st)
		return st, err
	}
	p.ReadDir = func(path string) ([]string, error) {
		fd, err := open(path, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return nil, err
		}
		d := os.NewFile(uintptr(fd), path)
		defer d.Close()
		return d.Readdirnames(-1)
	}
	p.ProcSelf = func() (string, error) {
		return "", fmt.Errorf("/proc/self of process %d is not readable from outside", pid)
	}
	return p, nil
}

// Topmost is the last mount at each mount point, in mountinfo's order:
// what the process reaches there.
func (p *Probe) Topmost() []Mount {
	var out []Mount
	for i, m := range p.Mounts {
		if p.topmost(m) && !hidden(p.Mounts[i+1:], m.Point) {
			out = append(out, m)
		}
	}
	return out
}

// hidden reports whether a later mount on a parent of point covers it.
func hidden(later []Mount, point string) bool {
	for _, l := range later {
		if l.Point != point && below(point, l.Point) {
			return true
		}
	}
	return false
}

// Covering is the mount path lies on, as the checks see it.
func (p *Probe) Covering(path string) (Mount, bool) { return p.covering(path) }

// Check runs one check, as Verify does.
func (p *Probe) Check(c Check) (bool, string) { return p.check(c) }

// limitNames are /proc/PID/limits's rows by resource.
var limitNames = map[string]string{
	"Max cpu time": "RLIMIT_CPU", "Max file size": "RLIMIT_FSIZE", "Max data size": "RLIMIT_DATA",
	"Max stack size": "RLIMIT_STACK", "Max core file size": "RLIMIT_CORE", "Max resident set": "RLIMIT_RSS",
	"Max processes": "RLIMIT_NPROC", "Max open files": "RLIMIT_NOFILE", "Max locked memory": "RLIMIT_MEMLOCK",
	"Max address space": "RLIMIT_AS", "Max file locks": "RLIMIT_LOCKS", "Max pending signals": "RLIMIT_SIGPENDING",
	"Max msgqueue size": "RLIMIT_MSGQUEUE", "Max nice priority": "RLIMIT_NICE", "Max realtime priority": "RLIMIT_RTPRIO",
	"Max realtime timeout": "RLIMIT_RTTIME",
}

// readLimits reads /proc/PID/limits (world-readable) as RLIMIT_* →
// "SOFT:HARD" in systemd's words ("infinity" for unlimited).
func readLimits(path string) map[string]string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		for name, res := range limitNames {
			rest, ok := strings.CutPrefix(l, name+" ")
			if !ok {
				continue
			}
			f := strings.Fields(rest)
			if len(f) < 2 {
				continue
			}
			v := func(s string) string {
				if s == "unlimited" {
					return "infinity"
				}
				return s
			}
			out[res] = v(f[0]) + ":" + v(f[1])
		}
	}
	return out
}
