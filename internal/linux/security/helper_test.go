package security

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Capabilities and seccomp filters cannot be taken back, so tests that
// really apply them run in a fresh copy of the test binary: the parent
// re-executes itself with helperEnv naming a scenario, the child runs it on
// a locked thread and reports on stdout.
const helperEnv = "HAKO_SECURITY_TEST_HELPER"

// helpers maps a scenario name to its body. A body that returns normally
// makes the child exit 0; a body may also exec.
var helpers = map[string]func() error{}

func TestHelperProcess(t *testing.T) {
	name := os.Getenv(helperEnv)
	if name == "" {
		t.Skip("only runs as a re-executed child")
	}
	runtime.LockOSThread()
	fn, ok := helpers[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "no helper %q\n", name)
		os.Exit(2)
	}
	if err := fn(); err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", name, err)
		os.Exit(3)
	}
	os.Exit(0)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// runHelper runs scenario name in a child and returns its stdout; it fails
// the test if the child fails.
func runHelper(t *testing.T, name string, env ...string) string {
	t.Helper()
	needRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.timeout=30s")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+name), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper %s: %v\nstdout:\n%s\nstderr:\n%s", name, err, stdout.String(), stderr.String())
	}
	if s := stderr.String(); s != "" {
		t.Logf("helper %s stderr:\n%s", name, s)
	}
	return stdout.String()
}

// parseKV reads "key: value" lines as the helpers print them.
func parseKV(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func expectKV(t *testing.T, got map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
