package bwrap

import (
	"errors"
	"strings"
	"syscall"
)

// strerror renders an errno as glibc's strerror does ("No such file or
// directory"): Go's texts are glibc's in lower case.
func strerror(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return err.Error()
}
