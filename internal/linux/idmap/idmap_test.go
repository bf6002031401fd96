package idmap

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestFormatParseRoundTrip(t *testing.T) {
	in := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}, {ContainerID: 65536, HostID: 1000, Size: 1}}
	s := Format(in)
	if s != "0 100000 65536\n65536 1000 1\n" {
		t.Fatalf("Format = %q", s)
	}
	out, err := Parse("         0     100000      65536\n     65536       1000          1\n")
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("Parse = %v, %v", out, err)
	}
	if _, err := Parse("0 1"); err == nil {
		t.Fatal("short line accepted")
	}
	if _, err := Parse("0 x 1"); err == nil {
		t.Fatal("bad number accepted")
	}
}

func TestToHost(t *testing.T) {
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 10}}
	if h, ok := ToHost(m, 9); !ok || h != 100009 {
		t.Fatalf("ToHost(9) = %d %v", h, ok)
	}
	if _, ok := ToHost(m, 10); ok {
		t.Fatal("ToHost(10) mapped outside the range")
	}
}

type fake struct {
	files map[string]string
	runs  []string
	fail  map[string]error
}

func (f *fake) writer(euid int) *Writer {
	return &Writer{
		Euid: euid,
		WriteFile: func(p string, d []byte) error {
			if err := f.fail[p]; err != nil {
				return err
			}
			f.files[p] = string(d)
			return nil
		},
		Run: func(name string, args ...string) error {
			f.runs = append(f.runs, name+" "+strings.Join(args, " "))
			return nil
		},
		LookPath: func(s string) (string, error) { return "/usr/bin/" + s, nil },
	}
}

func TestWriteAsRootWritesNoSetgroups(t *testing.T) {
	f := &fake{files: map[string]string{}}
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 100}}
	if err := f.writer(0).Write(42, m, m); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.files["/proc/42/setgroups"]; ok {
		t.Fatal("root wrote setgroups deny; it is not needed and breaks setgroups(2) in the container")
	}
	if f.files["/proc/42/uid_map"] != "0 1000 100\n" || f.files["/proc/42/gid_map"] != "0 1000 100\n" {
		t.Fatalf("maps = %v", f.files)
	}
}

func TestWriteUnprivilegedSelfMapDeniesSetgroupsFirst(t *testing.T) {
	f := &fake{files: map[string]string{}}
	uid := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
	gid := []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Getegid()), Size: 1}}
	if err := f.writer(1000).Write(7, uid, gid); err != nil {
		t.Fatal(err)
	}
	if f.files["/proc/7/setgroups"] != "deny" {
		t.Fatalf("setgroups not denied: %v", f.files)
	}
}

func TestWriteUnprivilegedRangeUsesHelpers(t *testing.T) {
	f := &fake{files: map[string]string{}}
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	if err := f.writer(1000).Write(7, m, m); err != nil {
		t.Fatal(err)
	}
	want := []string{"/usr/bin/newuidmap 7 0 100000 65536", "/usr/bin/newgidmap 7 0 100000 65536"}
	if !reflect.DeepEqual(f.runs, want) || len(f.files) != 0 {
		t.Fatalf("runs = %v files = %v", f.runs, f.files)
	}
}

func TestWriteGidMapEPERMNamesSetgroupsRule(t *testing.T) {
	f := &fake{files: map[string]string{}, fail: map[string]error{"/proc/9/gid_map": os.ErrPermission}}
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 1}}
	err := f.writer(0).Write(9, m, m)
	if err == nil || !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "setgroups") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("0 100000 65536\n")
	f.Add("         0          0 4294967295\n")
	f.Add("0 1 2\n3 4 5\n")
	f.Add("x y z")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Parse(s)
		if err != nil {
			return
		}
		back, err := Parse(Format(m))
		if err != nil || !reflect.DeepEqual(back, m) && !(len(back) == 0 && len(m) == 0) {
			t.Fatalf("round trip of %q: %v -> %v (%v)", s, m, back, err)
		}
	})
}
