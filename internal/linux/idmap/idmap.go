// Package idmap owns user namespace id mappings: /proc/<pid>/uid_map and
// gid_map, and /proc/<pid>/setgroups.
//
// Seed 002's pitfall lives here: since Linux 3.19 an unprivileged process
// may only write gid_map after writing "deny" to setgroups (otherwise a user
// could drop a supplementary group that was denying it access). Root with
// CAP_SETGID over the parent namespace is exempt, so hako writes "deny" only
// when it has to, and names that rule when the kernel says EPERM.
package idmap

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/explain"
	"github.com/hako-runtime/hako/internal/nsenter"
)

// Format renders mappings in the kernel's "inside outside count" lines.
func Format(maps []specs.LinuxIDMapping) string {
	var b strings.Builder
	for _, m := range maps {
		fmt.Fprintf(&b, "%d %d %d\n", m.ContainerID, m.HostID, m.Size)
	}
	return b.String()
}

// Parse reads the kernel's map format (as in /proc/<pid>/uid_map).
func Parse(s string) ([]specs.LinuxIDMapping, error) {
	var out []specs.LinuxIDMapping
	for i, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("id map line %d: want 3 fields, got %q", i+1, line)
		}
		var v [3]uint32
		for j := range f {
			n, err := strconv.ParseUint(f[j], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("id map line %d: %q: %w", i+1, f[j], err)
			}
			v[j] = uint32(n)
		}
		out = append(out, specs.LinuxIDMapping{ContainerID: v[0], HostID: v[1], Size: v[2]})
	}
	return out, nil
}

// ToHost maps a container id to the host id, or reports false.
func ToHost(maps []specs.LinuxIDMapping, id uint32) (uint32, bool) {
	for _, m := range maps {
		if id >= m.ContainerID && uint64(id) < uint64(m.ContainerID)+uint64(m.Size) {
			return m.HostID + (id - m.ContainerID), true
		}
	}
	return 0, false
}

// Writer writes maps for a process that has unshared its user namespace.
// Its fields are functions so that tests can observe what would be written.
type Writer struct {
	Euid      int
	WriteFile func(path string, data []byte) error
	Run       func(name string, args ...string) error
	LookPath  func(string) (string, error)
}

// NewWriter returns a Writer acting on the real system.
func NewWriter() *Writer {
	return &Writer{
		Euid: os.Geteuid(),
		WriteFile: func(p string, d []byte) error {
			return os.WriteFile(p, d, 0)
		},
		Run: func(name string, args ...string) error {
			var out []byte
			err := nsenter.WithCallerSlack(func() (err error) {
				out, err = exec.Command(name, args...).CombinedOutput()
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
			}
			return nil
		},
		LookPath: exec.LookPath,
	}
}

// selfOnly reports whether the maps map exactly one id onto the writer's own:
// the only mapping the kernel lets an unprivileged process write itself.
func selfOnly(maps []specs.LinuxIDMapping, own int) bool {
	return len(maps) == 1 && maps[0].Size == 1 && int(maps[0].HostID) == own
}

// Write writes uid and gid maps for pid.
func (w *Writer) Write(pid int, uids, gids []specs.LinuxIDMapping) error {
	proc := "/proc/" + strconv.Itoa(pid)
	if w.Euid == 0 || (selfOnly(uids, w.Euid) && selfOnly(gids, os.Getegid())) {
		if w.Euid != 0 {
			if err := w.WriteFile(proc+"/setgroups", []byte("deny")); err != nil {
				return fmt.Errorf("write %s/setgroups: %w", proc, err)
			}
		}
		if err := w.WriteFile(proc+"/uid_map", []byte(Format(uids))); err != nil {
			return fmt.Errorf("write %s/uid_map %q: %w%s", proc, Format(uids), err, explainMap(proc, "uid", err, w.Euid))
		}
		if err := w.WriteFile(proc+"/gid_map", []byte(Format(gids))); err != nil {
			return fmt.Errorf("write %s/gid_map %q: %w%s", proc, Format(gids), err, explainMap(proc, "gid", err, w.Euid))
		}
		return nil
	}
	// More than the caller's own id needs the setuid helpers from uidmap,
	// which check /etc/subuid and /etc/subgid.
	for _, h := range []struct {
		tool string
		maps []specs.LinuxIDMapping
	}{{"newuidmap", uids}, {"newgidmap", gids}} {
		path, err := w.LookPath(h.tool)
		if err != nil {
			return fmt.Errorf("%s not found: mapping more than your own id as an unprivileged user needs it (Debian: apt-get install uidmap): %w", h.tool, err)
		}
		args := []string{strconv.Itoa(pid)}
		for _, m := range h.maps {
			args = append(args, strconv.FormatUint(uint64(m.ContainerID), 10), strconv.FormatUint(uint64(m.HostID), 10), strconv.FormatUint(uint64(m.Size), 10))
		}
		if err := w.Run(path, args...); err != nil {
			return explainHelper(h.tool, path, proc, err)
		}
	}
	return nil
}

// explainHelper names the cause of a newuidmap/newgidmap refusal. The
// helpers answer in words, not with an errno: "… not allowed" is their own
// check of /etc/subuid or /etc/subgid, "Operation not permitted" the
// kernel's refusal of a write the helper had no privilege for. Both are
// the EPERM causes of the explain table; other failures pass unexplained.
func explainHelper(tool, path, proc string, err error) error {
	msg := err.Error()
	if !strings.Contains(msg, "not allowed") && !strings.Contains(msg, "Operation not permitted") {
		return err
	}
	f := explain.Gather()
	f.NewUIDMapNoPriv = !explain.Privileged(path)
	op := explain.NewUIDMap
	if tool == "newgidmap" {
		op = explain.NewGIDMap
	}
	return explain.WrapFacts(op, proc, fmt.Errorf("%w: %w", err, unix.EPERM), f)
}

// explainMap says why the kernel refused a map, from the explain table
// with the target's setgroups and whether a map was written already; a
// refusal without an errno gets the general rule.
func explainMap(proc, kind string, err error, euid int) string {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return hint(err, kind)
	}
	f := &explain.Facts{Euid: euid}
	if data, err := os.ReadFile(proc + "/setgroups"); err == nil {
		f.Setgroups = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile(proc + "/" + kind + "_map"); err == nil {
		f.MapWritten = strings.TrimSpace(string(data)) != ""
	}
	op := explain.WriteUIDMap
	if kind == "gid" {
		// gid_map shares uid_map's causes after its own setgroups rule.
		if x, ok := explain.Lookup(explain.WriteGIDMap, errno, f); ok {
			return " (" + x.Cause + ": " + x.Fix + ")"
		}
	}
	if x, ok := explain.Lookup(op, errno, f); ok {
		return " (" + x.Cause + ": " + x.Fix + ")"
	}
	return hint(err, kind)
}

func hint(err error, kind string) string {
	if !errors.Is(err, os.ErrPermission) {
		return ""
	}
	if kind == "gid" {
		return ` (an unprivileged writer must write "deny" to setgroups before gid_map, and may map only its own gid; see user_namespaces(7))`
	}
	return " (an unprivileged writer may map only its own uid; use newuidmap with /etc/subuid ranges)"
}

// RunningInUserNS reports whether this process is in a user namespace
// other than the initial one (whose uid_map is the identity over all ids).
// Rootless engines run the runtime so: mknod and some mounts are then
// refused even when the config asks for no user namespace of its own.
func RunningInUserNS() bool {
	data, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	m, err := Parse(string(data))
	return err == nil && !(len(m) == 1 && m[0].ContainerID == 0 && m[0].HostID == 0 && m[0].Size == 4294967295)
}

// Process is a process's user namespace maps as /proc shows them to the
// reader (ids of the reader's namespace on the outside column).
type Process struct {
	UIDMap    []specs.LinuxIDMapping `json:"uid_map"`
	GIDMap    []specs.LinuxIDMapping `json:"gid_map"`
	Setgroups string                 `json:"setgroups"`
}

// Read reads /proc/<pid>/{uid_map,gid_map,setgroups}.
func Read(pid int) (*Process, error) {
	proc := "/proc/" + strconv.Itoa(pid) + "/"
	p := &Process{}
	for _, f := range []struct {
		name string
		dst  *[]specs.LinuxIDMapping
	}{{"uid_map", &p.UIDMap}, {"gid_map", &p.GIDMap}} {
		data, err := os.ReadFile(proc + f.name)
		if err != nil {
			return nil, err
		}
		if *f.dst, err = Parse(string(data)); err != nil {
			return nil, err
		}
	}
	if data, err := os.ReadFile(proc + "setgroups"); err == nil {
		p.Setgroups = strings.TrimSpace(string(data))
	}
	return p, nil
}
