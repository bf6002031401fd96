package cgroups

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The cgroup2 Set code: runc's fs2 (github.com/opencontainers/cgroups/fs2)
// for the spec's resources, with its files, values, conversions and order.

// v2Controller is one cgroup2 controller the resources may need.
type v2Controller struct {
	name  string
	isSet func(*specs.LinuxResources) bool
	set   func(f cgfs, dir string, r *resources) error
}

// v2Controllers is fs2's Set order. The devices and freezer
// pseudo-controllers are not listed: they have no entry in
// cgroup.controllers, and devices go through bpf(2), not files.
var v2Controllers = []v2Controller{
	{"pids", pidsSet, setPids},
	{"memory", memoryV2Set, setMemoryV2},
	{"io", ioV2Set, setIOV2},
	{"cpu", cpuV2Set, setCPUV2},
	{"cpuset", cpusetSet, setCpusetV2},
	{"hugetlb", hugetlbSet, setHugetlbV2},
	{"rdma", rdmaSet, setRdma},
}

// setMemoryV2 is fs2's setMemory. The spec's swap is memory+swap; cgroup2
// limits swap alone (swapToV2).
func setMemoryV2(f cgfs, dir string, r *resources) error {
	m := r.spec.Memory
	if !memoryV2Set(r.spec) {
		return nil
	}
	limit, swap := num(m.Limit), num(m.Swap)
	if m.CheckBeforeUpdate != nil && *m.CheckBeforeUpdate {
		if err := checkMemoryUsage(f, dir, limit, swap); err != nil {
			return err
		}
	}
	v2swap, err := swapToV2(swap, limit)
	if err != nil {
		return err
	}
	swapStr := v2Num(v2swap)
	if swapStr == "" && v2swap == 0 && swap > 0 {
		// Memory and memory+swap equal: no swap at all.
		swapStr = "0"
	}
	// An empty write would mean 0, so nothing is written for "unset".
	if swapStr != "" {
		if err := f.write(dir, "memory.swap.max", swapStr); err != nil {
			// Without swap accounting there is no file, and asking for
			// no swap or unlimited swap is then already true.
			if !errors.Is(err, unix.ENOENT) || (swapStr != "max" && swapStr != "0") {
				return err
			}
		}
	}
	if v := v2Num(limit); v != "" {
		if err := f.write(dir, "memory.max", v); err != nil {
			return err
		}
	}
	if v := v2Num(num(m.Reservation)); v != "" {
		if err := f.write(dir, "memory.low", v); err != nil {
			return err
		}
	}
	return nil
}

// checkMemoryUsage is fs2's CheckMemoryUsage (memory.checkBeforeUpdate):
// refuse a limit at or below current usage rather than have the kernel
// reclaim or OOM-kill to reach it. Best effort: an unreadable usage
// passes.
func checkMemoryUsage(f cgfs, dir string, limit, swap int64) error {
	if limit <= 0 && swap <= 0 {
		return nil
	}
	usage, err := readUint(f, dir, "memory.current")
	if err != nil {
		return nil
	}
	if swap > 0 && uint64(swap) <= usage {
		return fmt.Errorf("rejecting memory+swap limit %d <= usage %d", swap, usage)
	}
	if limit > 0 && uint64(limit) <= usage {
		return fmt.Errorf("rejecting memory limit %d <= usage %d", limit, usage)
	}
	return nil
}

// setIOV2 is fs2's setIo. With the BFQ scheduler its own weight file takes
// the v1 weight unconverted (same range); otherwise io.weight takes the
// converted weight. Per-device weights go to io.bfq.weight where the
// kernel accepts them there (5.4+), and to io.weight otherwise, which
// runc drops.
func setIOV2(f cgfs, dir string, r *resources) error {
	b := r.spec.BlockIO
	if !ioV2Set(r.spec) {
		return nil
	}
	bfq, bfqDevices := false, false
	if u16(b.Weight) != 0 || len(b.WeightDevice) > 0 {
		cur, err := f.read(dir, "io.bfq.weight")
		switch {
		case err == nil:
			bfq = true
			// A kernel that shows only a number (no "default N" line)
			// predates per-device BFQ weights.
			_, perr := strconv.ParseInt(strings.TrimSpace(cur), 10, 64)
			bfqDevices = perr != nil
		case !errors.Is(err, os.ErrNotExist):
			return err
		}
	}
	if w := u16(b.Weight); w != 0 {
		var err error
		if bfq {
			err = f.write(dir, "io.bfq.weight", strconv.FormatUint(uint64(w), 10))
		} else {
			err = f.write(dir, "io.weight", "default "+strconv.FormatUint(blkioWeightToIOWeight(w), 10))
		}
		if err != nil {
			return err
		}
	}
	var lines []string
	for _, wd := range b.WeightDevice {
		if w := u16(wd.Weight); w != 0 {
			if bfqDevices {
				lines = append(lines, devString(wd.Major, wd.Minor, strconv.FormatUint(uint64(w), 10)))
			} else if !bfq {
				lines = append(lines, devString(wd.Major, wd.Minor, strconv.FormatUint(blkioWeightToIOWeight(w), 10)))
			}
		}
	}
	if len(lines) > 0 {
		file := "io.weight"
		if bfqDevices {
			file = "io.bfq.weight"
		}
		if err := f.writeLines(dir, file, lines); err != nil {
			return err
		}
	}
	for _, t := range []struct {
		key  string
		devs []specs.LinuxThrottleDevice
	}{
		{"rbps", b.ThrottleReadBpsDevice},
		{"wbps", b.ThrottleWriteBpsDevice},
		{"riops", b.ThrottleReadIOPSDevice},
		{"wiops", b.ThrottleWriteIOPSDevice},
	} {
		for _, td := range t.devs {
			if err := f.write(dir, "io.max", devString(td.Major, td.Minor, t.key+"="+strconv.FormatUint(td.Rate, 10))); err != nil {
				return err
			}
		}
	}
	return nil
}

// setCPUV2 is fs2's setCPU: shares become cpu.weight (cpuSharesToWeight),
// quota and period one cpu.max line ("max" for no quota, the kernel's
// default period 100000 when only a quota is given).
func setCPUV2(f cgfs, dir string, r *resources) error {
	c := r.spec.CPU
	if !cpuV2Set(r.spec) {
		return nil
	}
	if c.Idle != nil {
		if err := f.write(dir, "cpu.idle", strconv.FormatInt(*c.Idle, 10)); err != nil {
			return err
		}
	}
	if w := cpuSharesToWeight(num(c.Shares)); w != 0 {
		if err := f.write(dir, "cpu.weight", strconv.FormatUint(w, 10)); err != nil {
			return err
		}
	}
	quota, period := num(c.Quota), num(c.Period)
	// A larger burst can be refused (EINVAL) until the new quota is in;
	// it is then retried after cpu.max.
	var burst string
	if c.Burst != nil {
		burst = strconv.FormatUint(*c.Burst, 10)
		if err := f.write(dir, "cpu.max.burst", burst); err != nil {
			if !errors.Is(err, unix.EINVAL) || quota == 0 {
				return err
			}
		} else {
			burst = ""
		}
	}
	if quota != 0 || period != 0 {
		if err := f.write(dir, "cpu.max", cpuMax(quota, period)); err != nil {
			return err
		}
		if burst != "" {
			if err := f.write(dir, "cpu.max.burst", burst); err != nil {
				return err
			}
		}
	}
	return nil
}

// cpuMax is the cpu.max line for a v1-style quota and period.
func cpuMax(quota int64, period uint64) string {
	s := "max"
	if quota > 0 {
		s = strconv.FormatInt(quota, 10)
	}
	if period == 0 {
		period = 100000
	}
	return s + " " + strconv.FormatUint(period, 10)
}

func setCpusetV2(f cgfs, dir string, r *resources) error {
	return setCpusetFiles(f, dir, r.spec.CPU, "cpuset.cpus", "cpuset.mems")
}

// setHugetlbV2 writes hugetlb.<size>.max, plus the reservation limit where
// the kernel has it, as fs2 does. It also serves the unified directory of
// a hybrid host.
func setHugetlbV2(f cgfs, dir string, r *resources) error {
	return setHugetlb(f, dir, r.spec.HugepageLimits, ".max")
}

// setUnified applies linux.resources.unified: file name -> content, in name
// order, a multi-line value one write per line as the kernel expects.
func setUnified(f cgfs, dir string, files map[string]string) error {
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if strings.Contains(k, "/") {
			return &Error{Controller: "unified", Err: fmt.Errorf("resource %q must be a file name", k)}
		}
		v := files[k]
		lines := []string{v}
		if strings.Contains(v, "\n") {
			lines = strings.SplitAfter(v, "\n")
			if lines[len(lines)-1] == "" {
				lines = lines[:len(lines)-1]
			}
		}
		if err := f.writeLines(dir, k, lines); err != nil {
			ctl := controllerOfFile(k)
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
				if ctl == "" {
					return &Error{Controller: "unified", Err: fmt.Errorf("resource %q must be in the form CONTROLLER.PARAMETER: %w", k, err)}
				}
				// Tell a controller the parent did not delegate from a
				// misspelt file.
				avail, rerr := f.read(dir, "cgroup.controllers")
				if ctl != "cgroup" && rerr == nil && !slices.Contains(strings.Fields(avail), ctl) {
					return &Error{Controller: ctl, Err: fmt.Errorf("unified resource %q: %w: %w", k, ErrNotMounted, err)}
				}
			}
			return wrapErr(ctl, err)
		}
	}
	return nil
}

// createV2Path makes a cgroup2 directory the way fs2's CreateCgroupPath
// does: every level below the root is made if missing, and every level
// above the container enables all the controllers the root offers in
// cgroup.subtree_control, since a controller's files only appear in a
// child once its parent enables it. A level in a threaded or invalid
// state cannot host domain controllers, which is refused up front.
func createV2Path(f cgfs, t *tracker, dir string, r *resources) error {
	if !strings.HasPrefix(dir, cgroupRoot+"/") {
		return fmt.Errorf("invalid cgroup path %s", dir)
	}
	content, err := f.read(cgroupRoot, "cgroup.controllers")
	if err != nil {
		return err
	}
	ctrs := strings.Fields(content)
	enable := "+" + strings.Join(ctrs, " +")
	domain := memoryV2Set(r.spec) || ioV2Set(r.spec) || cpuV2Set(r.spec) || hugetlbSet(r.spec)
	elems := strings.Split(strings.TrimPrefix(dir, cgroupRoot+"/"), "/")
	cur := cgroupRoot
	for i := -1; i < len(elems); i++ {
		if i >= 0 {
			cur += "/" + elems[i]
			if err := t.mkdir(cur); err != nil {
				return err
			}
			typ, _ := f.read(cur, "cgroup.type")
			switch typ = strings.TrimSpace(typ); typ {
			case "domain invalid":
				// Usually processes in an ancestor. Only thread-aware
				// controllers can work here: switch to threaded mode.
				if domain {
					return fmt.Errorf("cannot enter cgroupv2 %q with domain controllers -- it is in an invalid state", cur)
				}
				_ = f.write(cur, "cgroup.type", "threaded")
			case "domain threaded", "threaded":
				if domain {
					return fmt.Errorf("cannot enter cgroupv2 %q with domain controllers -- it is in %s mode", cur, typ)
				}
			}
		}
		// A level that existed before may enable everything already; it
		// is then left alone, so that nothing is written to cgroups that
		// do not need it.
		if i < len(elems)-1 && len(ctrs) > 0 && (t.created(cur) || !allEnabled(f, cur, ctrs)) {
			// Errors are not fatal: a controller we do not need may be
			// refused (rootless, nested); checkV2 reports the ones we do.
			if err := f.write(cur, "cgroup.subtree_control", enable); err != nil {
				for _, c := range ctrs {
					_ = f.write(cur, "cgroup.subtree_control", "+"+c)
				}
			}
		}
	}
	return nil
}

// allEnabled reports whether dir's cgroup.subtree_control lists every one
// of ctrs.
func allEnabled(f cgfs, dir string, ctrs []string) bool {
	data, err := f.read(dir, "cgroup.subtree_control")
	if err != nil {
		return false
	}
	have := strings.Fields(data)
	for _, c := range ctrs {
		if !slices.Contains(have, c) {
			return false
		}
	}
	return true
}
