package security

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Warn, when set, receives the things runc logs as warnings rather than
// failing on: capabilities the kernel or this process cannot grant and
// ambient capabilities that could not be raised. The runtime spec asks for a
// warning there, but the package cannot know where the init process may
// write, so it stays silent unless the caller says otherwise.
var Warn func(msg string)

func warnf(format string, args ...any) {
	if Warn != nil {
		Warn(fmt.Sprintf(format, args...))
	}
}

// CapSet is process.capabilities with the names resolved.
type CapSet struct {
	Bounding    []capability.Cap
	Effective   []capability.Cap
	Inheritable []capability.Cap
	Permitted   []capability.Cap
	Ambient     []capability.Cap
}

func capName(c capability.Cap) string {
	return "CAP_" + strings.ToUpper(c.String())
}

// capByName maps the spelling the spec uses to the number. It covers every
// capability the library knows, not only those the running kernel has, so
// that a config written for a newer kernel still parses; applying it skips
// what the kernel lacks.
var capByName = sync.OnceValue(func() map[string]capability.Cap {
	m := make(map[string]capability.Cap)
	for _, c := range capability.ListKnown() {
		m[capName(c)] = c
	}
	return m
})

// KnownCapabilities lists the names ParseCaps accepts, for `features`.
func KnownCapabilities() []string {
	var out []string
	for _, c := range capability.ListKnown() {
		out = append(out, capName(c))
	}
	return out
}

// ParseCaps resolves the names in caps. Names are matched exactly as runc
// does ("CAP_CHOWN", not "chown" or "cap_chown"). A nil caps yields an empty
// set: hako treats an absent process.capabilities as "no capabilities".
func ParseCaps(caps *specs.LinuxCapabilities) (*CapSet, error) {
	set := &CapSet{}
	if caps == nil {
		return set, nil
	}
	var err error
	for _, f := range []struct {
		field string
		names []string
		dst   *[]capability.Cap
	}{
		{"bounding", caps.Bounding, &set.Bounding},
		{"effective", caps.Effective, &set.Effective},
		{"inheritable", caps.Inheritable, &set.Inheritable},
		{"permitted", caps.Permitted, &set.Permitted},
		{"ambient", caps.Ambient, &set.Ambient},
	} {
		if *f.dst, err = parseCapNames(f.names); err != nil {
			return nil, fmt.Errorf("process.capabilities.%s: %w", f.field, err)
		}
	}
	return set, nil
}

func parseCapNames(names []string) ([]capability.Cap, error) {
	out := make([]capability.Cap, 0, len(names))
	for _, n := range names {
		c, ok := capByName()[n]
		if !ok {
			return nil, fmt.Errorf("unknown capability %q", n)
		}
		out = append(out, c)
	}
	return out, nil
}

// capMask is a capability set as the kernel stores it: bit n is cap n.
type capMask uint64

func maskOf(caps []capability.Cap) capMask {
	var m capMask
	for _, c := range caps {
		m |= 1 << uint(c)
	}
	return m
}

func (m capMask) has(c capability.Cap) bool { return m&(1<<uint(c)) != 0 }

func (m capMask) caps() []capability.Cap {
	var out []capability.Cap
	for c := capability.Cap(0); c < 64; c++ {
		if m.has(c) {
			out = append(out, c)
		}
	}
	return out
}

func (m capMask) names() string {
	var s []string
	for _, c := range m.caps() {
		s = append(s, capName(c))
	}
	return strings.Join(s, ", ")
}

// supportedMask is every capability the running kernel knows.
func supportedMask() (capMask, error) {
	last, err := capability.LastCap()
	if err != nil {
		return 0, err
	}
	return capMask(1)<<(uint(last)+1) - 1, nil
}

// threadCaps reads the calling thread's sets. capget with pid 0 and
// PR_CAPBSET_READ are per-thread; /proc/self/status (which the capability
// library's Load reads) describes the thread-group leader instead, which
// is not necessarily the thread we are about to exec from.
type threadCaps struct {
	eff, perm, inh, bnd capMask
}

func readThreadCaps() (threadCaps, error) {
	var tc threadCaps
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return tc, fmt.Errorf("capget: %w", err)
	}
	tc.eff = capMask(data[0].Effective) | capMask(data[1].Effective)<<32
	tc.perm = capMask(data[0].Permitted) | capMask(data[1].Permitted)<<32
	tc.inh = capMask(data[0].Inheritable) | capMask(data[1].Inheritable)<<32
	last, err := capability.LastCap()
	if err != nil {
		return tc, err
	}
	for c := capability.Cap(0); c <= last; c++ {
		in, err := capability.GetBound(c)
		if err != nil {
			return tc, fmt.Errorf("reading bounding set: %w", err)
		}
		if in {
			tc.bnd |= 1 << uint(c)
		}
	}
	return tc, nil
}

// DropBounding removes from the calling thread's bounding set every
// capability not in caps.Bounding (all of them when caps is nil). It needs
// CAP_SETPCAP, so it belongs before the switch away from root.
//
// Unlike the capability library (and so runc), it fails rather than quietly
// doing nothing when it lacks CAP_SETPCAP; it does not try to drop what is
// already gone, so a runtime that was itself started with a reduced
// bounding set still works.
func DropBounding(caps *specs.LinuxCapabilities) error {
	set, err := ParseCaps(caps)
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	keep := maskOf(set.Bounding)
	last, err := capability.LastCap()
	if err != nil {
		return err
	}
	for c := capability.Cap(0); c <= last; c++ {
		if keep.has(c) {
			continue
		}
		in, err := capability.GetBound(c)
		if err != nil {
			return fmt.Errorf("reading bounding set: %w", err)
		}
		if !in {
			continue
		}
		if err := capability.DropBound(c); err != nil {
			return fmt.Errorf("dropping %s from the bounding set: %w", capName(c), err)
		}
	}
	if lost := keep &^ (capMask(1)<<(uint(last)+1) - 1); lost != 0 {
		warnf("capabilities not supported by the running kernel ignored: %s", lost.names())
	}
	return nil
}

// ApplyCaps sets the calling thread's permitted, effective and inheritable
// sets to exactly those in caps (all empty when caps is nil), then resets
// and raises the ambient set. It is meant to run after the uid switch made
// with PR_SET_KEEPCAPS, as runc's finalizeNamespace does; it leaves the
// bounding set to DropBounding.
//
// Following runc and the runtime spec ("SHOULD NOT fail if the container
// configuration requests capabilities that cannot be granted"), a
// capability the kernel does not know, or that this thread does not hold,
// is left out with a warning instead of failing the container. Ambient
// capabilities are raised one at a time and failures are only warned
// about, again as runc does: the kernel refuses any that are not both
// permitted and inheritable.
func ApplyCaps(caps *specs.LinuxCapabilities) error {
	set, err := ParseCaps(caps)
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	cur, err := readThreadCaps()
	if err != nil {
		return err
	}
	supported, err := supportedMask()
	if err != nil {
		return err
	}
	want := struct{ eff, perm, inh, amb capMask }{
		maskOf(set.Effective), maskOf(set.Permitted), maskOf(set.Inheritable), maskOf(set.Ambient),
	}
	if lost := (want.eff | want.perm | want.inh | want.amb) &^ supported; lost != 0 {
		warnf("capabilities not supported by the running kernel ignored: %s", lost.names())
	}

	// capset(2) only lets permitted shrink, and inheritable may only grow
	// within the bounding set and, without CAP_SETPCAP, within permitted.
	perm := want.perm & supported & cur.perm
	eff := want.eff & supported & cur.perm
	allowedInh := cur.inh | cur.bnd
	if !cur.eff.has(capability.CAP_SETPCAP) {
		allowedInh &= cur.inh | cur.perm
	}
	inh := want.inh & supported & allowedInh
	if lost := (want.perm|want.eff)&supported&^cur.perm | want.inh&supported&^allowedInh; lost != 0 {
		warnf("capabilities this process cannot grant ignored: %s", lost.names())
	}
	if extra := eff &^ perm; extra != 0 {
		return fmt.Errorf("process.capabilities.effective: %s not in the permitted set", extra.names())
	}

	pid, err := capability.NewPid2(0) // pid 0: capset acts on the calling thread
	if err != nil {
		return err
	}
	pid.Clear(capability.CAPS)
	pid.Set(capability.EFFECTIVE, eff.caps()...)
	pid.Set(capability.PERMITTED, perm.caps()...)
	pid.Set(capability.INHERITABLE, inh.caps()...)
	if err := pid.Apply(capability.CAPS); err != nil {
		return fmt.Errorf("setting capabilities (effective %q, permitted %q, inheritable %q): %w",
			eff.names(), perm.names(), inh.names(), err)
	}

	// EINVAL: the kernel predates ambient capabilities (4.3); there is
	// nothing to reset then, and runc carries on too.
	if err := capability.ResetAmbient(); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	for _, c := range set.Ambient {
		switch {
		case !supported.has(c):
			// warned about above
		case !perm.has(c) || !inh.has(c):
			warnf("ambient capability %s not raised: it must be both permitted and inheritable", capName(c))
		default:
			if err := capability.SetAmbient(true, c); err != nil {
				warnf("cannot raise ambient capability %s: %v", capName(c), err)
			}
		}
	}
	return nil
}

// SetKeepCaps keeps the calling thread's permitted set across the coming
// setuid away from root, so ApplyCaps has something to choose from.
func SetKeepCaps() error {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_KEEPCAPS, 1): %w", err)
	}
	return nil
}

// ClearKeepCaps undoes SetKeepCaps once the uid has changed, so that a later
// setuid inside the container behaves as the program expects.
func ClearKeepCaps() error {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_KEEPCAPS, 0): %w", err)
	}
	return nil
}

// SetNoNewPrivileges sets no_new_privs on the calling thread; execve passes
// it on, and it can never be unset.
func SetNoNewPrivileges() error {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	return nil
}

// CapMasks is process.capabilities as bit masks, for the plan nsexec.c
// applies itself (nsenter.EncodeCPlan), which does with them what
// DropBounding and ApplyCaps do.
type CapMasks struct {
	Bounding, Effective, Permitted, Inheritable, Ambient uint64
}

// MasksOf parses caps as ParseCaps does.
func MasksOf(caps *specs.LinuxCapabilities) (CapMasks, error) {
	set, err := ParseCaps(caps)
	if err != nil {
		return CapMasks{}, err
	}
	return CapMasks{
		Bounding: uint64(maskOf(set.Bounding)), Effective: uint64(maskOf(set.Effective)),
		Permitted: uint64(maskOf(set.Permitted)), Inheritable: uint64(maskOf(set.Inheritable)),
		Ambient: uint64(maskOf(set.Ambient)),
	}, nil
}

// KernelCaps is the last capability the running kernel knows, and the
// names of 0 to last, as errors here spell them.
func KernelCaps() (int, []string, error) {
	last, err := capability.LastCap()
	if err != nil {
		return 0, nil, err
	}
	names := make([]string, 0, last+1)
	for c := capability.Cap(0); c <= last; c++ {
		names = append(names, capName(c))
	}
	return int(last), names, nil
}

// Prog is the compiled filter's instructions and seccomp(2) flags, for the
// plan nsexec.c applies itself; ok is false for a filter with notify rules,
// whose listener only the Go side passes on.
func (s *Seccomp) Prog() (insns []unix.SockFilter, flags uintptr, ok bool) {
	if s.Notify() {
		return nil, 0, false
	}
	return s.prog, s.flags, true
}
