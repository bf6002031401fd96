package cgroups

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/moby/sys/userns"
	"github.com/opencontainers/cgroups"
	devices "github.com/opencontainers/cgroups/devices/config"
	"golang.org/x/sys/unix"
)

// The library's own implementation (package
// github.com/opencontainers/cgroups/devices) needs github.com/cilium/ebpf,
// which this module does not carry. Until it does, these hooks provide the
// same kernel semantics; they only fill the hooks when nothing else has, so
// importing that package later replaces them without further changes.
func init() {
	if cgroups.DevicesSetV1 == nil {
		cgroups.DevicesSetV1 = setDevicesV1
	}
	if cgroups.DevicesSetV2 == nil {
		cgroups.DevicesSetV2 = setDevicesV2
	}
}

type devKey struct {
	typ          devices.Type
	major, minor int64
}

type devException struct {
	devKey
	perms devices.Permissions
}

// devState is the v1 devices controller's model: a default behaviour plus
// exceptions to it. Evaluating the rule list the way the kernel evaluates
// writes to devices.allow/deny gives one meaning to a rule list on v1 and
// v2, which is what runc's emulator guarantees as well.
type devState struct {
	defaultAllow bool
	exceptions   []devException
}

func buildDevState(rules []*devices.Rule) (*devState, error) {
	s := &devState{} // no rules: deny everything, like an empty allowlist
	for _, r := range rules {
		if !r.Type.CanCgroup() {
			return nil, fmt.Errorf("device rule %q: type %q cannot be used in cgroups", r.CgroupString(), r.Type)
		}
		for _, p := range r.Permissions {
			if !strings.ContainsRune("rwm", p) {
				return nil, fmt.Errorf("device rule %q: invalid access %q", r.CgroupString(), p)
			}
		}
		if r.Type == devices.WildcardDevice {
			// "a" switches the default and forgets every exception.
			s.defaultAllow = r.Allow
			s.exceptions = nil
			continue
		}
		k := devKey{r.Type, r.Major, r.Minor}
		i := slices.IndexFunc(s.exceptions, func(e devException) bool { return e.devKey == k })
		if r.Allow != s.defaultAllow {
			// Exceptions for the same node merge their access bits.
			if i >= 0 {
				s.exceptions[i].perms = s.exceptions[i].perms.Union(r.Permissions)
			} else {
				s.exceptions = append(s.exceptions, devException{k, r.Permissions.Union("")})
			}
			continue
		}
		// A rule agreeing with the default only narrows an exact match;
		// like the kernel, it never punches holes in wildcard exceptions.
		if i >= 0 {
			s.exceptions[i].perms = s.exceptions[i].perms.Difference(r.Permissions)
			if s.exceptions[i].perms == "" {
				s.exceptions = slices.Delete(s.exceptions, i, i+1)
			}
		}
	}
	return s, nil
}

func (e devException) cgroupString() string {
	r := devices.Rule{Type: e.typ, Major: e.major, Minor: e.minor, Permissions: e.perms}
	return r.CgroupString()
}

// setDevicesV1 rewrites a v1 devices cgroup from scratch: first the default
// (which also drops every old exception), then the exceptions. A running
// container may briefly see the bare default during an update; a new one
// has no processes yet.
func setDevicesV1(path string, r *cgroups.Resources) error {
	if userns.RunningInUserNS() || r.SkipDevices {
		return nil
	}
	s, err := buildDevState(r.Devices)
	if err != nil {
		return err
	}
	defFile, excFile := "devices.deny", "devices.allow"
	if s.defaultAllow {
		defFile, excFile = excFile, defFile
	}
	if err := cgroups.WriteFile(path, defFile, "a"); err != nil {
		return err
	}
	if err := writeRules(path, excFile, s.exceptions); err != nil {
		return err
	}
	// The kernel reports an allow-all cgroup as "a *:* rwm"; a mismatch
	// means the mode write silently did not take.
	list, err := cgroups.ReadFile(path, "devices.list")
	if err != nil {
		return err
	}
	if slices.Contains(strings.Split(strings.TrimSpace(list), "\n"), "a *:* rwm") != s.defaultAllow {
		return errors.New("resulting devices cgroup doesn't match target mode")
	}
	return nil
}

// writeRules writes one exception per write(2) on a single open file: the
// kernel parses each write as one rule, so this is the same sequence of
// rules as a WriteFile per rule, without an open and close for each (the
// default list alone has ten).
func writeRules(path, file string, exceptions []devException) error {
	if len(exceptions) == 0 {
		return nil
	}
	f, err := cgroups.OpenFile(path, file, unix.O_WRONLY)
	if err != nil {
		return err
	}
	for _, e := range exceptions {
		rule := e.cgroupString()
		if _, err := f.WriteString(rule); err != nil {
			_ = f.Close()
			// Worded as cgroups.WriteFile words it.
			return fmt.Errorf("failed to write %q: %w", rule, err)
		}
	}
	_ = f.Close() // as cgroups.WriteFile: nothing is buffered
	return nil
}

// setDevicesV2 replaces the cgroup's device filter program.
func setDevicesV2(dirPath string, r *cgroups.Resources) error {
	if r.SkipDevices {
		return nil
	}
	s, err := buildDevState(r.Devices)
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
