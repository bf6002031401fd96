//go:build !linux

package spec

// isCgroup2 exists so the package (and its decoding and validation, which
// are useful to tooling on any OS) builds off Linux.
func isCgroup2() bool { return false }
