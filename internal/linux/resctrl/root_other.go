//go:build !linux

package resctrl

// Root: resctrl is Linux's.
func Root() (string, error) { return "", ErrNotEnabled }
