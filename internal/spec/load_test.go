package spec

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"wrong type", `{"process":{"args":"sh"}}`, "config.json: process.args: cannot unmarshal string into []string"},
		{"array element", `{"mounts":[{"destination":"/x"},{"options":["ro",1]}]}`, "config.json: mounts[1].options[1]: cannot unmarshal number into string"},
		{"map value", `{"linux":{"sysctl":{"net.ipv4.ip_forward":1}}}`, `config.json: linux.sysctl["net.ipv4.ip_forward"]: cannot unmarshal number into string`},
		{"overflow", `{"linux":{"uidMappings":[{"size":1},{"size":8589934592}]}}`, "config.json: linux.uidMappings[1].size: cannot unmarshal number 8589934592 into uint32"},
		{"negative shares", `{"linux":{"resources":{"cpu":{"shares":-1}}}}`, "config.json: linux.resources.cpu.shares: cannot unmarshal number -1 into uint64"},
		{"object instead of array", `{"linux":{"namespaces":{"type":"pid"}}}`, "config.json: linux.namespaces: cannot unmarshal object into []specs.LinuxNamespace"},
		{"top level", `[]`, "config.json: cannot unmarshal array into specs.Spec"},
		{"syntax", `{"ociVersion":}`, "config.json: invalid JSON at offset 15: invalid character '}' looking for beginning of value"},
		{"truncated", `{"ociVersion":"1.0.0"`, "config.json: invalid JSON: unexpected end of input"},
		{"empty", ``, "config.json: empty document"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(tc.in))
			if s != nil {
				t.Errorf("got a spec with an error")
			}
			checkErr(t, err, tc.want)
		})
	}
}

func TestParseLikeRunc(t *testing.T) {
	// Unknown fields (from newer specs or other runtimes) and trailing data
	// after the object are both accepted by runc's json.Decoder.
	s, err := Parse([]byte(`{"ociVersion":"1.0.0","hostname":"h","futureField":{"x":1},"process":{"args":["a"],"newThing":true}} trailing`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Hostname != "h" || s.Process.Args[0] != "a" {
		t.Errorf("decoded wrongly: %+v", s)
	}
}

func TestParseRoundTripsDefault(t *testing.T) {
	for _, rootless := range []bool{false, true} {
		data, err := json.Marshal(Default(rootless))
		if err != nil {
			t.Fatal(err)
		}
		s, err := Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := json.Marshal(s)
		if string(again) != string(data) {
			t.Errorf("rootless=%v: round trip changed the config:\n%s\n%s", rootless, data, again)
		}
	}
}

func writeConfig(t *testing.T, bundle string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	bundle := newBundle(t)
	writeConfig(t, bundle, baseSpec())
	s, err := Load(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if s.Root.Path != "rootfs" {
		t.Errorf("Load rewrote root.path to %q; it must keep the original", s.Root.Path)
	}
	got, err := RootfsPath(s, bundle)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.EvalSymlinks(filepath.Join(bundle, "rootfs"))
	if got != want {
		t.Errorf("RootfsPath = %q, want %q", got, want)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		_, err := Load(t.TempDir())
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("bad json", func(t *testing.T) {
		bundle := newBundle(t)
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"process":{"args":"sh"}}`), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(bundle)
		checkErr(t, err, "config.json: process.args: cannot unmarshal string into []string")
	})
	t.Run("invalid", func(t *testing.T) {
		bundle := newBundle(t)
		s := baseSpec()
		s.Process.Cwd = "rel"
		writeConfig(t, bundle, s)
		_, err := Load(bundle)
		checkErr(t, err, `process.cwd: must be an absolute path, got "rel"`)
	})
	t.Run("rootfs missing", func(t *testing.T) {
		bundle := t.TempDir()
		writeConfig(t, bundle, baseSpec())
		_, err := Load(bundle)
		checkErr(t, err, "root.path: "+filepath.Join(bundle, "rootfs")+": no such file or directory")
	})
}

func TestRootfsPath(t *testing.T) {
	bundle := newBundle(t)
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.Symlink("rootfs", filepath.Join(bundle, "link")); err != nil {
		t.Fatal(err)
	}
	wantReal, _ := filepath.EvalSymlinks(rootfs)

	s := baseSpec()
	s.Root.Path = "link"
	got, err := RootfsPath(s, bundle)
	if err != nil || got != wantReal {
		t.Errorf("relative symlink: got %q, %v; want %q", got, err, wantReal)
	}
	if s.Root.Path != "link" {
		t.Errorf("RootfsPath modified the spec")
	}

	s.Root.Path = filepath.Join(bundle, "link")
	got, err = RootfsPath(s, "/elsewhere")
	if err != nil || got != wantReal {
		t.Errorf("absolute path: got %q, %v; want %q", got, err, wantReal)
	}

	// A relative bundle is made absolute against the working directory.
	t.Chdir(bundle)
	s.Root.Path = "rootfs"
	got, err = RootfsPath(s, ".")
	if err != nil || got != wantReal {
		t.Errorf("relative bundle: got %q, %v; want %q", got, err, wantReal)
	}

	s.Root.Path = "missing"
	_, err = RootfsPath(s, bundle)
	checkErr(t, err, "root.path: "+filepath.Join(bundle, "missing")+": no such file or directory")

	s.Root = nil
	_, err = RootfsPath(s, bundle)
	checkErr(t, err, "root: must not be empty")
	_, err = RootfsPath(nil, bundle)
	checkErr(t, err, "root: must not be empty")
	s.Root = &specs.Root{}
	_, err = RootfsPath(s, bundle)
	checkErr(t, err, "root.path: must not be empty")
}

// specLinux is specs.Spec field for field, the other systems' sections as
// raw JSON: a field runtime-spec adds must be added to it, or Parse would
// drop it.
func TestSpecLinuxIsSpec(t *testing.T) {
	st, lt := reflect.TypeFor[specs.Spec](), reflect.TypeFor[specLinux]()
	if st.NumField() != lt.NumField() {
		t.Fatalf("specs.Spec has %d fields, specLinux %d", st.NumField(), lt.NumField())
	}
	others := map[string]bool{"Solaris": true, "Windows": true, "VM": true, "ZOS": true, "FreeBSD": true}
	for i := range st.NumField() {
		sf, lf := st.Field(i), lt.Field(i)
		if sf.Name != lf.Name || sf.Tag.Get("json") != lf.Tag.Get("json") {
			t.Errorf("field %d: specs.Spec has %s %q, specLinux %s %q", i, sf.Name, sf.Tag.Get("json"), lf.Name, lf.Tag.Get("json"))
		}
		want := sf.Type
		if others[sf.Name] {
			want = reflect.TypeFor[json.RawMessage]()
		}
		if lf.Type != want {
			t.Errorf("%s: specLinux has %s, want %s", sf.Name, lf.Type, want)
		}
	}
}

// Parse's Linux-only decode and the whole one give the same spec, and a
// config with another system's section takes the whole decode.
func TestParseLinuxOnlyIsWhole(t *testing.T) {
	for _, in := range []string{
		`{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"pid"}]}}`,
		`{"ociVersion":"1.0.0","windows":null,"vm":null}`,
		`{"ociVersion":"1.0.0","windows":{"layerFolders":["a"]}}`,
		`{"ociVersion":"1.0.0","solaris":{"milestone":"m"},"linux":{}}`,
		`{"ociVersion":"1.0.0","Linux":{"sysctl":{"a":"b"}},"PROCESS":{"args":["x"]}}`,
	} {
		got, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var want specs.Spec
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("%s: got %+v, want %+v", in, got, want)
		}
	}
}
