package inspect

import (
	"fmt"
	"os"
	"strings"

	"github.com/hako-runtime/hako/internal/linux/ns"
	"github.com/hako-runtime/hako/internal/sandbox"
	"github.com/hako-runtime/hako/internal/sandbox/receipt"
)

// Property is one systemd property as the kernel shows it in force: the
// sandbox's table (internal/sandbox) read in the other direction, so that
// a name means here what it means to `hako sandbox -p`.
type Property = sandbox.Observed

// properties reads the process's effective isolation in systemd.exec(5)
// words, from the kernel's state rather than a unit file, against the
// host's (PID 1's).
func properties(r *Report) ([]Property, error) {
	proc, err := receipt.Of(r.PID)
	if err != nil {
		return nil, fmt.Errorf("properties of process %d: %w", r.PID, err)
	}
	host, err := receipt.Of(HostPID)
	if err != nil {
		return nil, fmt.Errorf("properties: the host's (process %d): %w", HostPID, err)
	}
	// An unprivileged reader cannot stat PID 1's namespaces; the
	// initial namespaces' inodes are fixed.
	host.NS = func(kind string) (uint64, error) {
		if h, ok := ns.HostInode(HostPID, kind); ok {
			return h, nil
		}
		return 0, fmt.Errorf("the host's %s namespace is not readable", kind)
	}
	live := &sandbox.Live{
		Proc: proc, Host: host,
		Origin: func(point string) (string, bool) {
			var top *Mount
			for k := range r.Mounts {
				if r.Mounts[k].Target == point {
					top = &r.Mounts[k]
				}
			}
			if top == nil || top.HostPath == "" {
				return "", false
			}
			return top.HostPath, true
		},
		Interfaces: interfaces(r.PID),
	}
	return sandbox.ReadBack(live), nil
}

// interfaces lists the network interfaces in the process's namespace.
func interfaces(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n")[2:] {
		if name, _, ok := strings.Cut(l, ":"); ok {
			out = append(out, strings.TrimSpace(name))
		}
	}
	return out
}
