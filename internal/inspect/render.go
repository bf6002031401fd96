package inspect

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/hako-runtime/hako/internal/linux/idmap"
)

// JSON writes the report as indented JSON.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Text writes the report for people.
func (r *Report) Text(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("process %d", r.PID)
	if r.Container != "" {
		p(" (container %s)", r.Container)
	}
	p(": %s\n", r.Command)
	p("  nspid   %v (outermost first)\n  root    %s\n  cwd     %s\n", r.NSpid, orUnreadable(r.Root), orUnreadable(r.Cwd))
	if r.Diff == nil {
		p("\nnamespaces:\n")
		for _, n := range r.Namespaces {
			if n.Err != "" {
				p("  %-7s %s\n", n.Kind, n.Err)
				continue
			}
			where := "own"
			switch {
			case n.Host:
				where = "host"
			case n.HostUnknown:
				where = "?"
			}
			p("  %-7s %-11d %-4s", n.Kind, n.Inode, where)
			if n.Owner != 0 {
				p("  owner user:[%d]", n.Owner)
			}
			if n.Parent != 0 {
				p("  parent %s:[%d]", n.Kind, n.Parent)
			}
			if n.ForChildrenPending {
				p("  %s_for_children: a new namespace awaiting its first child (unshare without fork)", n.Kind)
			}
			if n.ForChildren != 0 {
				p("  %s_for_children:[%d] (children go elsewhere)", n.Kind, n.ForChildren)
			}
			p("\n")
		}
		id := r.Identity
		p("\nidentity:\n  uid %v  gid %v  groups %v\n", id.UID, id.GID, id.Groups)
		if id.Maps != nil {
			p("  uid_map %s  gid_map %s  setgroups %s\n", oneLine(idmap.Format(id.Maps.UIDMap)), oneLine(idmap.Format(id.Maps.GIDMap)), id.Maps.Setgroups)
		}
		for _, s := range []string{"bounding", "effective", "permitted", "inheritable", "ambient"} {
			c := id.Caps[s]
			v := strings.Join(c, " ")
			if len(c) > 12 {
				v = fmt.Sprintf("%d capabilities (%s ...)", len(c), strings.Join(c[:3], " "))
			}
			if len(c) == 0 {
				v = "none"
			}
			p("  %-11s %s\n", s, v)
		}
		p("  no_new_privs %v  seccomp %s (%d filters)", id.NoNewPrivs, id.Seccomp, id.SeccompFilters)
		if id.LSMLabel != "" {
			p("  lsm %s", id.LSMLabel)
		}
		p("\n\ncgroup:\n")
		for _, k := range sortedKeys(r.Cgroup.Paths) {
			p("  %-12s %s\n", k, r.Cgroup.Paths[k])
		}
		for _, k := range sortedKeys(r.Cgroup.Limits) {
			p("  limit %-20s %s\n", k, r.Cgroup.Limits[k])
		}
		owner := fmt.Sprintf("user:[%d]", r.MountNSOwner)
		if r.MountNSOwner == 0 {
			owner = "an unreadable user namespace"
		}
		p("\nmounts (as the process sees them; mount ns owned by %s):\n", owner)
		p("  %-28s %-10s %-24s %s\n", "TARGET", "FSTYPE", "PROPAGATION", "HOST PATH / NOTES")
		for _, m := range r.Mounts {
			p("  %s\n", m.line())
		}
	}
	if len(r.Properties) > 0 {
		p("\nproperties in force (hako sandbox's table, read from the kernel):\n")
		var off, unknown []string
		why := ""
		for _, pr := range r.Properties {
			switch {
			case pr.InForce:
				p("  %s=%s\t# %s\n", pr.Name, pr.Value, pr.Reason)
			case pr.Unknown:
				unknown, why = append(unknown, pr.Name), pr.Reason
			default:
				off = append(off, pr.Name)
			}
		}
		if len(unknown) > 0 {
			p("  not readable (%s): %s\n", why, strings.Join(unknown, " "))
		}
		if len(off) > 0 {
			p("  not in force: %s\n", strings.Join(off, " "))
		}
	}
	if d := r.Diff; d != nil {
		p("\nmounts that differ from process %d's:\n", d.Against)
		for _, m := range d.Added {
			p("  + %s\n", m.line())
		}
		for _, c := range d.Changed {
			p("  ~ %-28s %s\n", c.Target, strings.Join(c.What, "; "))
		}
		for _, t := range d.Removed {
			p("  - %s\n", t)
		}
		for _, l := range d.Propagate {
			p("  propagation %-20s %s (peer group %d)\n", l.Target, l.Direction, l.Group)
		}
		p("  %s\n", d.Summary)
	}
	for _, e := range r.Errors {
		p("error: %s\n", e)
	}
}

func (m Mount) line() string {
	prop := m.Propagation.Type
	if m.Propagation.PeerGroup != 0 {
		prop += fmt.Sprintf(" peer:%d", m.Propagation.PeerGroup)
	}
	if m.Propagation.Master != 0 {
		prop += fmt.Sprintf(" master:%d", m.Propagation.Master)
	}
	var notes []string
	switch {
	case m.HostPath == "":
		notes = append(notes, "(not on the host: "+m.Source+")")
	case m.Bind || m.HostPath != m.Target:
		notes = append(notes, "← host "+m.HostPath)
	}
	if hasOpt(m.Options, "ro") {
		notes = append(notes, "ro")
	}
	if m.Idmapped {
		if m.IDMap != nil {
			notes = append(notes, "idmap uid "+strings.Join(m.IDMap.UID, ",")+" gid "+strings.Join(m.IDMap.GID, ","))
		} else {
			notes = append(notes, "idmapped ("+m.IDMapError+")")
		}
	}
	if len(m.Locked) > 0 {
		notes = append(notes, "locked: "+strings.Join(m.Locked, ","))
	}
	return fmt.Sprintf("%-28s %-10s %-24s %s", m.Target, m.FSType, prop, strings.Join(notes, "  "))
}

// orUnreadable marks what /proc would not tell this reader: a process's
// root, cwd and namespaces need ptrace access (root, or its owner).
func orUnreadable(s string) string {
	if s == "" {
		return "(not readable: needs root or the process's owner)"
	}
	return s
}

func oneLine(s string) string {
	s = strings.TrimSpace(strings.ReplaceAll(strings.TrimSpace(s), "\n", "; "))
	if s == "" {
		return "(none)"
	}
	return s
}
