package bwrap

import (
	"os"
	"strconv"

	"fmt"
	"github.com/moby/sys/capability"
	"strings"

	"golang.org/x/sys/unix"
)

// NamespaceID is one entry of the info documents.
type NamespaceID struct {
	Name string
	ID   uint64
}

// NamespaceIDs reads the inode of each named namespace of pid; one that
// cannot be read is left out, as bubblewrap leaves it out.
func NamespaceIDs(pid int, names []string) []NamespaceID {
	var out []NamespaceID
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, n), &st); err == nil {
			out = append(out, NamespaceID{Name: n, ID: st.Ino})
		}
	}
	return out
}

// InfoJSON is --info-fd's document, byte for byte bubblewrap's.
func InfoJSON(pid int, ids []NamespaceID) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n    \"child-pid\": %d", pid)
	for _, id := range ids {
		fmt.Fprintf(&b, ",\n    \"%s-namespace\": %d", id.Name, id.ID)
	}
	b.WriteString("\n}\n")
	return b.String()
}

// StatusJSON is --json-status-fd's first document (the exit code follows
// as a second one).
func StatusJSON(pid int, ids []NamespaceID) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{ \"child-pid\": %d", pid)
	for _, id := range ids {
		fmt.Fprintf(&b, ", \"%s-namespace\": %d", id.Name, id.ID)
	}
	b.WriteString(" }\n")
	return b.String()
}

// ReadBounding reads this process's capability bounding set by name
// (CAP_*), nil if it cannot.
func ReadBounding() map[string]bool {
	var mask uint64
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	found := false
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			if mask, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil {
				return nil
			}
			found = true
		}
	}
	if !found {
		return nil
	}
	out := map[string]bool{}
	for _, c := range capability.ListKnown() {
		if mask&(1<<uint(c)) != 0 {
			out["CAP_"+strings.ToUpper(c.String())] = true
		}
	}
	return out
}
