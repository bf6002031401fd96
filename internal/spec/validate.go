package spec

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// validator carries what several checks need: the namespaces the container
// will have, looked up once.
type validator struct {
	s      *specs.Spec
	bundle string
	// ns maps each configured namespace type to its path ("" = new one).
	ns map[specs.LinuxNamespaceType]string
}

// Validate checks a decoded spec for the create/run path. bundle is used to
// check that root.path exists and is a directory. It returns the first
// problem found, in a fixed order, so that the same config always yields the
// same message.
func Validate(s *specs.Spec, bundle string) error {
	if s == nil {
		return fieldErr("", "config is empty")
	}
	v := &validator{s: s, bundle: bundle, ns: map[specs.LinuxNamespaceType]string{}}
	checks := []func() error{
		v.version,
		v.root,
		v.process,
		v.namespaces, // fills v.ns; everything below may depend on it
		v.idMappings,
		v.uts,
		v.mounts,
		v.linuxPaths,
		v.sysctl,
		v.devices,
		v.netDevices,
		v.resources,
		v.seccomp,
		v.timeOffsets,
		v.personality,
		v.intelRdt,
		v.memoryPolicy,
		v.hooks,
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (v *validator) has(t specs.LinuxNamespaceType) bool {
	_, ok := v.ns[t]
	return ok
}

// needNS is the shared wording for "this setting only makes sense in a
// private namespace".
func needNS(field, what string, t specs.LinuxNamespaceType) error {
	return fieldErr(field, "requires a new %s namespace (linux.namespaces has no %q)", what, string(t))
}

func (v *validator) version() error {
	ver := v.s.Version
	if ver == "" {
		return fieldErr("ociVersion", "must not be empty")
	}
	major, _, _ := strings.Cut(ver, ".")
	if n, err := strconv.Atoi(major); err != nil || n != specs.VersionMajor {
		return fieldErr("ociVersion", "unsupported version %q (want %d.x)", ver, specs.VersionMajor)
	}
	return nil
}

func (v *validator) root() error {
	p, err := rootfsAbs(v.s, v.bundle)
	if err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fieldErr("root.path", "%s: %s", p, errnoText(err))
	}
	if !fi.IsDir() {
		return fieldErr("root.path", "%s: not a directory", p)
	}
	return nil
}

func (v *validator) process() error {
	return ValidateProcess(v.s.Process)
}

// ValidateProcess checks one process: the config's, or one given to exec.
func ValidateProcess(p *specs.Process) error {
	if p == nil {
		// Optional in the runtime-spec, but create/run has nothing to start
		// without it (runc: "process property must not be empty").
		return fieldErr("process", "must not be empty")
	}
	if !filepath.IsAbs(p.Cwd) {
		return notAbs("process.cwd", p.Cwd)
	}
	if len(p.Args) == 0 {
		return fieldErr("process.args", "must not be empty")
	}
	if err := checkEnv("process.env", p.Env); err != nil {
		return err
	}
	if err := checkRlimits(p.Rlimits); err != nil {
		return err
	}
	if err := checkCaps(p.Capabilities); err != nil {
		return err
	}
	if p.OOMScoreAdj != nil && (*p.OOMScoreAdj < -1000 || *p.OOMScoreAdj > 1000) {
		return fieldErr("process.oomScoreAdj", "must be in [-1000, 1000], got %d", *p.OOMScoreAdj)
	}
	if err := checkScheduler(p.Scheduler); err != nil {
		return err
	}
	if err := checkCPUAffinity(p.ExecCPUAffinity); err != nil {
		return err
	}
	return checkIOPriority(p.IOPriority)
}

// checkEnv rejects entries execve would mangle: without '=' the kernel
// passes the string through but libc getenv never finds it.
func checkEnv(field string, env []string) error {
	for i, e := range env {
		name, _, ok := strings.Cut(e, "=")
		switch {
		case !ok:
			return fieldErr(at(field, i), "missing '=' in %q", e)
		case name == "":
			return fieldErr(at(field, i), "empty variable name in %q", e)
		case strings.IndexByte(e, 0) >= 0:
			return fieldErr(at(field, i), "contains a NUL byte")
		}
	}
	return nil
}

var rlimitNames = map[string]bool{
	"RLIMIT_AS": true, "RLIMIT_CORE": true, "RLIMIT_CPU": true, "RLIMIT_DATA": true,
	"RLIMIT_FSIZE": true, "RLIMIT_LOCKS": true, "RLIMIT_MEMLOCK": true, "RLIMIT_MSGQUEUE": true,
	"RLIMIT_NICE": true, "RLIMIT_NOFILE": true, "RLIMIT_NPROC": true, "RLIMIT_RSS": true,
	"RLIMIT_RTPRIO": true, "RLIMIT_RTTIME": true, "RLIMIT_SIGPENDING": true, "RLIMIT_STACK": true,
}

func checkRlimits(rl []specs.POSIXRlimit) error {
	seen := map[string]int{}
	for i, r := range rl {
		f := at("process.rlimits", i)
		if !rlimitNames[r.Type] {
			return fieldErr(f+".type", "unknown resource limit %q", r.Type)
		}
		if j, dup := seen[r.Type]; dup {
			// The runtime-spec forbids duplicates: which one wins would
			// otherwise depend on application order.
			return fieldErr(f+".type", "duplicate %q (also at %s)", r.Type, at("process.rlimits", j))
		}
		seen[r.Type] = i
		if r.Soft > r.Hard {
			return fieldErr(f, "soft limit %d exceeds hard limit %d", r.Soft, r.Hard)
		}
	}
	return nil
}

// knownCaps holds "CAP_X" names. Matching is exact, like runc: the kernel
// ABI names are upper case and a lower-case entry is almost always a typo.
// Built on first use: a container process runs every package's init.
var knownCaps = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, c := range capability.ListKnown() {
		m["CAP_"+strings.ToUpper(c.String())] = true
	}
	return m
})

func checkCaps(c *specs.LinuxCapabilities) error {
	if c == nil {
		return nil
	}
	sets := []struct {
		name string
		list []string
	}{
		{"bounding", c.Bounding},
		{"effective", c.Effective},
		{"inheritable", c.Inheritable},
		{"permitted", c.Permitted},
		{"ambient", c.Ambient},
	}
	for _, set := range sets {
		for i, name := range set.list {
			if !knownCaps()[name] {
				return fieldErr(at("process.capabilities."+set.name, i), "unknown capability %q", name)
			}
		}
	}
	return nil
}

// checkScheduler follows runc's validate.scheduler, which follows
// sched_setattr(2).
func checkScheduler(s *specs.Scheduler) error {
	if s == nil {
		return nil
	}
	switch s.Policy {
	case "":
		return fieldErr("process.scheduler.policy", "must not be empty")
	case specs.SchedOther, specs.SchedFIFO, specs.SchedRR, specs.SchedBatch,
		specs.SchedISO, specs.SchedIdle, specs.SchedDeadline:
	default:
		return fieldErr("process.scheduler.policy", "unknown policy %q", string(s.Policy))
	}
	if s.Nice < -20 || s.Nice > 19 {
		return fieldErr("process.scheduler.nice", "must be in [-20, 19], got %d", s.Nice)
	}
	if s.Priority != 0 && s.Policy != specs.SchedFIFO && s.Policy != specs.SchedRR {
		return fieldErr("process.scheduler.priority", "only allowed with SCHED_FIFO or SCHED_RR")
	}
	if s.Policy != specs.SchedDeadline && (s.Runtime != 0 || s.Deadline != 0 || s.Period != 0) {
		return fieldErr("process.scheduler", "runtime, deadline and period are only allowed with SCHED_DEADLINE")
	}
	for i, f := range s.Flags {
		switch f {
		case specs.SchedFlagResetOnFork, specs.SchedFlagReclaim, specs.SchedFlagDLOverrun,
			specs.SchedFlagKeepPolicy, specs.SchedFlagKeepParams,
			specs.SchedFlagUtilClampMin, specs.SchedFlagUtilClampMax:
		default:
			return fieldErr(at("process.scheduler.flags", i), "unknown flag %q", string(f))
		}
	}
	return nil
}

func checkIOPriority(p *specs.LinuxIOPriority) error {
	if p == nil {
		return nil
	}
	switch p.Class {
	case specs.IOPRIO_CLASS_RT, specs.IOPRIO_CLASS_BE, specs.IOPRIO_CLASS_IDLE:
	default:
		return fieldErr("process.ioPriority.class", "unknown class %q", string(p.Class))
	}
	// ioprio_set(2) levels are 0 (highest) to 7.
	if p.Priority < 0 || p.Priority > 7 {
		return fieldErr("process.ioPriority.priority", "must be in [0, 7], got %d", p.Priority)
	}
	return nil
}

// hostNameMax is the kernel's __NEW_UTS_LEN: sethostname(2) fails beyond it.
const hostNameMax = 64

func (v *validator) uts() error {
	for _, f := range []struct{ field, val string }{
		{"hostname", v.s.Hostname},
		{"domainname", v.s.Domainname},
	} {
		if f.val == "" {
			continue
		}
		// Setting it in the host's UTS namespace would rename the host.
		if !v.has(specs.UTSNamespace) {
			return needNS(f.field, "UTS", specs.UTSNamespace)
		}
		if len(f.val) > hostNameMax {
			return fieldErr(f.field, "must be at most %d bytes, got %d", hostNameMax, len(f.val))
		}
	}
	return nil
}

func (v *validator) hooks() error {
	h := v.s.Hooks
	if h == nil {
		return nil
	}
	lists := []struct {
		name  string
		hooks []specs.Hook
	}{
		{"prestart", h.Prestart}, //nolint:staticcheck // deprecated but still run, so still checked

		{"createRuntime", h.CreateRuntime},
		{"createContainer", h.CreateContainer},
		{"startContainer", h.StartContainer},
		{"poststart", h.Poststart},
		{"poststop", h.Poststop},
	}
	for _, l := range lists {
		for i, hook := range l.hooks {
			f := at("hooks."+l.name, i)
			// Hooks run from the runtime's cwd or inside the container, so a
			// relative path would name different binaries in each.
			if !filepath.IsAbs(hook.Path) {
				return notAbs(f+".path", hook.Path)
			}
			if hook.Timeout != nil && *hook.Timeout <= 0 {
				return fieldErr(f+".timeout", "must be greater than 0, got %d", *hook.Timeout)
			}
			if err := checkEnv(f+".env", hook.Env); err != nil {
				return err
			}
		}
	}
	return nil
}
