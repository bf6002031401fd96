package cgroups

import (
	"fmt"
	"os"
	"path"
	"strings"
)

// Sub is exec --cgroup: which existing sub-cgroups of the container a new
// process joins instead of the container's own. The format is runc's
// (1.1+): "<path>" for every controller, or "<controller>[,<controller>...]:<path>"
// per v1 controller, given once per flag.
type Sub struct {
	All  string            // the path for every controller; "" when per controller
	Ctrl map[string]string // v1 controller -> path
}

// ParseSub parses the --cgroup values, with runc's errors.
func ParseSub(flags []string) (*Sub, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	s := &Sub{Ctrl: map[string]string{}}
	for _, f := range flags {
		ctrls, p, ok := strings.Cut(f, ":")
		if !ok {
			if len(flags) != 1 {
				return nil, fmt.Errorf("--cgroup argument %q has no controller", f)
			}
			s.All = f
			continue
		}
		for _, c := range strings.Split(ctrls, ",") {
			if c == "" {
				return nil, fmt.Errorf("--cgroup argument %q: empty controller name", f)
			}
			if _, dup := s.Ctrl[c]; dup {
				return nil, fmt.Errorf("duplicate controller %s in --cgroup", c)
			}
			s.Ctrl[c] = p
		}
	}
	return s, nil
}

// WithSub is a manager for the sub-cgroups s names below m's directories,
// each of which must exist (exec joins, it never creates). A path may not
// climb out of the container's cgroup.
func (m *Manager) WithSub(s *Sub) (*Manager, error) {
	if s == nil {
		return m, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := &Manager{v2: m.v2, rootless: m.rootless, res: m.res, fs: m.fs, v1: map[string]string{}, unified: m.unified, unit: m.unit}
	if s.All != "" {
		n.unitSub = path.Join("/", s.All)
	}
	join := func(base, sub string) (string, error) {
		p := path.Join(base, sub)
		if p != base && !strings.HasPrefix(p, base+"/") {
			return "", fmt.Errorf("--cgroup %q is not a sub cgroup path", sub)
		}
		if st, err := os.Stat(p); err != nil || !st.IsDir() {
			return "", fmt.Errorf("--cgroup %q: cgroup %s does not exist (exec joins existing sub-cgroups only)", sub, p)
		}
		return p, nil
	}
	for k, v := range m.v1 {
		n.v1[k] = v
	}
	if m.v2 {
		if len(s.Ctrl) > 0 {
			return nil, fmt.Errorf("--cgroup: controller names are for cgroup v1; on cgroup v2 give only a path")
		}
	}
	if s.All != "" {
		for k, v := range m.v1 {
			p, err := join(v, s.All)
			if err != nil {
				return nil, err
			}
			n.v1[k] = p
		}
		if m.unified != "" {
			p, err := join(m.unified, s.All)
			if err != nil {
				return nil, err
			}
			n.unified = p
		}
	}
	for c, sub := range s.Ctrl {
		base, ok := m.v1[c]
		if !ok {
			return nil, fmt.Errorf("unknown controller %s in sub-cgroup paths", c)
		}
		p, err := join(base, sub)
		if err != nil {
			return nil, err
		}
		n.v1[c] = p
	}
	return n, nil
}
