package hooks

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func script(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunPassesStateArgsEnv(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	p := script(t, `cat > "$OUT.stdin"; echo "$1 $FOO" > "$OUT"`)
	h := specs.Hook{Path: p, Args: []string{"myname", "arg1"}, Env: []string{"FOO=bar", "OUT=" + out}}
	if err := Run("prestart", []specs.Hook{h}, []byte(`{"id":"x"}`)); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if strings.TrimSpace(string(got)) != "arg1 bar" {
		t.Fatalf("hook saw %q", got)
	}
	stdin, _ := os.ReadFile(out + ".stdin")
	if string(stdin) != `{"id":"x"}` {
		t.Fatalf("hook stdin %q", stdin)
	}
}

func TestRunStopsAtFailureRunAllDoesNot(t *testing.T) {
	mark := filepath.Join(t.TempDir(), "ran")
	bad := specs.Hook{Path: script(t, "echo boom >&2; exit 3")}
	good := specs.Hook{Path: script(t, "touch "+mark)}
	err := Run("createRuntime", []specs.Hook{bad, good}, nil)
	if !errors.Is(err, ErrHook) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(mark); err == nil {
		t.Fatal("hook after a failure ran")
	}
	if err := RunAll("poststop", []specs.Hook{bad, good}, nil); err == nil {
		t.Fatal("RunAll hid the failure")
	}
	if _, err := os.Stat(mark); err != nil {
		t.Fatal("RunAll stopped at the failure")
	}
}

func TestTimeout(t *testing.T) {
	one := 1
	h := specs.Hook{Path: script(t, "exec sleep 10"), Timeout: &one}
	err := Run("prestart", []specs.Hook{h}, nil)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v", err)
	}
}
