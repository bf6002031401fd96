package inspect

import (
	"fmt"
	"strings"

	"github.com/moby/sys/mountinfo"

	"github.com/hako-runtime/hako/internal/linux/ns"
	"github.com/hako-runtime/hako/internal/linux/rootfs"
)

// Diff is how the target's mount table differs from another process's.
type Diff struct {
	Against   int        `json:"against"`
	SameNS    bool       `json:"same_mount_ns"`
	Added     []Mount    `json:"added"`   // only the target has a mount there
	Removed   []string   `json:"removed"` // only the other has a mount there
	Changed   []Changed  `json:"changed"` // both, showing different things
	Propagate []PeerLink `json:"propagation"`
	Summary   string     `json:"summary"`
}

// Changed is a mount point both tables have, with what differs.
type Changed struct {
	Target string   `json:"target"`
	What   []string `json:"what"`
}

// PeerLink says that mount events under Target reach from one table to
// the other (seed 003: a new mount namespace whose / stayed shared).
type PeerLink struct {
	Target    string `json:"target"`
	Direction string `json:"direction"` // both, to-target, from-target
	Group     int    `json:"group"`
}

func diff(r *Report, other int) (*Diff, error) {
	theirs, err := rootfs.MountsOf(other)
	if err != nil {
		return nil, fmt.Errorf("mounts of %d: %w", other, err)
	}
	d := &Diff{Against: other, Added: []Mount{}, Removed: []string{}, Changed: []Changed{}, Propagate: []PeerLink{}}
	a, _ := ns.Inode(ns.ProcPath(r.PID, "mnt"))
	b, _ := ns.Inode(ns.ProcPath(other, "mnt"))
	d.SameNS = a == b && a != 0
	// The topmost mount at each path is what a process sees there.
	top := map[string]*mountinfo.Info{}
	for _, m := range theirs {
		top[m.Mountpoint] = m
	}
	mine := map[string]bool{}
	for _, m := range r.Mounts {
		mine[m.Target] = true
	}
	seen := map[string]bool{}
	for k := len(r.Mounts) - 1; k >= 0; k-- {
		m := r.Mounts[k]
		if seen[m.Target] {
			continue
		}
		seen[m.Target] = true
		t, ok := top[m.Target]
		if !ok {
			d.Added = append(d.Added, m)
			continue
		}
		var what []string
		if t.Major != m.Major || t.Minor != m.Minor || t.Root != m.Root {
			what = append(what, fmt.Sprintf("content %d:%d%s → %d:%d%s", t.Major, t.Minor, t.Root, m.Major, m.Minor, m.Root))
		}
		if t.FSType != m.FSType {
			what = append(what, "fstype "+t.FSType+" → "+m.FSType)
		}
		if t.Options != m.Options {
			what = append(what, "options "+t.Options+" → "+m.Options)
		}
		tp := rootfs.ParsePropagationFields(t.Optional)
		if tp.Type != m.Propagation.Type {
			what = append(what, "propagation "+tp.Type+" → "+m.Propagation.Type)
		}
		if len(what) > 0 {
			d.Changed = append(d.Changed, Changed{Target: m.Target, What: what})
		}
	}
	for p := range top {
		if !mine[p] {
			d.Removed = append(d.Removed, p)
		}
	}
	sortStrings(d.Removed)
	// Peer groups are global ids: a shared group in both tables is a
	// two-way link; a slave of a group the other is a member of receives
	// one way.
	for _, m := range r.Mounts {
		for _, t := range theirs {
			if t.Mountpoint != m.Target && !d.SameNS {
				// A peer may sit at another path; still a link.
			}
			tp := rootfs.ParsePropagationFields(t.Optional)
			switch {
			case m.Propagation.PeerGroup != 0 && m.Propagation.PeerGroup == tp.PeerGroup:
				d.Propagate = append(d.Propagate, PeerLink{Target: m.Target, Direction: "both", Group: tp.PeerGroup})
			case m.Propagation.Master != 0 && m.Propagation.Master == tp.PeerGroup:
				d.Propagate = append(d.Propagate, PeerLink{Target: m.Target, Direction: "to-target", Group: tp.PeerGroup})
			case tp.Master != 0 && tp.Master == m.Propagation.PeerGroup:
				d.Propagate = append(d.Propagate, PeerLink{Target: m.Target, Direction: "from-target", Group: m.Propagation.PeerGroup})
			default:
				continue
			}
			break
		}
	}
	switch {
	case d.SameNS:
		d.Summary = "same mount namespace: every mount event is seen by both"
	case len(d.Propagate) == 0:
		d.Summary = "no mount propagates between the two: mounts made by either stay there"
	default:
		var both, to, from int
		for _, p := range d.Propagate {
			switch p.Direction {
			case "both":
				both++
			case "to-target":
				to++
			default:
				from++
			}
		}
		d.Summary = fmt.Sprintf("%d mounts propagate both ways, %d only to the target, %d only from it", both, to, from)
		if both > 0 || from > 0 {
			d.Summary += " (mounts made by the target reach the other: make them rslave or rprivate to stop it)"
		}
	}
	return d, nil
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && strings.Compare(s[j-1], s[j]) > 0; j-- {
			s[j-1], s[j] = s[j], s[j-1]
		}
	}
}
