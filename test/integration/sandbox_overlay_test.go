package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSandboxOverlay(t *testing.T) {
	forEachSandboxer(t, func(t *testing.T, s sandboxer) {
		data := filepath.Join(s.dir, "data")
		upper := filepath.Join(s.dir, "upper")
		work := filepath.Join(s.dir, "work")
		for _, d := range []string{data, upper, work} {
			os.MkdirAll(d, 0o755)
			if s.cred != nil {
				os.Chown(d, int(s.cred.Uid), int(s.cred.Gid))
			}
		}
		os.WriteFile(filepath.Join(data, "f"), []byte("orig"), 0o644)
		if s.cred != nil {
			os.Chown(filepath.Join(data, "f"), int(s.cred.Uid), int(s.cred.Gid))
		}
		// Thrown away: writable inside, even under ProtectSystem=strict,
		// and the host's directory unchanged after.
		out := s.mustRun(t, "--overlay", data, "-p", "ProtectSystem=strict", "--", "sh", "-c",
			"echo changed > "+data+"/f && echo new > "+data+"/g && cat "+data+"/f "+data+"/g && grep -q ' "+data+" .* - overlay ' /proc/self/mountinfo && echo overlay")
		if out != "changed\nnew\noverlay\n" {
			t.Errorf("inside: %q", out)
		}
		if got, _ := os.ReadFile(filepath.Join(data, "f")); string(got) != "orig" {
			t.Errorf("host's file changed: %q", got)
		}
		if _, err := os.Stat(filepath.Join(data, "g")); !os.IsNotExist(err) {
			t.Errorf("host got the new file: %v", err)
		}
		// Kept in UPPER.
		s.mustRun(t, "--overlay", data+":"+upper+":"+work, "--", "sh", "-c", "echo kept > "+data+"/k")
		if got, _ := os.ReadFile(filepath.Join(upper, "k")); string(got) != "kept\n" {
			t.Errorf("upper: %q", got)
		}
		if _, err := os.Stat(filepath.Join(data, "k")); !os.IsNotExist(err) {
			t.Errorf("host's lower got the file: %v", err)
		}
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--overlay", "/"}, "hako: sandbox: --overlay /: not the root: overlayfs does not cross mount points"},
			{[]string{"--overlay", data + ":" + upper}, "hako: sandbox: --overlay " + data + ":" + upper + ": PATH (changes thrown away) or PATH:UPPER:WORK"},
			{[]string{"--overlay", data + "/nonexistent"}, "hako: sandbox: --overlay " + data + "/nonexistent: no such file or directory"},
			{[]string{"--overlay", data, "--print-spec"}, "hako: sandbox: --print-spec with --overlay: a config.json cannot say it"},
		} {
			out, errs, code := s.run(t, append(c.args, "--", "echo", "RAN")...)
			if code != 1 || out != "" || !strings.HasPrefix(errs, c.want) {
				t.Errorf("%q: status %d %q %q", c.args, code, out, errs)
			}
		}
	})
}
