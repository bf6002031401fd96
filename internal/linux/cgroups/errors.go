package cgroups

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotMounted means a limit was requested for a controller that is not
// available to the container (not mounted on v1, not delegated on v2, or
// not creatable for a rootless container).
var ErrNotMounted = errors.New("controller not available")

// errV1NoUnified refuses linux.resources.unified on a host without any
// cgroup2 tree: those keys are cgroup2 interface files and have no v1
// meaning, and dropping them silently would run the container unlimited.
var errV1NoUnified = errors.New("invalid configuration: linux.resources.unified needs cgroup v2, but this host has only v1 hierarchies")

// Error ties a failure to the controller it happened in, because users
// configure controllers, not files.
type Error struct {
	Controller string // "" when the failure is not specific to one controller
	Err        error
}

func (e *Error) Error() string {
	if e.Controller == "" {
		return "cgroup: " + e.Err.Error()
	}
	return "cgroup " + e.Controller + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// wrapErr labels err with controller unless an inner layer already did, so
// the most specific label wins.
func wrapErr(controller string, err error) error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	return &Error{Controller: controller, Err: err}
}

// writeError is a failed write of an interface file. It names the value as
// well as the file: the kernel's EINVAL or ERANGE is about the value, and
// without it the message cannot be matched to the configuration.
type writeError struct {
	Path  string
	Value string
	Err   error // the errno
}

func (e *writeError) Error() string {
	return fmt.Sprintf("write %s %q: %v", e.Path, e.Value, e.Err)
}

func (e *writeError) Unwrap() error { return e.Err }

// notFoundError says a v1 hierarchy is not mounted. Path computation skips
// such hierarchies (except devices), so it is told apart from other errors.
type notFoundError struct{ subsystem string }

func (e *notFoundError) Error() string {
	return "mountpoint for " + e.subsystem + " not found"
}

func isNotFound(err error) bool {
	var nf *notFoundError
	return errors.As(err, &nf)
}

// controllerOfFile maps a cgroup2 interface file to its controller name;
// cgroup.freeze is the v2 freezer and other cgroup.* files are core files.
func controllerOfFile(file string) string {
	if file == "cgroup.freeze" {
		return "freezer"
	}
	name, _, ok := strings.Cut(file, ".")
	if !ok {
		return ""
	}
	return name
}
