package cgroups

import (
	"os"
	"path/filepath"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// initCpuset gives a v1 cpuset directory (and the levels above it, up to
// the hierarchy root) the cpus and mems the library's CpusetGroup.Apply
// would: the requested ones for dir, otherwise a copy of the parent's
// wherever a level has none, since a cpuset without them cannot take
// processes.
//
// The library reads each level's and its parent's values (four reads per
// level) and writes those that are empty. Here values are carried down from
// the root, so each existing level is read once, and a level Create has
// just made is not read at all: a new cpuset is empty unless the parent has
// clone_children set, in which case it already holds the very values that
// are written, and the kernel ignores a write of the current value.
func initCpuset(f cgfs, dir string, c *specs.LinuxCPU, t *tracker) error {
	var wantCpus, wantMems string
	if c != nil {
		wantCpus, wantMems = c.Cpus, c.Mems
	}
	// The levels below the hierarchy root, bottom first; like the library,
	// the root is the first ancestor whose parent is not a cgroup fs.
	levels := []string{dir}
	top := filepath.Dir(dir)
	for {
		parent := filepath.Dir(top)
		var st unix.Statfs_t
		err := unix.Statfs(parent, &st)
		if err != nil && err != unix.ENOENT {
			return &os.PathError{Op: "statfs", Path: parent, Err: err}
		}
		if (err == nil && st.Type != unix.CGROUP_SUPER_MAGIC) || parent == top {
			break
		}
		levels = append(levels, top)
		top = parent
	}
	cpusFile, memsFile := cpusetFile(top, "cpus"), cpusetFile(top, "mems")
	cpus, mems, err := readCpuset(f, top, cpusFile, memsFile)
	if err != nil {
		return err
	}
	for i := len(levels) - 1; i >= 0; i-- {
		l := levels[i]
		needCpus, needMems := true, true
		if l == dir {
			// The library sets the requested values before copying.
			if wantCpus != "" {
				if err := f.write(l, cpusFile, wantCpus); err != nil {
					return err
				}
				needCpus = false
			}
			if wantMems != "" {
				if err := f.write(l, memsFile, wantMems); err != nil {
					return err
				}
				needMems = false
			}
		}
		if !t.created(l) {
			cur, curMems, err := readCpuset(f, l, cpusFile, memsFile)
			if err != nil {
				return err
			}
			if needCpus && !isEmptyCpuset(cur) {
				needCpus, cpus = false, cur
			}
			if needMems && !isEmptyCpuset(curMems) {
				needMems, mems = false, curMems
			}
		}
		if needCpus {
			if err := f.write(l, cpusFile, cpus); err != nil {
				return err
			}
		}
		if needMems {
			if err := f.write(l, memsFile, mems); err != nil {
				return err
			}
		}
	}
	return nil
}

func readCpuset(f cgfs, dir, cpusFile, memsFile string) (cpus, mems string, err error) {
	if cpus, err = f.read(dir, cpusFile); err != nil {
		return "", "", err
	}
	if mems, err = f.read(dir, memsFile); err != nil {
		return "", "", err
	}
	return cpus, mems, nil
}

func isEmptyCpuset(s string) bool { return s == "" || s == "\n" }

var (
	cpusetMu     sync.Mutex
	cpusetPrefix = "cpuset."
	cpusetKnown  bool
)

// cpusetFile is the library's: only a v1 cpuset hierarchy can be mounted
// with noprefix (Android), which is probed once per process.
func cpusetFile(dir, name string) string {
	cpusetMu.Lock()
	defer cpusetMu.Unlock()
	if !cpusetKnown {
		if unix.Access(filepath.Join(dir, cpusetPrefix+name), unix.F_OK) == nil {
			cpusetKnown = true
		} else if unix.Access(filepath.Join(dir, name), unix.F_OK) == nil {
			cpusetPrefix, cpusetKnown = "", true
		}
	}
	return cpusetPrefix + name
}
