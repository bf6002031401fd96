package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotMounted means a limit was requested for a controller that is not
// available to the container (not mounted on v1, not delegated on v2, or
// not creatable for a rootless container).
var ErrNotMounted = errors.New("controller not available")

// Error ties a failure to the controller it happened in, because the
// library's errors only name a file and users configure controllers.
type Error struct {
	Controller string // "" when the failure is not specific to one controller
	Err        error
}

func (e *Error) Error() string {
	msg := e.Err.Error()
	// The library prefixes write errors with the value written; the path
	// and errno are what identify the problem, so report just those.
	var pe *os.PathError
	if errors.As(e.Err, &pe) && pe.Op == "write" {
		msg = pe.Error()
	}
	if e.Controller == "" {
		return "cgroup: " + msg
	}
	return "cgroup " + e.Controller + ": " + msg
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

// wrapV2Err labels an error from the fs2 manager, which sets every
// controller in one call, by the interface file it failed on.
func wrapV2Err(err error) error {
	if err == nil {
		return nil
	}
	var pe *os.PathError
	if !errors.As(err, &pe) {
		return wrapErr("", err)
	}
	return wrapErr(controllerOfFile(filepath.Base(pe.Path)), err)
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
