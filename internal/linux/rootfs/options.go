package rootfs

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Options is a mount's option list from config.json, sorted into what the
// new mount API needs: mount attributes (per mount), superblock flags and
// filesystem data (per filesystem instance, through fsconfig), bind and
// propagation.
type Options struct {
	Bind, Recursive bool
	Attr, AttrClr   uint64 // MOUNT_ATTR_* for the top mount
	RAttr, RAttrClr uint64 // the r-prefixed variants, applied recursively
	Propagation     uintptr
	SbFlags         []string // fsconfig flags of the superblock ("sync", ...)
	Data            []string // "key" or "key=value", passed to the filesystem
	IDMap           bool     // idmap or ridmap
	RIDMap          bool
	// CopyUp is runc's tmpcopyup: the tmpfs starts with a copy of the
	// directory it covers (copyup.go).
	CopyUp bool `json:",omitempty"`
}

type attrOpt struct {
	set, clr uint64
}

var attrOpts = map[string]attrOpt{
	"ro":            {unix.MOUNT_ATTR_RDONLY, 0},
	"rw":            {0, unix.MOUNT_ATTR_RDONLY},
	"nosuid":        {unix.MOUNT_ATTR_NOSUID, 0},
	"suid":          {0, unix.MOUNT_ATTR_NOSUID},
	"nodev":         {unix.MOUNT_ATTR_NODEV, 0},
	"dev":           {0, unix.MOUNT_ATTR_NODEV},
	"noexec":        {unix.MOUNT_ATTR_NOEXEC, 0},
	"exec":          {0, unix.MOUNT_ATTR_NOEXEC},
	"nosymfollow":   {unix.MOUNT_ATTR_NOSYMFOLLOW, 0},
	"symfollow":     {0, unix.MOUNT_ATTR_NOSYMFOLLOW},
	"nodiratime":    {unix.MOUNT_ATTR_NODIRATIME, 0},
	"diratime":      {0, unix.MOUNT_ATTR_NODIRATIME},
	"noatime":       {unix.MOUNT_ATTR_NOATIME, unix.MOUNT_ATTR__ATIME},
	"atime":         {unix.MOUNT_ATTR_RELATIME, unix.MOUNT_ATTR__ATIME},
	"relatime":      {unix.MOUNT_ATTR_RELATIME, unix.MOUNT_ATTR__ATIME},
	"norelatime":    {unix.MOUNT_ATTR_RELATIME, unix.MOUNT_ATTR__ATIME},
	"strictatime":   {unix.MOUNT_ATTR_STRICTATIME, unix.MOUNT_ATTR__ATIME},
	"nostrictatime": {unix.MOUNT_ATTR_RELATIME, unix.MOUNT_ATTR__ATIME},
}

var propagationOpts = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

var sbFlagOpts = map[string]bool{"sync": true, "dirsync": true, "lazytime": true, "mand": true}

// ignoredOpts are accepted for compatibility and mean nothing here:
// "defaults" and "async"/"nolazytime" are the kernel's defaults, and
// "remount" makes no sense for a mount that does not exist yet.
//
// "silent", "loud", "iversion" and "noiversion" are runc's too, which maps
// them to MS_SILENT and MS_I_VERSION of mount(2). The new mount API has
// neither: fsconfig knows only dirsync, lazytime, mand, ro and sync as
// superblock flags, and hands anything else to the filesystem, which
// refuses them (tmpfs: "Unknown parameter 'iversion'"), so they must never
// become filesystem data. What the flags meant:
//   - MS_SILENT only quiets the filesystem's kernel-log messages while the
//     superblock is read; with fsopen the messages go to the fs_context,
//     which hako reads back into its own error (fsLog), so there is no
//     kernel-log noise to quiet, and nothing stays on the mount.
//   - MS_I_VERSION is per filesystem: since Linux 6.2 (ext4, xfs, btrfs)
//     and 6.6 (tmpfs) the filesystems that support i_version set it
//     themselves and ignore the flag either way, and the others never had
//     it; "noiversion" cannot turn it off on any of them.
//
// "nosilent" is not a mount option (mount(8) and runc say "loud"): like
// runc, hako passes it to the filesystem as data, which refuses it.
var ignoredOpts = map[string]bool{"defaults": true, "async": true, "nomand": true, "nolazytime": true, "remount": true,
	"loud": true, "silent": true, "iversion": true, "noiversion": true}

// ParseOptions sorts a config.json option list. Unknown options are
// filesystem data, as runc passes them to mount(2).
func ParseOptions(opts []string) Options {
	var o Options
	for _, opt := range opts {
		switch opt {
		case "bind":
			o.Bind = true
			continue
		case "rbind":
			o.Bind, o.Recursive = true, true
			continue
		case "idmap":
			o.IDMap = true
			continue
		case "ridmap":
			o.IDMap, o.RIDMap = true, true
			continue
		case "tmpcopyup":
			o.CopyUp = true
			continue
		}
		// crun's idmap=uids=...;gids=... (spec.MountIDMaps reads the
		// maps): the same idmapped bind mount, with maps of its own.
		if strings.HasPrefix(opt, "idmap=") {
			o.IDMap = true
			continue
		}
		if strings.HasPrefix(opt, "ridmap=") {
			o.IDMap, o.RIDMap = true, true
			continue
		}
		if a, ok := attrOpts[opt]; ok {
			o.Attr = o.Attr&^a.clr | a.set
			o.AttrClr = o.AttrClr&^a.set | a.clr
			continue
		}
		if len(opt) > 1 && opt[0] == 'r' {
			if a, ok := attrOpts[opt[1:]]; ok && opt != "relatime" {
				o.RAttr = o.RAttr&^a.clr | a.set
				o.RAttrClr = o.RAttrClr&^a.set | a.clr
				continue
			}
		}
		if p, ok := propagationOpts[opt]; ok {
			o.Propagation = p
			continue
		}
		if sbFlagOpts[opt] {
			o.SbFlags = append(o.SbFlags, opt)
			continue
		}
		if ignoredOpts[opt] || opt == "" {
			continue
		}
		o.Data = append(o.Data, opt)
	}
	// A clear that is also a set only means "reset the atime family".
	o.AttrClr &^= o.Attr &^ unix.MOUNT_ATTR__ATIME
	o.RAttrClr &^= o.RAttr &^ unix.MOUNT_ATTR__ATIME
	return o
}

// ParsePropagation maps linux.rootfsPropagation to mount flags.
func ParsePropagation(s string) (uintptr, bool) {
	if s == "" {
		return 0, true
	}
	p, ok := propagationOpts[s]
	return p, ok
}

// splitData splits "key=value" for fsconfig.
func splitData(d string) (key, value string, hasValue bool) {
	return strings.Cut(d, "=")
}

// KnownOptions lists every option with a meaning of its own here, for
// `features`; anything else is passed to the filesystem.
func KnownOptions() []string {
	var out []string
	for k := range attrOpts {
		out = append(out, k, "r"+k)
	}
	for k := range propagationOpts {
		out = append(out, k)
	}
	for k := range sbFlagOpts {
		out = append(out, k)
	}
	for k := range ignoredOpts {
		out = append(out, k)
	}
	out = append(out, "bind", "rbind", "tmpcopyup")
	sort.Strings(out)
	return out
}

// String renders the options compactly, for --debug.
func (o Options) String() string {
	var parts []string
	if o.Recursive {
		parts = append(parts, "rec")
	}
	if o.IDMap {
		parts = append(parts, "idmap")
	}
	if o.CopyUp {
		parts = append(parts, "tmpcopyup")
	}
	if o.Attr != 0 || o.AttrClr != 0 {
		parts = append(parts, fmt.Sprintf("attr=%#x/-%#x", o.Attr, o.AttrClr))
	}
	if o.RAttr != 0 || o.RAttrClr != 0 {
		parts = append(parts, fmt.Sprintf("rattr=%#x/-%#x", o.RAttr, o.RAttrClr))
	}
	if o.Propagation != 0 {
		parts = append(parts, PropagationName(o.Propagation))
	}
	parts = append(parts, o.SbFlags...)
	parts = append(parts, o.Data...)
	return strings.Join(parts, ",")
}

// PropagationName is the option name of MS_* propagation flags.
func PropagationName(p uintptr) string { return propName(p) }
