package systemd

import (
	"errors"
	"fmt"
	"strings"
)

// Prefix is the unit name prefix of a container whose linux.cgroupsPath is
// empty: runc uses "runc", crun "crun", hako "hako".
const Prefix = "hako"

// Path is linux.cgroupsPath in systemd form, "slice:prefix:name".
type Path struct {
	// Slice is the parent slice unit ("system.slice"), "" for the
	// default (system.slice, or user.slice for a rootless container).
	Slice string
	// Unit is the container's unit: "<prefix>-<name>.scope", or name
	// itself when it ends in ".slice" (runc's getUnitName).
	Unit string
}

// ParsePath reads cgroupsPath as runc's specconv does for its systemd
// driver: "" means ":hako:<id>"; otherwise exactly three colon-separated
// fields. An empty slice field means the default slice.
func ParsePath(cgroupsPath, id string) (Path, error) {
	if cgroupsPath == "" {
		cgroupsPath = ":" + Prefix + ":" + id
	}
	parts := strings.Split(cgroupsPath, ":")
	if len(parts) != 3 {
		return Path{}, fmt.Errorf("linux.cgroupsPath %q: the systemd cgroup driver expects \"slice:prefix:name\" (e.g. \"system.slice:hako:%s\"); a path like /a/b is for the cgroupfs driver (omit --systemd-cgroup)", cgroupsPath, id)
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	if name == "" {
		return Path{}, fmt.Errorf("linux.cgroupsPath %q: empty name field (slice:prefix:name)", cgroupsPath)
	}
	if slice != "" {
		// Checked now rather than when the path is expanded, so a bad
		// slice never reaches systemd.
		if _, err := ExpandSlice(slice); err != nil {
			return Path{}, fmt.Errorf("linux.cgroupsPath %q: %w", cgroupsPath, err)
		}
	}
	if strings.ContainsAny(prefix+name, "/") {
		return Path{}, fmt.Errorf("linux.cgroupsPath %q: a unit name cannot contain '/'", cgroupsPath)
	}
	return Path{Slice: slice, Unit: unitName(prefix, name)}, nil
}

// unitName is runc's getUnitName: a scope unless the name asks for a slice.
// runc does not special-case an empty prefix either ("-name.scope").
func unitName(prefix, name string) string {
	if strings.HasSuffix(name, ".slice") {
		return name
	}
	return prefix + "-" + name + ".scope"
}

// IsSlice reports whether the container's unit is a slice rather than a
// scope: a slice holds no processes of its own and is placed with Wants=,
// not Slice=.
func (p Path) IsSlice() bool { return strings.HasSuffix(p.Unit, ".slice") }

// ParentSlice is the slice the unit goes in: the one given, or runc's
// default for the driver (user.slice below the user's manager when
// rootless).
func (p Path) ParentSlice(rootless bool) string {
	if p.Slice != "" {
		return p.Slice
	}
	if rootless {
		return "user.slice"
	}
	return "system.slice"
}

var errSliceName = errors.New("invalid slice name")

// ExpandSlice turns a slice name into its cgroup path as systemd lays it
// out: each dash opens a nested slice, so "a-b-c.slice" is
// /a.slice/a-b.slice/a-b-c.slice and "-.slice" is the root.
// The rules are runc's (ExpandSlice) and systemd's: the name ends in
// ".slice", has no '/', and no empty dash-separated component.
func ExpandSlice(slice string) (string, error) {
	const suffix = ".slice"
	if len(slice) < len(suffix) || !strings.HasSuffix(slice, suffix) || strings.Contains(slice, "/") {
		return "", fmt.Errorf("%w %q: must end in .slice and have no '/'", errSliceName, slice)
	}
	base := strings.TrimSuffix(slice, suffix)
	if base == "-" {
		return "/", nil
	}
	var path, prefix strings.Builder
	for comp := range strings.SplitSeq(base, "-") {
		if comp == "" {
			return "", fmt.Errorf("%w %q: empty component between dashes", errSliceName, slice)
		}
		path.WriteString("/" + prefix.String() + comp + suffix)
		prefix.WriteString(comp + "-")
	}
	return path.String(), nil
}
