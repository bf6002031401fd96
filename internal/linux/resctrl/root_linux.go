//go:build linux

package resctrl

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Root returns the resctrl mount: DefaultMount when resctrl is mounted
// there, else the first resctrl mount in mountinfo (runc looks in the same
// two places), else ErrNotEnabled.
func Root() (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(DefaultMount, &st); err == nil && st.Type == unix.RDTGROUP_SUPER_MAGIC {
		return DefaultMount, nil
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", ErrNotEnabled
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "id parent maj:min root mountpoint opts [optional...] - fstype src superopts"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		if pf, qf := strings.Fields(pre), strings.Fields(post); len(pf) >= 5 && len(qf) >= 1 && qf[0] == "resctrl" {
			return unescapeMountinfo(pf[4]), nil
		}
	}
	return "", ErrNotEnabled
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
