package spec

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// newBundle creates a bundle directory holding an empty rootfs.
func newBundle(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// baseSpec is Default(false) without the host-dependent cgroup namespace, so
// that cases read the same on cgroup v1 and v2 hosts.
func baseSpec() *specs.Spec {
	s := Default(false)
	removeNS(s, specs.CgroupNamespace)
	return s
}

func addNS(s *specs.Spec, types ...specs.LinuxNamespaceType) {
	for _, t := range types {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t})
	}
}

func removeNS(s *specs.Spec, t specs.LinuxNamespaceType) {
	s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
		return ns.Type == t
	})
}

// withUserNS turns s into a user-namespaced config with valid mappings.
func withUserNS(s *specs.Spec) {
	addNS(s, specs.UserNamespace)
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
}

func ptr[T any](v T) *T { return &v }

// validateCase is one row of a table-driven Validate test: mutate the base
// spec and expect either success (want == "") or exactly the error want.
type validateCase struct {
	name string
	mut  func(s *specs.Spec)
	want string
}

func runValidateCases(t *testing.T, cases []validateCase) {
	t.Helper()
	bundle := newBundle(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := baseSpec()
			if tc.mut != nil {
				tc.mut(s)
			}
			err := Validate(s, bundle)
			checkErr(t, err, tc.want)
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	if err.Error() != want {
		t.Fatalf("error mismatch\n got: %s\nwant: %s", err, want)
	}
	checkErrShape(t, err)
}

// checkErrShape asserts the package-wide error contract.
func checkErrShape(t testing.TB, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %q does not wrap ErrInvalid", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Errorf("error %q is not a *FieldError", err)
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("error is not one line: %q", err)
	}
}
