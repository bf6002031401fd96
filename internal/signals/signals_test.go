package signals

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	ok := map[string]unix.Signal{
		"KILL": unix.SIGKILL, "SIGKILL": unix.SIGKILL, "kill": unix.SIGKILL, "9": unix.SIGKILL,
		"TERM": unix.SIGTERM, "15": unix.SIGTERM, "sigusr1": unix.SIGUSR1, "HUP": unix.SIGHUP,
		"RTMIN": 34, "SIGRTMIN+3": 37, "RTMAX-1": 63, "0": 0,
	}
	for in, want := range ok {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "65", "-1", "NOPE", "SIGRTMIN+40", "RTMINx"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"KILL", "9", "SIGRTMIN+3", "rtmax-2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := Parse(s)
		if err == nil && (sig < 1 || sig > 64) {
			t.Fatalf("Parse(%q) = %d, outside 1-64", s, sig)
		}
	})
}

func TestExitCode(t *testing.T) {
	// Raw wait statuses: exit code in bits 8-15, terminating signal in 0-6.
	for ws, want := range map[unix.WaitStatus]int{0: 0, 7 << 8: 7, 255 << 8: 255, 9: 137, 15: 143, 0x7f | 19<<8: 255} {
		if got := ExitCode(ws); got != want {
			t.Errorf("ExitCode(%#x) = %d, want %d", uint32(ws), got, want)
		}
	}
}
