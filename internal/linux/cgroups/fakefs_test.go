package cgroups

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeRoot is the directory the unit tests give the setters; paths below it
// are recorded relative to it.
const fakeRoot = "/cg"

// fakeFS plays the kernel's part for the resource code: it records every
// write, serves reads from what was written or preset, and fails the
// writes a test asks it to.
type fakeFS struct {
	files   map[string]string   // content by key (path relative to fakeRoot)
	script  map[string][]string // reads served in order before files
	missing map[string]bool     // keys that do not exist: ENOENT
	// fail makes the next write of "key=value" (or of key, any value)
	// fail once with the errno.
	fail   map[string]error
	writes []string // "key=value", in order
}

func newFake() *fakeFS {
	return &fakeFS{files: map[string]string{}, script: map[string][]string{}, missing: map[string]bool{}, fail: map[string]error{}}
}

func fakeKey(dir, file string) string {
	return strings.TrimPrefix(cgroupFile(dir, file), fakeRoot+"/")
}

func (f *fakeFS) read(dir, file string) (string, error) {
	k := fakeKey(dir, file)
	if s := f.script[k]; len(s) > 0 {
		f.script[k] = s[1:]
		return s[0], nil
	}
	if v, ok := f.files[k]; ok && !f.missing[k] {
		return v, nil
	}
	return "", &writeError{Path: k, Err: unix.ENOENT} // any error wrapping the errno
}

func (f *fakeFS) write(dir, file, value string) error {
	return f.writeLines(dir, file, []string{value})
}

func (f *fakeFS) writeLines(dir, file string, lines []string) error {
	k := fakeKey(dir, file)
	for _, l := range lines {
		if f.missing[k] {
			return &writeError{Path: cgroupFile(dir, file), Value: l, Err: unix.ENOENT}
		}
		for _, fk := range []string{k + "=" + l, k} {
			if err, ok := f.fail[fk]; ok {
				delete(f.fail, fk)
				return &writeError{Path: cgroupFile(dir, file), Value: l, Err: err}
			}
		}
		f.writes = append(f.writes, k+"="+l)
		f.files[k] = l
	}
	return nil
}

func (f *fakeFS) exists(dir, file string) bool {
	k := fakeKey(dir, file)
	_, ok := f.files[k]
	return ok && !f.missing[k]
}

// with presets files (key -> content) and returns f.
func (f *fakeFS) with(files map[string]string) *fakeFS {
	maps.Copy(f.files, files)
	return f
}

func checkWrites(t *testing.T, name string, f *fakeFS, want ...string) {
	t.Helper()
	if !slices.Equal(f.writes, want) {
		t.Errorf("%s: writes\n got %q\nwant %q", name, f.writes, want)
	}
}

func wantErrno(t *testing.T, name string, err, errno error) {
	t.Helper()
	if !errors.Is(err, errno) {
		t.Errorf("%s: error %v, want %v", name, err, errno)
	}
}
