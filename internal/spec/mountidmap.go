package spec

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// IDMapOption splits crun's idmapped-mount option with custom maps,
// "idmap=uids=0-1000-10;gids=0-1000-10" (or "ridmap=..."), into its kind
// ("idmap" or "ridmap") and the text after "=". Plain "idmap" and
// "ridmap" are not this form.
func IDMapOption(o string) (kind, maps string, ok bool) {
	for _, k := range []string{"idmap", "ridmap"} {
		if v, found := strings.CutPrefix(o, k+"="); found {
			return k, v, true
		}
	}
	return "", "", false
}

// MountIDMaps is the idmap of mount m when it has maps of its own: its
// uidMappings/gidMappings (runtime-spec 1.2), or those of a crun-style
// "idmap=uids=...;gids=..." option, which crun documents in crun(1):
// triplets "from-to-count" in uid_map's order (the ID in the mount's user
// namespace, the host ID, the count), several joined by "#", and a triplet
// written "@from-to-count" has "to" read as a container ID and moved to the
// host ID linux.uidMappings/gidMappings give it. Both halves are required:
// crun leaves a missing one unmapped, which makes every file show as the
// overflow ID. It returns nil maps for a mount without maps of its own.
// Errors name the option; the caller adds the mount's field path.
func MountIDMaps(m specs.Mount, l *specs.Linux) (uids, gids []specs.LinuxIDMapping, err error) {
	var opt string
	for _, o := range m.Options {
		if _, _, ok := IDMapOption(o); !ok {
			continue
		}
		if opt != "" {
			return nil, nil, fmt.Errorf("options: %q and %q: only one idmap with maps per mount", opt, o)
		}
		opt = o
	}
	if opt == "" {
		return m.UIDMappings, m.GIDMappings, nil
	}
	if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
		return nil, nil, fmt.Errorf("option %q: the mount also has uidMappings/gidMappings; give the maps one way", opt)
	}
	_, rest, _ := IDMapOption(opt)
	var haveU, haveG bool
	for _, part := range strings.Split(rest, ";") {
		var (
			list      string
			ctr       []specs.LinuxIDMapping
			dst       *[]specs.LinuxIDMapping
			have      *bool
			key, name string
		)
		switch {
		case strings.HasPrefix(part, "uids="):
			list, dst, have, key, name = part[5:], &uids, &haveU, "uids", "linux.uidMappings"
			if l != nil {
				ctr = l.UIDMappings
			}
		case strings.HasPrefix(part, "gids="):
			list, dst, have, key, name = part[5:], &gids, &haveG, "gids", "linux.gidMappings"
			if l != nil {
				ctr = l.GIDMappings
			}
		default:
			return nil, nil, fmt.Errorf("option %q: %q: want uids=... or gids=...", opt, part)
		}
		if *have {
			return nil, nil, fmt.Errorf("option %q: %s= given twice", opt, key)
		}
		*have = true
		for _, t := range strings.Split(list, "#") {
			mp, err := parseIDMapTriplet(t, ctr, name)
			if err != nil {
				return nil, nil, fmt.Errorf("option %q: %s: %w", opt, key, err)
			}
			*dst = append(*dst, mp)
		}
	}
	if !haveU || !haveG {
		return nil, nil, fmt.Errorf("option %q: needs both uids= and gids= (IDs left out would be unmapped)", opt)
	}
	return uids, gids, nil
}

// parseIDMapTriplet reads "from-to-count" or "@from-to-count".
func parseIDMapTriplet(t string, ctr []specs.LinuxIDMapping, ctrField string) (specs.LinuxIDMapping, error) {
	rel := strings.HasPrefix(t, "@")
	f := strings.Split(strings.TrimPrefix(t, "@"), "-")
	if len(f) != 3 {
		return specs.LinuxIDMapping{}, fmt.Errorf("%q: want from-to-count", t)
	}
	var v [3]uint32
	for i, s := range f {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return specs.LinuxIDMapping{}, fmt.Errorf("%q: %q is not an ID", t, s)
		}
		v[i] = uint32(n)
	}
	if rel {
		found := false
		for _, c := range ctr {
			if v[1] >= c.ContainerID && uint64(v[1]) < uint64(c.ContainerID)+uint64(c.Size) {
				v[1] = c.HostID + (v[1] - c.ContainerID)
				found = true
				break
			}
		}
		if !found {
			if len(ctr) == 0 {
				return specs.LinuxIDMapping{}, fmt.Errorf("%q: a relative (@) map needs %s", t, ctrField)
			}
			return specs.LinuxIDMapping{}, fmt.Errorf("%q: container ID %d is not in %s", t, v[1], ctrField)
		}
	}
	return specs.LinuxIDMapping{ContainerID: v[0], HostID: v[1], Size: v[2]}, nil
}
