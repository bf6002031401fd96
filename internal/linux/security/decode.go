package security

import "github.com/moby/sys/capability"

// CapNames decodes a capability mask as /proc/<pid>/status prints it
// (CapEff: 000001ffffffffff) into names, for `hako inspect`.
func CapNames(mask uint64) []string {
	var out []string
	for _, c := range capability.ListKnown() {
		if c < 64 && mask&(1<<uint(c)) != 0 {
			out = append(out, capName(c))
		}
	}
	return out
}

// AllCapsMask is the mask of every capability the library knows, to tell
// a full bounding set from a reduced one.
func AllCapsMask() uint64 {
	var m uint64
	last, err := capability.LastCap()
	if err != nil {
		last = capability.Cap(63)
	}
	for _, c := range capability.ListKnown() {
		if c <= last {
			m |= 1 << uint(c)
		}
	}
	return m
}
