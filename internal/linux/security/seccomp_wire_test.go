package security

import (
	"encoding/json"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSeccompWireRoundTrip(t *testing.T) {
	s, err := BuildSeccomp(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}},
	})
	if err != nil || s == nil {
		t.Fatalf("build: %v", err)
	}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Seccomp
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.prog, back.prog) || s.flags != back.flags {
		t.Fatal("program changed in transit")
	}
	if err := json.Unmarshal([]byte(`{"bpf":"AAAA","flags":0}`), &back); err == nil {
		t.Fatal("truncated program accepted")
	}
}
