package bench

import (
	"os/exec"
	"testing"
)

// BenchmarkSandbox starts and ends a sandbox of /bin/true with hako and,
// side by side, bubblewrap's equivalent (apt-get install bubblewrap):
// `bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev /bin/true`
// against `hako sandbox -p ProtectSystem=strict -p PrivateNetwork=yes
// -p PrivateIPC=yes -p ProtectHostname=yes -- /bin/true` (the closest set:
// read-only root, new net, IPC, UTS, PID and mount namespaces, fresh
// /proc). hako's receipt check is included in its time.
func BenchmarkSandbox(b *testing.B) {
	cmds := map[string][]string{
		"hako": {runtimes[0].bin, "sandbox", "-p", "ProtectSystem=strict", "-p", "PrivateNetwork=yes", "-p", "PrivateIPC=yes", "-p", "ProtectHostname=yes", "--", "/bin/true"},
	}
	if p, err := exec.LookPath("bwrap"); err == nil {
		cmds["bwrap"] = []string{p, "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "/bin/true"}
	}
	for _, name := range []string{"hako", "bwrap"} {
		args, ok := cmds[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) {
			if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
				b.Skipf("%s cannot run here: %v: %s", name, err, out)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := exec.Command(args[0], args[1:]...)
				if err := c.Run(); err != nil {
					b.Fatalf("%s: %v", name, err)
				}
			}
			b.StopTimer()
			if kib, err := peakRSS(args...); err == nil {
				b.ReportMetric(float64(kib), "maxrss-KiB")
			}
		})
	}
}
