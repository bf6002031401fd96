package systemd

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Resources is what the mapping reads: the spec's resources already in
// the form the kernel files take (runc maps from its configs.Resources,
// which specconv fills the same way), so that a conversion such as
// cpu.shares -> cpu.weight is decided once, in the cgroups package.
type Resources struct {
	V2 bool // unified hierarchy: MemoryMax etc. rather than MemoryLimit

	Memory      int64 // bytes; 0 unset, -1 unlimited
	Reservation int64 // v2 MemoryLow
	SwapV2      int64 // v2 memory.swap.max (already converted from the spec's memory+swap)
	CPUShares   uint64
	CPUWeight   uint64 // v2, converted from shares
	CPUIdle     *int64
	Quota       int64
	Period      uint64
	Cpus, Mems  string
	PidsLimit   int64 // 0 unset, -1 unlimited
	BlkioWeight uint16
	Unified     map[string]string

	// Devices is the container's final device rule set; nil leaves the
	// unit's device policy alone (update, as runc's SkipDevices).
	Devices *Devices
}

// Devices is a device rule list reduced the way the kernel's v1 devices
// controller reduces it: a default and the exceptions to it.
type Devices struct {
	DefaultAllow bool
	Exceptions   []DeviceRule
}

// DeviceRule is one exception; Major or Minor -1 is a wildcard.
type DeviceRule struct {
	Type         byte // 'c' or 'b'
	Major, Minor int64
	Perms        string
}

// defCPUQuotaPeriod is the kernel's default cfs period, the same on v1 and
// v2.
const defCPUQuotaPeriod = uint64(100000)

// cpuIdleVersion is the first systemd that maps CPUWeight=0 to cpu.idle.
const cpuIdleVersion = 252

func prop(name string, v any) sd.Property {
	return sd.Property{Name: name, Value: dbus.MakeVariant(v)}
}

// Properties maps r to unit properties as runc's genV1ResourcesProperties
// and genV2ResourcesProperties do, gated on the systemd version the same
// way (version <= 0: unknown, treated as too old for the gated ones). It
// returns the quota the cgroup files must then get: systemd keeps
// CPUQuotaPerSecUSec in whole percents, so like runc the quota is rounded
// up to the next 10ms per second and the file write uses the rounded
// value, or systemd and the file would disagree.
func Properties(r *Resources, version int, warn func(string, ...any)) (props []sd.Property, quota int64, err error) {
	if warn == nil {
		warn = func(string, ...any) {}
	}
	quota = r.Quota
	if r.Devices != nil {
		props = append(props, deviceProperties(r.Devices, version, warn)...)
	}
	if r.V2 {
		if r.Memory != 0 {
			props = append(props, prop("MemoryMax", uint64(r.Memory)))
		}
		if r.Reservation != 0 {
			props = append(props, prop("MemoryLow", uint64(r.Reservation)))
		}
		if r.SwapV2 != 0 {
			props = append(props, prop("MemorySwapMax", uint64(r.SwapV2)))
		}
		idle := r.CPUIdle != nil && *r.CPUIdle == 1 && version >= cpuIdleVersion
		if idle {
			// CPUWeight=0 is how systemd spells cpu.idle=1.
			props = append(props, prop("CPUWeight", uint64(0)))
		}
		if r.CPUWeight != 0 {
			if idle {
				warn("systemd cannot apply both CPUWeight and cpu idle; CPUWeight is left to the cgroup file")
			} else {
				props = append(props, prop("CPUWeight", r.CPUWeight))
			}
		}
	} else {
		if r.Memory != 0 {
			props = append(props, prop("MemoryLimit", uint64(r.Memory)))
		}
		if r.CPUShares != 0 {
			props = append(props, prop("CPUShares", r.CPUShares))
		}
	}
	props = addCPUQuota(props, &quota, r.Period, version)
	if !r.V2 && r.BlkioWeight != 0 {
		props = append(props, prop("BlockIOWeight", uint64(r.BlkioWeight)))
	}
	if r.PidsLimit > 0 || r.PidsLimit == -1 {
		// -1 becomes UINT64_MAX, systemd's "infinity".
		props = append(props, prop("TasksMax", uint64(r.PidsLimit)))
	}
	if props, err = addCpuset(props, r.Cpus, r.Mems, version, warn); err != nil {
		return nil, 0, err
	}
	if r.V2 && r.Unified != nil {
		up, err := unifiedProperties(r.Unified, version, warn)
		if err != nil {
			return nil, 0, err
		}
		props = append(props, up...)
	}
	return props, quota, nil
}

// addCPUQuota is runc's addCPUQuota.
func addCPUQuota(props []sd.Property, quota *int64, period uint64, version int) []sd.Property {
	if period != 0 && version >= 242 {
		props = append(props, prop("CPUQuotaPeriodUSec", period))
	}
	if *quota == 0 && period == 0 {
		return props
	}
	perSec := uint64(math.MaxUint64) // USEC_INFINITY
	if *quota > 0 {
		if period == 0 {
			period = defCPUQuotaPeriod
		}
		perSec = uint64(*quota*1000000) / period
		if perSec%10000 != 0 {
			perSec = (perSec/10000 + 1) * 10000
			*quota = int64(perSec * period / 1000000)
		}
	}
	return append(props, prop("CPUQuotaPerSecUSec", perSec))
}

func addCpuset(props []sd.Property, cpus, mems string, version int, warn func(string, ...any)) ([]sd.Property, error) {
	if cpus == "" && mems == "" {
		return props, nil
	}
	if version < 244 {
		warn("systemd %d is too old for AllowedCPUs/AllowedMemoryNodes; the cpuset files still get them", version)
		return props, nil
	}
	for _, x := range []struct{ name, field, v string }{{"AllowedCPUs", "cpu.cpus", cpus}, {"AllowedMemoryNodes", "cpu.mems", mems}} {
		if x.v == "" {
			continue
		}
		bits, err := RangeToBits(x.v)
		if err != nil {
			return nil, fmt.Errorf("linux.resources.%s %q: %w", x.field, x.v, err)
		}
		props = append(props, prop(x.name, bits))
	}
	return props, nil
}

// RangeToBits turns a cpuset list ("0-3,7") into the byte array systemd's
// AllowedCPUs takes: bit n of byte n/8 set for CPU n, as runc's
// RangeToBits produces it.
func RangeToBits(s string) ([]byte, error) {
	var out []byte
	set := func(n uint64) {
		for uint64(len(out)) <= n/8 {
			out = append(out, 0)
		}
		out[n/8] |= 1 << (n % 8)
	}
	for r := range strings.SplitSeq(s, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(r, "-")
		start, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			return nil, err
		}
		end := start
		if isRange {
			if end, err = strconv.ParseUint(hi, 10, 32); err != nil {
				return nil, err
			}
			if start > end {
				return nil, errors.New("invalid range: " + r)
			}
		}
		for i := start; i <= end; i++ {
			set(i)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("empty value")
	}
	return out, nil
}

// unifiedProperties is runc's unifiedResToSystemdProps: the unified keys
// systemd has a property for; the rest only go to the files. Keys are
// handled in sorted order so the property list is deterministic.
func unifiedProperties(res map[string]string, version int, warn func(string, ...any)) ([]sd.Property, error) {
	var props []sd.Property
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range res {
			if !yield(k) {
				return
			}
		}
	}) {
		v := strings.TrimSpace(res[k])
		if strings.Contains(k, "/") {
			return nil, fmt.Errorf("unified resource %q must be a file name (no slashes)", k)
		}
		if strings.IndexByte(k, '.') <= 0 {
			return nil, fmt.Errorf("unified resource %q must be in the form CONTROLLER.PARAMETER", k)
		}
		switch k {
		case "cpu.idle":
			if v == "1" && version >= cpuIdleVersion {
				props = append(props, prop("CPUWeight", uint64(0)))
			}
		case "cpu.max":
			f := strings.Fields(v)
			if len(f) < 1 || len(f) > 2 {
				return nil, fmt.Errorf("unified resource %q value invalid: %q", k, v)
			}
			quota, period := int64(0), defCPUQuotaPeriod
			var err error
			if f[0] != "max" {
				if quota, err = strconv.ParseInt(f[0], 10, 64); err != nil {
					return nil, fmt.Errorf("unified resource %q quota: %w", k, err)
				}
			}
			if len(f) == 2 {
				if period, err = strconv.ParseUint(f[1], 10, 64); err != nil {
					return nil, fmt.Errorf("unified resource %q period: %w", k, err)
				}
			}
			props = addCPUQuota(props, &quota, period, version)
		case "cpu.weight":
			if strings.TrimSpace(res["cpu.idle"]) == "1" && version >= cpuIdleVersion {
				warn("systemd cannot apply both cpu.weight and cpu.idle; cpu.weight is left to the cgroup file")
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("unified resource %q: %w", k, err)
			}
			props = append(props, prop("CPUWeight", n))
		case "cpuset.cpus", "cpuset.mems":
			name := map[string]string{"cpuset.cpus": "AllowedCPUs", "cpuset.mems": "AllowedMemoryNodes"}[k]
			bits, err := RangeToBits(v)
			if err != nil {
				return nil, fmt.Errorf("unified resource %q=%q: %w", k, v, err)
			}
			if version >= 244 {
				props = append(props, prop(name, bits))
			}
		case "memory.high", "memory.low", "memory.min", "memory.max", "memory.swap.max", "pids.max":
			n := uint64(math.MaxUint64)
			if v != "max" {
				var err error
				if n, err = strconv.ParseUint(v, 10, 64); err != nil {
					return nil, fmt.Errorf("unified resource %q: %w", k, err)
				}
			}
			name := map[string]string{
				"memory.high": "MemoryHigh", "memory.low": "MemoryLow", "memory.min": "MemoryMin",
				"memory.max": "MemoryMax", "memory.swap.max": "MemorySwapMax", "pids.max": "TasksMax",
			}[k]
			props = append(props, prop(name, n))
		default:
			// memory.oom.group is a start-time property (OOMPolicy,
			// see StartProperties); anything else only exists as a file.
		}
	}
	return props, nil
}

// deviceAllow is one DeviceAllow= entry, D-Bus signature (ss).
type deviceAllow struct {
	Path  string
	Perms string
}

// deviceProperties is runc's devices/systemd.go systemdProperties: always
// strict mode with the list cleared first (an existing unit keeps old
// DeviceAllow= entries otherwise). systemd has no deny lists: an
// allow-all list becomes DevicePolicy=auto, any other deny list a
// temporary deny-all that the cgroup's own device rules (written next)
// replace.
func deviceProperties(d *Devices, version int, warn func(string, ...any)) []sd.Property {
	if warn == nil {
		warn = func(string, ...any) {}
	}
	if d.DefaultAllow {
		if len(d.Exceptions) == 0 {
			return []sd.Property{prop("DevicePolicy", "auto"), prop("DeviceAllow", []deviceAllow{})}
		}
		warn("systemd has no device deny lists: the unit gets a deny-all policy; the cgroup's device rules are exact")
		return []sd.Property{prop("DeviceAllow", []deviceAllow{}), prop("DevicePolicy", "strict")}
	}
	props := []sd.Property{prop("DeviceAllow", []deviceAllow{}), prop("DevicePolicy", "strict")}
	var list []deviceAllow
	for _, r := range d.Exceptions {
		kind := map[byte]string{'c': "char", 'b': "block"}[r.Type]
		if kind == "" {
			continue
		}
		e := deviceAllow{Perms: r.Perms}
		switch {
		case r.Major == -1:
			// "char-*" needs systemd 240.
			if version < 240 {
				warn("systemd %d cannot express %c *:* %s; left to the cgroup's rules", version, r.Type, r.Perms)
				continue
			}
			e.Path = kind + "-*"
		case r.Minor == -1:
			group := deviceGroup(r.Type, r.Major)
			if group == "" {
				warn("no device group for %c %d:* in /proc/devices; left to the cgroup's rules", r.Type, r.Major)
				continue
			}
			e.Path = kind + "-" + group
		default:
			if version < 240 {
				warn("systemd %d cannot express %c %d:%d by number; left to the cgroup's rules", version, r.Type, r.Major, r.Minor)
				continue
			}
			e.Path = fmt.Sprintf("/dev/%s/%d:%d", kind, r.Major, r.Minor)
		}
		list = append(list, e)
	}
	return append(props, prop("DeviceAllow", list))
}

// procDevices is read by deviceGroup; a variable for tests.
var procDevices = "/proc/devices"

// deviceGroup is the /proc/devices name of a major number, which is what
// systemd's "char-NAME" matches (runc's findDeviceGroup).
func deviceGroup(typ byte, major int64) string {
	data, err := os.ReadFile(procDevices)
	if err != nil {
		return ""
	}
	want := map[byte]string{'c': "Character devices:", 'b': "Block devices:"}[typ]
	in := false
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if strings.HasSuffix(line, "devices:") {
			in = line == want
			continue
		}
		if !in {
			continue
		}
		num, name, ok := strings.Cut(line, " ")
		if ok && num == strconv.FormatInt(major, 10) {
			return name
		}
	}
	return ""
}

// AnnotationPrefix marks spec annotations that set unit properties.
const AnnotationPrefix = "org.systemd.property."

// AnnotationProperties is runc's initSystemdProps: each
// org.systemd.property.<Name> annotation is a property whose value is in
// GVariant text form ("uint64 123", "'inactive-or-failed'"); a name ending
// in Sec (after a lowercase letter) with a numeric value is converted to
// its USec form. Sorted by name for a stable order.
func AnnotationProperties(annotations map[string]string) ([]sd.Property, error) {
	var keys []string
	for k := range annotations {
		if strings.HasPrefix(k, AnnotationPrefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var props []sd.Property
	for _, k := range keys {
		name := strings.TrimPrefix(k, AnnotationPrefix)
		if err := checkPropertyName(name); err != nil {
			return nil, fmt.Errorf("annotation %s: property name %w", k, err)
		}
		v, err := dbus.ParseVariant(annotations[k], dbus.Signature{})
		if err != nil {
			return nil, fmt.Errorf("annotation %s=%s: value: %w", k, annotations[k], err)
		}
		if trim := strings.TrimSuffix(name, "Sec"); len(trim) < len(name) && trim[len(trim)-1] >= 'a' && trim[len(trim)-1] <= 'z' {
			usec, err := secToUSec(v)
			if err != nil {
				return nil, fmt.Errorf("annotation %s=%s: %w", k, annotations[k], err)
			}
			name, v = trim+"USec", dbus.MakeVariant(usec)
		}
		props = append(props, sd.Property{Name: name, Value: v})
	}
	return props, nil
}

func checkPropertyName(s string) error {
	if len(s) < 3 {
		return errors.New("is too short")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return errors.New("contains a non-alphabetic character")
		}
	}
	return nil
}

// secToUSec converts a numeric GVariant in seconds to microseconds, as
// runc's convertSecToUSec.
func secToUSec(v dbus.Variant) (uint64, error) {
	const m = 1_000_000
	switch x := v.Value().(type) {
	case float64:
		return uint64(x * m), nil // truncated, as runc
	case int32:
		return uint64(x) * m, nil
	case uint32:
		return uint64(x) * m, nil
	case int64:
		return uint64(x) * m, nil
	case uint64:
		return x * m, nil
	case uint16:
		return uint64(x) * m, nil
	case int16:
		return uint64(x) * m, nil
	case byte:
		return uint64(x) * m, nil
	}
	return 0, fmt.Errorf("a *Sec property takes a number of seconds, got %s", v.Signature())
}
