// Package resctrl applies linux.intelRdt through the kernel's resource
// control filesystem (Intel RDT, AMD QoS), as runc 1.5's intelrdt manager
// does: a CLOS group is a directory under the resctrl mount, its cache and
// memory-bandwidth limits are lines in its `schemata` file, its processes
// are pids written to its `tasks` file, and enableMonitoring gives the
// container a monitoring group of its own under mon_groups.
//
// Every function takes the resctrl mount as a parameter, so that tests can
// run against a directory tree laid out as the kernel lays it out; Root
// finds the real one.
package resctrl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultMount is where the kernel makes the (empty) mountpoint when the
// hardware and kernel support resctrl; the administrator mounts it.
const DefaultMount = "/sys/fs/resctrl"

// ErrNotEnabled is runc 1.5's refusal where resctrl is not mounted, in its
// words, which engines and users search for.
var ErrNotEnabled = errors.New("intelRdt is specified in config, but Intel RDT is not enabled")

// Features are the resctrl resources the mount offers: the kernel makes
// info/L3 for cache allocation (CAT), info/MB for memory bandwidth (MBA)
// and info/L3_MON for monitoring; each can be off on the kernel command
// line (rdt=!l3cat,...).
type Features struct {
	CAT, MBA, Monitoring bool
}

// Probe reads which resources the resctrl mount at root offers.
func Probe(root string) Features {
	has := func(p string) bool { _, err := os.Stat(filepath.Join(root, "info", p)); return err == nil }
	return Features{CAT: has("L3"), MBA: has("MB"), Monitoring: has("L3_MON")}
}

// Check refuses what runc 1.5's validator refuses, in its words and order:
// no resctrl, a CLOS name that is not one directory below the mount, and
// a schema for a resource the mount does not offer. root is "" where
// resctrl is not mounted.
func Check(root string, r *specs.LinuxIntelRdt) error {
	if r == nil {
		return nil
	}
	if root == "" {
		return ErrNotEnabled
	}
	// "/" is the default group, the mount itself: runc accepts it.
	if c := r.ClosID; c == "." || c == ".." || len(c) > 1 && strings.Contains(c, "/") {
		return fmt.Errorf("invalid intelRdt.ClosID %q", c)
	}
	f := Probe(root)
	if !f.CAT && r.L3CacheSchema != "" {
		return errors.New("intelRdt.l3CacheSchema is specified in config, but Intel RDT/CAT is not enabled")
	}
	if !f.MBA && r.MemBwSchema != "" {
		return errors.New("intelRdt.memBwSchema is specified in config, but Intel RDT/MBA is not enabled")
	}
	return nil
}

// mkdir and rmdir are the two operations whose side effects in resctrl a
// plain directory tree does not have (a new group comes with its schemata,
// tasks and mon_groups; rmdir takes them along): tests replace them.
var (
	mkdir = os.Mkdir
	rmdir = os.Remove
)

// Group is a container's place in resctrl, as the state remembers it.
type Group struct {
	// Path is the CLOS directory: closID below the mount, or the
	// container's id when closID is empty.
	Path string `json:"path"`
	// MonPath is the container's monitoring group (enableMonitoring),
	// mon_groups/<id> below Path, or "".
	MonPath string `json:"mon_path,omitempty"`
	// Created says hako made Path, so delete removes it; a CLOS the
	// config names is never removed (others may share it).
	Created bool `json:"created,omitempty"`
	// Named is a CLOS the config named (closID).
	Named bool `json:"named,omitempty"`
}

// Apply puts pid in the container's CLOS group under root, making the
// group when it does not exist, writes its schemata, and makes its
// monitoring group with enableMonitoring. The returned group is what
// Destroy removes; on error, Apply has removed what it made.
func Apply(root, id string, r *specs.LinuxIntelRdt, pid int) (_ *Group, err error) {
	clos := id
	if r.ClosID != "" {
		clos = r.ClosID
	}
	g := &Group{Path: filepath.Join(root, clos), Named: r.ClosID != ""}
	// runtime-spec: a closID with no schemata names a group someone
	// else configured; making an empty one would give the container the
	// default limits while the config expects that group's.
	if r.ClosID != "" && r.L3CacheSchema == "" && r.MemBwSchema == "" && len(r.Schemata) == 0 {
		if _, err := os.Stat(g.Path); err != nil {
			return nil, fmt.Errorf("clos dir not accessible (must be pre-created when schemata, l3CacheSchema and memBwSchema are empty): %w", err)
		}
	}
	switch err := mkdir(g.Path, 0o755); {
	case err == nil:
		g.Created = true
	case errors.Is(err, os.ErrExist):
	default:
		return nil, lastCmd(root, fmt.Errorf("intelrdt: %w", err))
	}
	defer func() {
		if err != nil {
			g.Destroy()
		}
	}()
	if err := writeTask(root, g.Path, pid); err != nil {
		return nil, err
	}
	if r.EnableMonitoring {
		g.MonPath = filepath.Join(g.Path, "mon_groups", id)
		if err := mkdir(g.MonPath, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			g.MonPath = ""
			return nil, lastCmd(root, fmt.Errorf("intelrdt: %w", err))
		}
		if err := writeTask(root, g.MonPath, pid); err != nil {
			return nil, err
		}
	}
	if err := g.Set(root, r); err != nil {
		return nil, err
	}
	return g, nil
}

// Set writes the config's schemata to the group: l3CacheSchema, then
// memBwSchema, then each schemata line, one write, as runc does (a later
// line for the same resource wins). Nothing is written when all are empty.
func (g *Group) Set(root string, r *specs.LinuxIntelRdt) error {
	var b strings.Builder
	for _, s := range append([]string{r.L3CacheSchema, r.MemBwSchema}, r.Schemata...) {
		if s != "" {
			b.WriteString(s)
			b.WriteString("\n")
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if err := os.WriteFile(filepath.Join(g.Path, "schemata"), []byte(b.String()), 0o600); err != nil {
		return lastCmd(root, fmt.Errorf("intelrdt: unable to write %q: %w", b.String(), err))
	}
	return nil
}

// AddTask puts an exec'd process in the container's CLOS group (and its
// monitoring group), where the group still exists.
func (g *Group) AddTask(root string, pid int) error {
	for _, p := range []string{g.Path, g.MonPath} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := writeTask(root, p, pid); err != nil {
			return err
		}
	}
	return nil
}

// Destroy removes what the container owns in resctrl: the CLOS group
// hako made for it (its monitoring group goes with it), or else only its
// monitoring group. The kernel moves any task left to the default group.
func (g *Group) Destroy() error {
	if g == nil {
		return nil
	}
	p := g.MonPath
	if g.Created && !g.Named {
		p = g.Path
	}
	if p == "" {
		return nil
	}
	if err := rmdir(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("intelrdt: %w", err)
	}
	return nil
}

func writeTask(root, dir string, pid int) error {
	if err := os.WriteFile(filepath.Join(dir, "tasks"), []byte(strconv.Itoa(pid)), 0o600); err != nil {
		return lastCmd(root, fmt.Errorf("intelrdt: unable to add pid %d: %w", pid, err))
	}
	return nil
}

// lastCmd adds the kernel's explanation of the last failed resctrl
// operation (info/last_cmd_status: "Invalid schema", "Unknown domain"...),
// which errno alone does not carry.
func lastCmd(root string, err error) error {
	if root == "" {
		return err
	}
	data, rerr := os.ReadFile(filepath.Join(root, "info", "last_cmd_status"))
	if rerr != nil {
		return err
	}
	return fmt.Errorf("%w, last_cmd_status: %s", err, strings.TrimSpace(string(data)))
}
