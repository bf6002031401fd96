package spec

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// brokenSeeds are hand-written configs that each stop at a different check;
// testdata/fuzz/FuzzParseValidate holds them plus the defaults, so plain
// `go test` replays them too.
var brokenSeeds = []string{
	``,
	`null`,
	`[`,
	`{"ociVersion":"2.0.0"}`,
	`{"ociVersion":"1.0.0","process":{"args":"sh"}}`,
	`{"ociVersion":"1.0.0","root":{"path":"rootfs"},"process":{"cwd":"/","args":["sh"],"capabilities":{"bounding":["CAP_TEST"]}}}`,
	`{"ociVersion":"1.0.0","linux":{"namespaces":[{"type":"user"}],"uidMappings":[{"containerID":4294967295,"hostID":0,"size":1}]}}`,
	`{"ociVersion":"1.0.0","mounts":[{"destination":"tmp","options":["idmap"]},{"destination":"/x","type":"bind"}]}`,
	`{"ociVersion":"1.0.0","linux":{"sysctl":{"net/ipv4/ip_forward":"1"},"seccomp":{"defaultAction":"SCMP_ACT_NOTIFY","syscalls":[{"names":[]}]}}}`,
	`{"ociVersion":"1.0.0","linux":{"resources":{"cpu":{"cpus":"0-7:2/4,","quota":-2},"memory":{"limit":2048,"swap":1024}}}}`,
	`{"ociVersion":"1.0.0","hooks":{"poststop":[{"path":"rel","timeout":0}]},"linux":{"timeOffsets":{"x":{"secs":1}}}}`,
}

// FuzzParseValidate checks that no input makes Parse, Validate or RootfsPath
// panic, and that every error keeps the package's error contract.
func FuzzParseValidate(f *testing.F) {
	for _, rootless := range []bool{false, true} {
		data, err := json.Marshal(Default(rootless))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range brokenSeeds {
		f.Add([]byte(s))
	}
	bundle := newBundle(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if s != nil {
				t.Fatal("Parse returned both a spec and an error")
			}
			checkErrShape(t, err)
			return
		}
		// The Linux-only decode is the whole one (specLinux).
		var whole specs.Spec
		if json.NewDecoder(bytes.NewReader(data)).Decode(&whole) != nil || !reflect.DeepEqual(s, &whole) {
			t.Fatalf("Parse gives %+v, a whole decode %+v", s, whole)
		}
		if err := Validate(s, bundle); err != nil {
			checkErrShape(t, err)
		}
		if _, err := RootfsPath(s, bundle); err != nil {
			checkErrShape(t, err)
		}
	})
}
