package spec

import (
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// resources rejects values the cgroup files would refuse (EINVAL at create,
// after the container's namespaces already exist) or that runc's cgroup
// managers refuse. Values that only make sense for one cgroup version are
// left to the cgroup package, which knows the host.
func (v *validator) resources() error {
	if v.s.Linux == nil || v.s.Linux.Resources == nil {
		return nil
	}
	r := v.s.Linux.Resources
	const base = "linux.resources"
	for _, check := range []func() error{
		func() error { return checkDeviceRules(base+".devices", r.Devices) },
		func() error { return checkMemory(base+".memory", r.Memory) },
		func() error { return checkCPU(base+".cpu", r.CPU) },
		func() error { return checkPids(base+".pids", r.Pids) },
		func() error { return checkBlockIO(base+".blockIO", r.BlockIO) },
		func() error { return checkHugepages(base+".hugepageLimits", r.HugepageLimits) },
		func() error { return checkUnified(base+".unified", r.Unified) },
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func checkDeviceRules(field string, rules []specs.LinuxDeviceCgroup) error {
	for i, d := range rules {
		f := at(field, i)
		switch d.Type {
		case "", "a", "b", "c":
		default:
			return fieldErr(f+".type", "unknown device type %q (want a, b or c)", d.Type)
		}
		if strings.Trim(d.Access, "rwm") != "" {
			return fieldErr(f+".access", "invalid access %q (only r, w and m are allowed)", d.Access)
		}
		// -1 is runc's spelling of the wildcard besides omitting the field.
		if d.Major != nil && *d.Major < -1 || d.Minor != nil && *d.Minor < -1 {
			return fieldErr(f, "major and minor must be -1 (any) or >= 0")
		}
	}
	return nil
}

// minusOneOrMore is for limits where -1 means "unlimited".
func minusOneOrMore(field string, p *int64) error {
	if p != nil && *p < -1 {
		return fieldErr(field, "must be -1 (unlimited) or >= 0, got %d", *p)
	}
	return nil
}

func checkMemory(field string, m *specs.LinuxMemory) error {
	if m == nil {
		return nil
	}
	for _, l := range []struct {
		name string
		val  *int64
	}{
		{"limit", m.Limit},
		{"reservation", m.Reservation},
		{"swap", m.Swap},
		{"kernel", m.Kernel},
		{"kernelTCP", m.KernelTCP},
	} {
		if err := minusOneOrMore(field+"."+l.name, l.val); err != nil {
			return err
		}
	}
	// swap is memory+swap, as in cgroup v1's memsw; runc refuses a total
	// below the memory part on both cgroup versions.
	if m.Limit != nil && m.Swap != nil && *m.Limit > 0 && *m.Swap > 0 && *m.Swap < *m.Limit {
		return fieldErr(field+".swap", "must be >= memory.limit (%d) as it includes memory, got %d", *m.Limit, *m.Swap)
	}
	if m.Swappiness != nil && *m.Swappiness > 100 {
		return fieldErr(field+".swappiness", "must be in [0, 100], got %d", *m.Swappiness)
	}
	return nil
}

// The kernel's CFS bandwidth bounds (kernel/sched/core.c): periods from 1ms
// to 1s and quotas of at least 1ms, in microseconds.
const (
	cfsMinUsec = 1000
	cfsMaxUsec = 1000000
)

func checkCPU(field string, c *specs.LinuxCPU) error {
	if c == nil {
		return nil
	}
	// shares is unsigned in the spec, so a negative value already fails
	// to decode; the kernel clamps the rest.
	if c.Quota != nil {
		q := *c.Quota
		if q < -1 {
			return fieldErr(field+".quota", "must be -1 (unlimited) or > 0, got %d", q)
		}
		if q > 0 && q < cfsMinUsec {
			return fieldErr(field+".quota", "must be at least %d (1ms), got %d", cfsMinUsec, q)
		}
	}
	// 0 means "unset" to runc, so only explicit periods are range-checked.
	if c.Period != nil && *c.Period != 0 && (*c.Period < cfsMinUsec || *c.Period > cfsMaxUsec) {
		return fieldErr(field+".period", "must be in [%d, %d], got %d", cfsMinUsec, cfsMaxUsec, *c.Period)
	}
	if err := minusOneOrMore(field+".realtimeRuntime", c.RealtimeRuntime); err != nil {
		return err
	}
	if c.Idle != nil && *c.Idle != 0 && *c.Idle != 1 {
		return fieldErr(field+".idle", "must be 0 or 1, got %d", *c.Idle)
	}
	if c.Cpus != "" && !validList(c.Cpus) {
		return fieldErr(field+".cpus", "invalid CPU list %q", c.Cpus)
	}
	if c.Mems != "" && !validList(c.Mems) {
		return fieldErr(field+".mems", "invalid memory node list %q", c.Mems)
	}
	return nil
}

func checkPids(field string, p *specs.LinuxPids) error {
	if p == nil {
		return nil
	}
	return minusOneOrMore(field+".limit", p.Limit)
}

// checkWeight allows 0 because runc treats it as "not set".
func checkWeight(field string, w *uint16) error {
	if w != nil && *w != 0 && (*w < 10 || *w > 1000) {
		return fieldErr(field, "must be in [10, 1000], got %d", *w)
	}
	return nil
}

func checkBlockIO(field string, b *specs.LinuxBlockIO) error {
	if b == nil {
		return nil
	}
	if err := checkWeight(field+".weight", b.Weight); err != nil {
		return err
	}
	if err := checkWeight(field+".leafWeight", b.LeafWeight); err != nil {
		return err
	}
	for i, d := range b.WeightDevice {
		f := at(field+".weightDevice", i)
		if err := checkWeight(f+".weight", d.Weight); err != nil {
			return err
		}
		if err := checkWeight(f+".leafWeight", d.LeafWeight); err != nil {
			return err
		}
	}
	return nil
}

// validPageSize matches the hugetlb controller's file-name sizes ("2MB",
// "1GB", "64KB"): ^[1-9][0-9]*[KMGTPE]B$, without a regexp compiled at
// the start of every hako process.
func validPageSize(s string) bool {
	n := len(s)
	if n < 3 || s[0] < '1' || s[0] > '9' || s[n-1] != 'B' || !strings.ContainsRune("KMGTPE", rune(s[n-2])) {
		return false
	}
	for _, c := range []byte(s[1 : n-2]) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func checkHugepages(field string, limits []specs.LinuxHugepageLimit) error {
	for i, h := range limits {
		if !validPageSize(h.Pagesize) {
			return fieldErr(at(field, i)+".pageSize", "invalid page size %q (want e.g. \"2MB\")", h.Pagesize)
		}
	}
	return nil
}

// checkUnified keeps unified keys inside the container's cgroup directory:
// they are joined to it as file names.
func checkUnified(field string, u map[string]string) error {
	keys := make([]string, 0, len(u))
	for k := range u {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" || k == "." || k == ".." || strings.Contains(k, "/") {
			return fieldErr(keyed(field, k), "must be a cgroup file name (no slashes)")
		}
	}
	return nil
}
