// Package toolcache keeps the tools the engine tests build from the Go
// module proxy (containerd, runc, critest, crictl), one directory per tool
// and version, so test/cri and test/vm build each once per machine.
package toolcache

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Dir is $HAKO_CRI_CACHE, default $HOME/.cache/hako-cri.
func Dir() string {
	if d := os.Getenv("HAKO_CRI_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "hako-cri")
}

// Cached returns dir, running build into a fresh directory and renaming it
// to dir first if dir is not there: an interrupted build is never taken
// for a finished one. `go test ./...` runs test/cri and test/vm at the
// same time, so a lock on the cache directory makes the second wait for
// the first's build instead of building into the same place.
func Cached(dir string, build func(tmp string) error) (string, error) {
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(parent, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", fmt.Errorf("flock %s: %w", lock.Name(), err)
	}
	if _, err := os.Stat(dir); err == nil {
		return dir, nil // built while this one waited
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	if err := build(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("building %s: %w", filepath.Base(dir), err)
	}
	return dir, os.Rename(tmp, dir)
}
