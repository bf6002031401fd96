package cgroups

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/userns"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// devType is a device rule's type as the v1 devices controller spells it.
type devType rune

const (
	wildcardDevice devType = 'a'
	blockDevice    devType = 'b'
	charDevice     devType = 'c'
	fifoDevice     devType = 'p' // never valid in a rule; kept to reject it by name
)

// wildcard is a major or minor number matching every device ("*").
const wildcard = -1

// devPerms is a rule's access: a subset of "rwm", always in that order
// once normalised, since the kernel prints and compares it that way.
type devPerms string

func (p devPerms) bits() uint8 {
	var b uint8
	for _, c := range p {
		switch c {
		case 'r':
			b |= 1
		case 'w':
			b |= 2
		case 'm':
			b |= 4
		}
	}
	return b
}

func permsOf(b uint8) devPerms {
	var s string
	if b&1 != 0 {
		s += "r"
	}
	if b&2 != 0 {
		s += "w"
	}
	if b&4 != 0 {
		s += "m"
	}
	return devPerms(s)
}

func (p devPerms) union(o devPerms) devPerms      { return permsOf(p.bits() | o.bits()) }
func (p devPerms) difference(o devPerms) devPerms { return permsOf(p.bits() &^ o.bits()) }

// devRule is one entry of linux.resources.devices.
type devRule struct {
	typ          devType
	major, minor int64 // wildcard for "*"
	perms        devPerms
	allow        bool
}

// cgroupString is the rule as devices.allow/deny and devices.list write it.
func (r devRule) cgroupString() string {
	major, minor := "*", "*"
	if r.major != wildcard {
		major = strconv.FormatInt(r.major, 10)
	}
	if r.minor != wildcard {
		minor = strconv.FormatInt(r.minor, 10)
	}
	return string(r.typ) + " " + major + ":" + minor + " " + string(r.perms)
}

// allowedDevices mirrors runc's specconv.AllowedDevices. runc appends these
// to every container's device rules and users cannot opt out; containers
// written for runc rely on them (e.g. /dev/null without a config entry), so
// we keep the list and its order identical. path is the node a rule is for
// ("" for the catch-all rules), used to drop rules the spec overrides.
var allowedDevices = []struct {
	path string
	rule devRule
}{
	// mknod for any device; access is still gated by the rules below.
	{"", devRule{charDevice, wildcard, wildcard, "m", true}},
	{"", devRule{blockDevice, wildcard, wildcard, "m", true}},
	{"/dev/null", devRule{charDevice, 1, 3, "rwm", true}},
	{"/dev/random", devRule{charDevice, 1, 8, "rwm", true}},
	{"/dev/full", devRule{charDevice, 1, 7, "rwm", true}},
	{"/dev/tty", devRule{charDevice, 5, 0, "rwm", true}},
	{"/dev/zero", devRule{charDevice, 1, 5, "rwm", true}},
	{"/dev/urandom", devRule{charDevice, 1, 9, "rwm", true}},
	{"", devRule{charDevice, 136, wildcard, "rwm", true}}, // /dev/pts/*
	{"", devRule{charDevice, 5, 2, "rwm", true}},          // /dev/ptmx
	// /dev/net/tun, with no path (a spec's own entry does not drop it):
	// runc 1.2.0 dropped it and 1.2.1 put it back because engines had come
	// to rely on it (opencontainers/runc#3468, #4555); 1.1.5 and 1.5 have it.
	{"", devRule{charDevice, 10, 200, "rwm", true}},
}

// defaultDeviceRules returns the default rules, dropping those whose device
// node the spec lists itself. runc does this de-duplication (the spec entry
// takes priority), which means such a device is only accessible if
// resources.devices allows it; we match that.
func defaultDeviceRules(specDevices []specs.LinuxDevice) []devRule {
	rules := make([]devRule, 0, len(allowedDevices))
	for _, ad := range allowedDevices {
		if ad.path != "" && slices.ContainsFunc(specDevices, func(d specs.LinuxDevice) bool { return d.Path == ad.path }) {
			continue
		}
		rules = append(rules, ad.rule)
	}
	return rules
}

// deviceRule converts the i-th spec rule as runc's specconv does: a missing
// type is "a", a missing number is a wildcard.
func deviceRule(i int, d specs.LinuxDeviceCgroup) (devRule, error) {
	r := devRule{major: wildcard, minor: wildcard, perms: devPerms(d.Access), allow: d.Allow}
	if d.Major != nil {
		r.major = *d.Major
	}
	if d.Minor != nil {
		r.minor = *d.Minor
	}
	if d.Access == "" {
		return devRule{}, fmt.Errorf("device access at %d field cannot be empty", i)
	}
	switch d.Type {
	case "", "a":
		r.typ = wildcardDevice
	case "b":
		r.typ = blockDevice
	case "c":
		r.typ = charDevice
	default:
		return devRule{}, fmt.Errorf("invalid cgroup device type %q", d.Type)
	}
	return r, nil
}

type devKey struct {
	typ          devType
	major, minor int64
}

type devException struct {
	devKey
	perms devPerms
}

// devState is the v1 devices controller's model: a default behaviour plus
// exceptions to it. Evaluating the rule list the way the kernel evaluates
// writes to devices.allow/deny gives one meaning to a rule list on v1 and
// v2, which is what runc's emulator guarantees as well.
type devState struct {
	defaultAllow bool
	exceptions   []devException
}

func buildDevState(rules []devRule) (*devState, error) {
	s := &devState{} // no rules: deny everything, like an empty allowlist
	for _, r := range rules {
		if r.typ != wildcardDevice && r.typ != blockDevice && r.typ != charDevice {
			return nil, fmt.Errorf("device rule %q: type %q cannot be used in cgroups", r.cgroupString(), r.typ)
		}
		for _, p := range r.perms {
			if !strings.ContainsRune("rwm", p) {
				return nil, fmt.Errorf("device rule %q: invalid access %q", r.cgroupString(), p)
			}
		}
		if r.typ == wildcardDevice {
			// "a" switches the default and forgets every exception.
			s.defaultAllow = r.allow
			s.exceptions = nil
			continue
		}
		k := devKey{r.typ, r.major, r.minor}
		i := slices.IndexFunc(s.exceptions, func(e devException) bool { return e.devKey == k })
		if r.allow != s.defaultAllow {
			// Exceptions for the same node merge their access bits.
			if i >= 0 {
				s.exceptions[i].perms = s.exceptions[i].perms.union(r.perms)
			} else {
				s.exceptions = append(s.exceptions, devException{k, r.perms.union("")})
			}
			continue
		}
		// A rule agreeing with the default only narrows an exact match;
		// like the kernel, it never punches holes in wildcard exceptions.
		if i >= 0 {
			s.exceptions[i].perms = s.exceptions[i].perms.difference(r.perms)
			if s.exceptions[i].perms == "" {
				s.exceptions = slices.Delete(s.exceptions, i, i+1)
			}
		}
	}
	return s, nil
}

func (e devException) cgroupString() string {
	return devRule{typ: e.typ, major: e.major, minor: e.minor, perms: e.perms}.cgroupString()
}

// setDevicesV1 rewrites a v1 devices cgroup from scratch: first the default
// (which also drops every old exception), then the exceptions, one write(2)
// per rule on a single open file (the kernel parses each write as one
// rule). A running container may briefly see the bare default during an
// update; a new one has no processes yet.
func setDevicesV1(f cgfs, path string, r *resources) error {
	if r.skipDevices || userns.RunningInUserNS() {
		return nil
	}
	s, err := buildDevState(r.devices)
	if err != nil {
		return err
	}
	defFile, excFile := "devices.deny", "devices.allow"
	if s.defaultAllow {
		defFile, excFile = excFile, defFile
	}
	if err := f.write(path, defFile, "a"); err != nil {
		return err
	}
	if len(s.exceptions) > 0 {
		lines := make([]string, len(s.exceptions))
		for i, e := range s.exceptions {
			lines[i] = e.cgroupString()
		}
		if err := f.writeLines(path, excFile, lines); err != nil {
			return err
		}
	}
	// The kernel reports an allow-all cgroup as "a *:* rwm"; a mismatch
	// means the mode write silently did not take.
	list, err := f.read(path, "devices.list")
	if err != nil {
		return err
	}
	if slices.Contains(strings.Split(strings.TrimSpace(list), "\n"), "a *:* rwm") != s.defaultAllow {
		return errors.New("resulting devices cgroup doesn't match target mode")
	}
	return nil
}

// setDevicesV2 replaces the cgroup's device filter program.
func setDevicesV2(dirPath string, r *resources) error {
	if r.skipDevices {
		return nil
	}
	s, err := buildDevState(r.devices)
	if err != nil {
		return err
	}
	insns, err := s.program()
	if err != nil {
		return err
	}
	if err := attachDeviceFilter(dirPath, insns); err != nil {
		// As runc/crun do: without bpf(2) (user namespaces) an allow-only
		// rule set is no loss, since such a container cannot reach device
		// nodes it was not given anyway.
		if userns.RunningInUserNS() && s.defaultAllow && len(s.exceptions) == 0 {
			return nil
		}
		return err
	}
	return nil
}
