package integration

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bwrapRunner runs one command line under Debian's bwrap and under hako
// bwrap, as root or as an unprivileged user the test makes.
type bwrapRunner struct {
	hako string // a copy of hako every user may run
	cred *syscall.Credential
	home string
}

type bwrapResult struct {
	stdout, stderr string
	code           int
}

func newBwrapRunner(t *testing.T, unprivileged bool) *bwrapRunner {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bwrap missing (apt-get install bubblewrap)")
	}
	dir, err := os.MkdirTemp("", "hako-bwrap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	data, err := os.ReadFile(hakoBin)
	if err != nil {
		t.Fatal(err)
	}
	r := &bwrapRunner{hako: filepath.Join(dir, "hako"), home: "/root"}
	if err := os.WriteFile(r.hako, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if unprivileged {
		if _, err := user.Lookup(rootlessUser); err != nil {
			if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", rootlessUser).CombinedOutput(); err != nil {
				t.Skipf("useradd: %v %s", err, out)
			}
		}
		u, err := user.Lookup(rootlessUser)
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		r.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
		r.home = u.HomeDir
	}
	return r
}

// command is Debian's bwrap, or hako bwrap, with argv, as the runner's
// user, from /, in a fixed environment.
func (r *bwrapRunner) command(hako bool, argv []string) *exec.Cmd {
	name, args := "bwrap", argv
	if hako {
		name, args = r.hako, append([]string{"bwrap"}, argv...)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + r.home, "LANG=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
	return cmd
}

// run runs argv (bwrap's arguments) with files as fds 3, 4, ...; each
// file's contents are made fresh for each run by mk.
func (r *bwrapRunner) run(t *testing.T, hako bool, argv []string, mk func() []*os.File) bwrapResult {
	t.Helper()
	cmd := r.command(hako, argv)
	if mk != nil {
		cmd.ExtraFiles = mk()
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	return bwrapResult{out.String(), errb.String(), code}
}

// dataFile is a pipe holding data, as callers pass --file and --args.
func dataFile(t *testing.T, data string) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString(data)
	w.Close()
	return r
}

type bwrapCase struct {
	name string
	argv []string
	// files makes the fds 3, 4, ... for one run.
	files func(t *testing.T) []*os.File
	// norm rewrites what legitimately differs (pids, inode numbers).
	norm func(string) string
	// rootOnly, userOnly: where the case means something.
	rootOnly bool
}

var numbers = regexp.MustCompile(`[0-9]+`)

// seccompDenyMkdir is a classic BPF program, as Flatpak writes it to
// --seccomp's fd: mkdir and mkdirat fail with EPERM on x86_64.
func seccompDenyMkdir() []byte {
	const (
		ldW  = 0x20 // BPF_LD|BPF_W|BPF_ABS
		jeqK = 0x15 // BPF_JMP|BPF_JEQ|BPF_K
		retK = 0x06 // BPF_RET|BPF_K
	)
	ins := [][4]uint32{
		{ldW, 0, 0, 4},               // arch
		{jeqK, 0, 4, 0xc000003e},     // x86_64, else allow
		{ldW, 0, 0, 0},               // nr
		{jeqK, 2, 0, 83},             // mkdir
		{jeqK, 1, 0, 258},            // mkdirat
		{retK, 0, 0, 0x7fff0000},     // allow
		{retK, 0, 0, 0x00050000 | 1}, // errno EPERM
	}
	var b []byte
	for _, i := range ins {
		b = binary.LittleEndian.AppendUint16(b, uint16(i[0]))
		b = append(b, byte(i[1]), byte(i[2]))
		b = binary.LittleEndian.AppendUint32(b, i[3])
	}
	return b
}

func bwrapCases() []bwrapCase {
	common := []string{"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--unshare-all", "--die-with-parent"}
	sh := func(pre []string, script string) []string {
		return append(append([]string{}, pre...), "sh", "-c", script)
	}
	flatpak := []string{"--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
		"--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin", "--dir", "/tmp/a/b", "--perms", "0700", "--dir", "/run/user",
		"--perms", "01777", "--tmpfs", "/var/tmp", "--proc", "/proc", "--dev", "/dev", "--unshare-pid", "--die-with-parent", "--chdir", "/"}
	return []bwrapCase{
		{name: "common-sandbox", argv: sh(common, `id; ls /dev; grep -E "^Cap(Eff|Prm|Bnd|Amb)" /proc/self/status; pwd; hostname >/dev/null; ls /tmp | wc -l; touch /x 2>&1; echo $?; grep NoNewPrivs /proc/self/status; cat /proc/self/stat | cut -d" " -f1 | grep -qx 1 && echo pid1 || echo notpid1`)},
		{name: "mounts", argv: sh(common, `findmnt -rn -o TARGET,FSTYPE | grep -E "^/(dev|proc|tmp)( |/)" | grep -v cgroup`)},
		{name: "flatpak-layout", argv: sh(flatpak, `for f in / /bin /lib /lib64 /sbin /usr /tmp /tmp/a /tmp/a/b /run /run/user /var /var/tmp /dev /dev/shm /dev/pts; do stat -c "%A %U %N" $f; done; readlink /dev/stdout /dev/ptmx /dev/fd`)},
		{name: "file-and-bind-data", argv: sh([]string{"--ro-bind", "/", "/", "--tmpfs", "/etc", "--file", "3", "/etc/hello", "--perms", "0640", "--file", "4", "/etc/secret", "--bind-data", "5", "/etc/data", "--ro-bind-data", "6", "/etc/rodata"},
			`cat /etc/hello /etc/secret /etc/data /etc/rodata; stat -c "%a %n" /etc/hello /etc/secret; echo x >> /etc/rodata 2>/dev/null || echo rodata-readonly; echo y >> /etc/data && echo data-writable`),
			files: func(t *testing.T) []*os.File {
				return []*os.File{dataFile(t, "hello\n"), dataFile(t, "secret\n"), dataFile(t, "data\n"), dataFile(t, "rodata\n")}
			}},
		{name: "args-fd", argv: []string{"--args", "3", "sh", "-c", "echo $A; pwd; ls /"},
			files: func(t *testing.T) []*os.File {
				return []*os.File{dataFile(t, strings.Join([]string{"--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--setenv", "A", "from-args", "--chdir", "/usr"}, "\x00")+"\x00")}
			}},
		{name: "info-fd", argv: []string{"--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--info-fd", "3", "--json-status-fd", "4", "sh", "-c", "cat /proc/self/status >/dev/null; exit 3"},
			norm: func(s string) string { return numbers.ReplaceAllString(s, "N") }},
		{name: "env-and-chdir", argv: []string{"--ro-bind", "/", "/", "--clearenv", "--setenv", "A", "1", "--setenv", "B", "2", "--unsetenv", "B", "--setenv", "PATH", "/usr/bin:/bin", "--chdir", "/usr", "env"}},
		{name: "cwd-default", argv: []string{"--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--dir", "/etc", "sh", "-c", "pwd; echo $PWD"}},
		{name: "cap-drop-all", argv: sh([]string{"--ro-bind", "/", "/", "--cap-drop", "ALL"}, `grep -E "^Cap(Eff|Prm|Bnd)" /proc/self/status`), rootOnly: true},
		{name: "cap-add", argv: sh([]string{"--ro-bind", "/", "/", "--unshare-user", "--cap-drop", "ALL", "--cap-add", "cap_net_raw", "--uid", "0", "--gid", "0"}, `grep -E "^Cap(Eff|Prm|Bnd)" /proc/self/status; id -u`)},
		{name: "seccomp-fd", argv: sh([]string{"--ro-bind", "/", "/", "--tmpfs", "/tmp", "--seccomp", "3"}, `mkdir /tmp/x; echo $?; touch /tmp/y && echo touched`),
			files: func(t *testing.T) []*os.File { return []*os.File{dataFile(t, string(seccompDenyMkdir()))} }},
		{name: "exit-code", argv: []string{"--ro-bind", "/", "/", "sh", "-c", "exit 42"}},
		{name: "exit-signal-pidns", argv: []string{"--ro-bind", "/", "/", "--unshare-pid", "sh", "-c", "kill -9 $$"}},
		{name: "hostname", argv: []string{"--ro-bind", "/", "/", "--unshare-uts", "--hostname", "sandbox", "hostname"}},
		{name: "remount-ro", argv: sh([]string{"--ro-bind", "/", "/", "--tmpfs", "/mnt", "--dir", "/mnt/d", "--remount-ro", "/mnt"}, `touch /mnt/x 2>/dev/null && echo writable || echo read-only`)},
		{name: "tmpfs-size-perms", argv: sh([]string{"--ro-bind", "/", "/", "--size", "1048576", "--perms", "0700", "--tmpfs", "/mnt"}, `stat -c %a /mnt; findmnt -no OPTIONS /mnt | tr , "\n" | grep -E "^(size|mode)="`)},
		{name: "bind-try-missing", argv: []string{"--ro-bind", "/", "/", "--bind-try", "/nonexistent-hako", "/x", "--ro-bind-try", "/nonexistent-hako", "/y", "sh", "-c", "ls /x /y 2>&1 | wc -l"}},
		{name: "bind-relative-and-chmod", argv: sh([]string{"--ro-bind", "/", "/", "--tmpfs", "/mnt", "--bind", "usr", "/mnt/u", "--dir", "/mnt/d", "--chmod", "0711", "/mnt/d"}, `ls /mnt/u >/dev/null && echo bound; stat -c %a /mnt/d`)},
		// The caller's fds reach the command at their numbers; those an
		// option uses (--file, --info-fd, --sync-fd) do not.
		{name: "inherited-fds", argv: sh([]string{"--ro-bind", "/", "/", "--tmpfs", "/tmp", "--file", "4", "/tmp/f", "--info-fd", "5", "--sync-fd", "7"},
			`cat <&3; cat /tmp/f; cat <&6; for f in 3 4 5 6 7 8; do [ -e /proc/self/fd/$f ] && echo open $f || echo closed $f; done`),
			files: func(t *testing.T) []*os.File {
				return []*os.File{dataFile(t, "three\n"), dataFile(t, "four\n"), devNullW(t), dataFile(t, "six\n"), devNull(t)}
			}, norm: dropInfo},
		{name: "inherited-fds-reaped", argv: sh([]string{"--ro-bind", "/", "/", "--unshare-pid", "--seccomp", "4"}, `cat <&3; cat <&5; ls /proc/self/fd/4 2>/dev/null || echo closed 4`),
			files: func(t *testing.T) []*os.File {
				return []*os.File{dataFile(t, "three\n"), dataFile(t, string(seccompAllow())), dataFile(t, "five\n")}
			}},
		{name: "sync-fd-as-pid-1", argv: sh([]string{"--ro-bind", "/", "/", "--unshare-pid", "--as-pid-1", "--sync-fd", "3"}, `[ -e /proc/self/fd/3 ] && echo sync-fd-leaked`),
			files: func(t *testing.T) []*os.File { return []*os.File{devNull(t)} }},
		{name: "lock-file", argv: sh([]string{"--ro-bind", "/", "/", "--lock-file", "/etc/hostname", "--lock-file", "/etc/passwd"},
			`for f in /etc/hostname /etc/passwd; do i=$(stat -c %i $f); grep -E "POSIX +ADVISORY +READ .*:$i " /proc/locks | wc -l; done; ls /proc/self/fd | wc -l`)},
		{name: "lock-file-pidns", argv: sh([]string{"--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "--chdir", "/etc", "--lock-file", "passwd"},
			`i=$(stat -c %i /etc/passwd); grep -cE "POSIX +ADVISORY +READ +1 .*:$i " /proc/locks`)},
		{name: "bind-fd", argv: sh([]string{"--ro-bind", "/", "/", "--tmpfs", "/mnt", "--bind-fd", "3", "/mnt/x", "--ro-bind-fd", "4", "/mnt/y"},
			`ls /mnt/x | head -3; touch /mnt/y/z 2>/dev/null && echo y-writable || echo y-read-only; [ -e /proc/self/fd/3 ] && echo fd3-leaked; findmnt -no TARGET /mnt/x /mnt/y`),
			files: func(t *testing.T) []*os.File { return []*os.File{openDir(t, "/usr"), openDir(t, "/usr/share")} }},
		{name: "disable-userns", argv: sh([]string{"--ro-bind", "/", "/", "--unshare-user", "--disable-userns", "--unshare-pid"}, `unshare -U true 2>&1; echo $?; cat /proc/sys/user/max_user_namespaces; id -u`)},
		{name: "disable-userns-uid0-caps", argv: sh([]string{"--ro-bind", "/", "/", "--unshare-user", "--uid", "0", "--disable-userns", "--cap-add", "ALL", "--tmpfs", "/proc/sys/user"}, `unshare -U true 2>&1; echo $?`)},
		{name: "err-disable-userns", argv: []string{"--ro-bind", "/", "/", "--unshare-all", "--disable-userns", "true"}},
		{name: "err-assert-userns-disabled", argv: []string{"--ro-bind", "/", "/", "--assert-userns-disabled", "true"}},
		{name: "err-lock-file", argv: []string{"--ro-bind", "/", "/", "--lock-file", "/nonexistent-hako", "true"}},
		{name: "err-lock-file-as-pid-1", argv: []string{"--ro-bind", "/", "/", "--unshare-pid", "--as-pid-1", "--lock-file", "/etc/passwd", "true"}},
		{name: "err-as-pid-1", argv: []string{"--ro-bind", "/", "/", "--as-pid-1", "true"}},
		{name: "err-bind-fd-closed", argv: []string{"--ro-bind", "/", "/", "--bind-fd", "9", "/x", "true"}},
		{name: "err-bind-fd-args", argv: []string{"--ro-bind-fd", "3"}},
		{name: "err-exec-label", argv: []string{"--ro-bind", "/", "/", "--exec-label", "system_u:system_r:container_t:s0", "true"}},
		{name: "err-file-label", argv: []string{"--file-label", "x", "--bind", "/"}},
		{name: "err-label-arg", argv: []string{"--exec-label"}},
		// --bind-data's default 0600 and --perms with setuid, setgid
		// and sticky bits, on --bind-data, --ro-bind-data and --file.
		{name: "data-file-modes", argv: sh([]string{"--ro-bind", "/", "/", "--tmpfs", "/tmp", "--bind-data", "3", "/tmp/f", "--perms", "0640", "--ro-bind-data", "4", "/tmp/g",
			"--perms", "4755", "--bind-data", "5", "/tmp/h", "--perms", "2711", "--file", "6", "/tmp/i", "--perms", "1777", "--dir", "/tmp/j"}, `stat -c "%a %n" /tmp/f /tmp/g /tmp/h /tmp/i /tmp/j`),
			files: func(t *testing.T) []*os.File {
				return []*os.File{dataFile(t, "f"), dataFile(t, "g"), dataFile(t, "h"), dataFile(t, "i")}
			}},
		{name: "err-missing-source", argv: []string{"--ro-bind", "/nonexistent-hako", "/x", "true"}},
		{name: "err-takes-two", argv: []string{"--bind", "/"}},
		{name: "err-unknown", argv: []string{"--frobnicate", "true"}},
		{name: "err-perms", argv: []string{"--perms", "999", "--dir", "/x", "true"}},
		{name: "err-perms-unused", argv: []string{"--perms", "0700", "--ro-bind", "/", "/", "true"}},
		{name: "err-size", argv: []string{"--size", "0", "--tmpfs", "/x", "true"}},
		{name: "err-fd", argv: []string{"--file", "x3", "/x", "true"}},
		{name: "err-hostname", argv: []string{"--hostname", "x", "--ro-bind", "/", "/", "true"}},
		{name: "err-cap", argv: []string{"--cap-add", "CAP_NONSENSE", "true"}},
		{name: "err-no-command", argv: []string{"--ro-bind", "/", "/"}, norm: func(s string) string { return firstLine(s) }},
		{name: "err-command-missing", argv: []string{"--ro-bind", "/", "/", "/nonexistent-hako"}, norm: func(s string) string { return "" }},
	}
}

func devNull(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func devNullW(t *testing.T) *os.File {
	t.Helper()
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func openDir(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// seccompAllow is a filter that allows everything.
func seccompAllow() []byte {
	b := binary.LittleEndian.AppendUint16(nil, 0x06)
	b = append(b, 0, 0)
	return binary.LittleEndian.AppendUint32(b, 0x7fff0000)
}

// dropInfo drops the info document's numbers, which differ run to run.
func dropInfo(s string) string { return numbers.ReplaceAllString(s, "N") }

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// The same command lines under Debian's bwrap and hako bwrap, as root and
// as an unprivileged user: the same stdout, stderr and exit status.
func TestBwrapSideBySide(t *testing.T) {
	for _, who := range []string{"root", "unprivileged"} {
		t.Run(who, func(t *testing.T) {
			r := newBwrapRunner(t, who == "unprivileged")
			for _, c := range bwrapCases() {
				if c.rootOnly && who != "root" {
					continue
				}
				if c.name == "seccomp-fd" && runtime.GOARCH != "amd64" {
					continue
				}
				t.Run(c.name, func(t *testing.T) {
					mk := func() []*os.File { return nil }
					if c.files != nil {
						mk = func() []*os.File { return c.files(t) }
					}
					var info [2]string
					if c.name == "info-fd" {
						// Both documents come back through pipes the runs write.
						res := [2]bwrapResult{}
						for i, hako := range []bool{false, true} {
							ir, iw, _ := os.Pipe()
							jr, jw, _ := os.Pipe()
							res[i] = r.run(t, hako, c.argv, func() []*os.File { return []*os.File{iw, jw} })
							a, _ := readPipe(ir)
							b, _ := readPipe(jr)
							info[i] = c.norm(a + "---\n" + b)
						}
						if info[0] != info[1] || res[0].code != res[1].code {
							t.Errorf("info/json-status differ:\nbwrap (%d):\n%s\nhako (%d):\n%s", res[0].code, info[0], res[1].code, info[1])
						}
						if !strings.Contains(info[1], `"pid-namespace": N`) || !strings.Contains(info[1], `{ "exit-code": N }`) {
							t.Errorf("hako's documents lack bwrap's fields:\n%s", info[1])
						}
						return
					}
					want := r.run(t, false, c.argv, mk)
					got := r.run(t, true, c.argv, mk)
					norm := c.norm
					if norm == nil {
						norm = func(s string) string { return s }
					}
					if norm(want.stdout) != norm(got.stdout) || norm(want.stderr) != norm(got.stderr) || want.code != got.code {
						t.Errorf("argv %q\nbwrap: status %d\nstdout:\n%s\nstderr:\n%s\nhako: status %d\nstdout:\n%s\nstderr:\n%s",
							c.argv, want.code, want.stdout, want.stderr, got.code, got.stdout, got.stderr)
					}
				})
			}
		})
	}
}

func readPipe(f *os.File) (string, error) {
	defer f.Close()
	var b bytes.Buffer
	_, err := b.ReadFrom(f)
	return b.String(), err
}

// Installed under the name bwrap, hako is bwrap.
func TestBwrapArgv0(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "bwrap")
	if err := os.Symlink(hakoBin, link); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(link, "--ro-bind", "/", "/", "echo", "as-bwrap").CombinedOutput()
	if err != nil || string(out) != "as-bwrap\n" {
		t.Fatalf("bwrap link: %v %q", err, out)
	}
	out, _ = exec.Command(link, "--version").CombinedOutput()
	if !strings.HasPrefix(string(out), "bubblewrap ") {
		t.Errorf("--version: %q", out)
	}
	out, _ = exec.Command(link, "--help").CombinedOutput()
	if !strings.HasPrefix(string(out), "usage: "+link+" [OPTIONS...] [--] COMMAND [ARGS...]") {
		t.Errorf("--help: %q", firstLine(string(out)))
	}
}

// Options newer than Debian's bwrap 0.8 (--argv0, the overlays), checked
// against bubblewrap 0.11's documented behaviour, as root and unprivileged.
func TestBwrapNewerOptions(t *testing.T) {
	for _, who := range []string{"root", "unprivileged"} {
		t.Run(who, func(t *testing.T) {
			r := newBwrapRunner(t, who == "unprivileged")
			dir, err := os.MkdirTemp("", "hako-bwrap-ov-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			os.Chmod(dir, 0o755)
			for _, d := range []string{"lo1", "lo2", "up", "work"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
				if r.cred != nil {
					os.Chown(filepath.Join(dir, d), int(r.cred.Uid), int(r.cred.Gid))
				}
			}
			os.WriteFile(filepath.Join(dir, "lo1", "a"), []byte("a-from-lo1\n"), 0o644)
			os.WriteFile(filepath.Join(dir, "lo1", "b"), []byte("b-from-lo1\n"), 0o644)
			os.WriteFile(filepath.Join(dir, "lo2", "b"), []byte("b-from-lo2\n"), 0o644)
			lo1, lo2 := filepath.Join(dir, "lo1"), filepath.Join(dir, "lo2")
			for _, c := range []struct {
				name string
				argv []string
				want string
				code int
			}{
				{"argv0", []string{"--ro-bind", "/", "/", "--argv0", "renamed", "sh", "-c", "echo $0"}, "renamed\n", 0},
				// The last --overlay-src is the top layer; writes go to
				// a tmpfs nobody sees.
				{"tmp-overlay", []string{"--ro-bind", "/", "/", "--overlay-src", lo1, "--overlay-src", lo2, "--tmp-overlay", "/mnt",
					"sh", "-c", "cat /mnt/a /mnt/b; echo new > /mnt/new && cat /mnt/new; findmnt -no FSTYPE /mnt"}, "a-from-lo1\nb-from-lo2\nnew\noverlay\n", 0},
				{"ro-overlay", []string{"--ro-bind", "/", "/", "--overlay-src", lo2, "--overlay-src", lo1, "--ro-overlay", "/mnt",
					"sh", "-c", "cat /mnt/b; touch /mnt/x 2>&1 | grep -o 'Read-only file system'"}, "b-from-lo1\nRead-only file system\n", 0},
				{"overlay", []string{"--ro-bind", "/", "/", "--overlay-src", lo1, "--overlay", filepath.Join(dir, "up"), filepath.Join(dir, "work"), "/mnt",
					"sh", "-c", "echo kept > /mnt/w; rm /mnt/a; ls /mnt"}, "b\nw\n", 0},
				{"err-unfollowed", []string{"--overlay-src", lo1, "--dir", "/x", "true"}, "bwrap: --overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay\n", 1},
				{"err-no-src", []string{"--tmp-overlay", "/x", "true"}, "bwrap: --tmp-overlay requires at least one --overlay-src\n", 1},
				{"err-ro-one-src", []string{"--overlay-src", lo1, "--ro-overlay", "/x", "true"}, "bwrap: --ro-overlay requires at least two --overlay-src\n", 1},
				{"err-missing-src", []string{"--ro-bind", "/", "/", "--overlay-src", "/nonexistent-hako", "--tmp-overlay", "/x", "true"}, "bwrap: Can't find source path /nonexistent-hako: No such file or directory\n", 1},
				// bubblewrap 0.9's --level-prefix: from where it is given on.
				{"level-prefix", []string{"--level-prefix", "--bind", "/"}, "<3>bwrap: --bind takes two arguments\n", 1},
				{"level-prefix-late", []string{"--frobnicate", "--level-prefix", "true"}, "bwrap: Unknown option --frobnicate\n", 1},
				{"level-prefix-run", []string{"--level-prefix", "--ro-bind", "/nonexistent-hako", "/x", "true"}, "<3>bwrap: Can't find source path /nonexistent-hako: No such file or directory\n", 1},
				{"err-argv0-twice", []string{"--argv0", "a", "--argv0", "b", "true"}, "bwrap: --argv0 used multiple times\n", 1},
			} {
				t.Run(c.name, func(t *testing.T) {
					res := r.run(t, true, c.argv, nil)
					if res.stdout+res.stderr != c.want || res.code != c.code {
						t.Errorf("argv %q: status %d\nstdout:\n%s\nstderr:\n%s\nwant status %d and:\n%s", c.argv, res.code, res.stdout, res.stderr, c.code, c.want)
					}
				})
			}
			// The rw overlay's writes, and the whiteout of /mnt/a, are
			// in the upper directory; the layers are as they were.
			if data, err := os.ReadFile(filepath.Join(dir, "up", "w")); err != nil || string(data) != "kept\n" {
				t.Errorf("upper dir: %q %v", data, err)
			}
			if _, err := os.Stat(filepath.Join(dir, "lo1", "a")); err != nil {
				t.Errorf("lower layer changed: %v", err)
			}
			if ents, _ := os.ReadDir(lo2); len(ents) != 1 {
				t.Errorf("lower layer changed: %v", ents)
			}
		})
	}
}

// --userns and --pidns enter a running sandbox's namespaces, and
// --userns-block-fd lets the caller write the maps: the same results from
// Debian's bwrap and hako bwrap, as root and unprivileged.
func TestBwrapJoinNamespaces(t *testing.T) {
	for _, who := range []string{"root", "unprivileged"} {
		t.Run(who, func(t *testing.T) {
			r := newBwrapRunner(t, who == "unprivileged")
			var join, rest [2]string
			for i, hako := range []bool{false, true} {
				join[i], rest[i] = r.joinScenario(t, hako)
			}
			// Debian's bwrap 0.8 fails now and then (as root, and seen
			// once unprivileged) to pass the joined PID namespace's pid
			// over SCM_CREDENTIALS: "Can't send pid: Invalid argument",
			// "Unexpected short read from pid socket". Where it does,
			// hako is held to what bwrap prints when it works: the
			// caller's uid inside.
			want := join[0]
			if strings.Contains(want, "status 1") && (strings.Contains(want, "Can't send pid") || strings.Contains(want, "pid socket")) {
				t.Logf("Debian's bwrap failed to join:\n%s", want)
				uid := 0
				if r.cred != nil {
					uid = int(r.cred.Uid)
				}
				want = fmt.Sprintf("join: status 0\nuser=A pid=A\n%d\nopen 3\nopen 4\n\nnested: status 0, a new namespace: true\n", uid)
			}
			if want != join[1] || rest[0] != rest[1] {
				t.Errorf("bwrap:\n%s%s\nhako:\n%s%s", join[0], rest[0], join[1], rest[1])
			}
			if !strings.HasPrefix(join[1], "join: status 0\nuser=A pid=A\n") {
				t.Errorf("hako did not join the namespaces:\n%s", join[1])
			}
		})
	}
}

// start runs argv in the background with files as fds 3, 4, ...
func (r *bwrapRunner) start(t *testing.T, hako bool, argv []string, stdin *os.File, files ...*os.File) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := r.command(hako, argv)
	cmd.ExtraFiles = files
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.Close()
	}
	return cmd, &out
}

var childPid = regexp.MustCompile(`"child-pid": ([0-9]+)`)

func (r *bwrapRunner) joinScenario(t *testing.T, hako bool) (join, rest string) {
	var report strings.Builder
	// A: a sandbox with its own user and PID namespaces, kept alive by its
	// stdin; its --info-fd names it (and reaches EOF once written).
	hold, holdW, _ := os.Pipe()
	infoR, infoW, _ := os.Pipe()
	a, aOut := r.start(t, hako, []string{"--unshare-user", "--unshare-pid", "--info-fd", "3", "--ro-bind", "/", "/",
		"sh", "-c", "readlink /proc/self/ns/user /proc/self/ns/pid; read x"}, hold, infoW)
	hold.Close()
	info, _ := readPipe(infoR)
	m := childPid.FindStringSubmatch(info)
	if m == nil {
		holdW.Close()
		a.Wait()
		t.Fatalf("no child-pid in %q (%s)", info, aOut)
	}
	open := func(p string) *os.File {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	// B joins them.
	b := r.run(t, hako, []string{"--userns", "3", "--pidns", "4", "--ro-bind", "/", "/", "--proc", "/proc",
		"sh", "-c", "readlink /proc/self/ns/user /proc/self/ns/pid; id -u; for f in 3 4; do [ -e /proc/self/fd/$f ] && echo open $f; done"},
		func() []*os.File {
			return []*os.File{open("/proc/" + m[1] + "/ns/user"), open("/proc/" + m[1] + "/ns/pid")}
		})
	// A's namespaces, as its init (the child-pid) has them.
	var aLines []string
	for _, ns := range []string{"user", "pid"} {
		l, err := os.Readlink("/proc/" + m[1] + "/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		aLines = append(aLines, l)
	}
	bOut := b.stdout
	if len(aLines) >= 2 {
		bOut = strings.Replace(bOut, aLines[0], "user=A", 1)
		bOut = strings.Replace(bOut, aLines[1], "pid=A", 1)
		bOut = strings.Replace(bOut, "\npid=A", " pid=A", 1)
	}
	join = fmt.Sprintf("join: status %d\n%s%s\n", b.code, bOut, b.stderr)
	// And a new PID namespace below the joined one.
	n := r.run(t, hako, []string{"--userns", "3", "--pidns", "4", "--unshare-pid", "--ro-bind", "/", "/", "--proc", "/proc",
		"readlink", "/proc/self/ns/pid"},
		func() []*os.File {
			return []*os.File{open("/proc/" + m[1] + "/ns/user"), open("/proc/" + m[1] + "/ns/pid")}
		})
	join += fmt.Sprintf("nested: status %d, a new namespace: %v%s\n", n.code, len(aLines) >= 2 && strings.HasPrefix(n.stdout, "pid:[") && !strings.Contains(n.stdout, aLines[1]), n.stderr)
	holdW.Close()
	a.Wait()
	if got := strings.Fields(aOut.String()); len(got) != 2 || got[0] != aLines[0] || got[1] != aLines[1] {
		t.Errorf("A's own view of its namespaces %q, its init's %q", got, aLines)
	}
	for _, bad := range []struct{ name, argv string }{
		{"not-a-namespace", "--userns 3 --ro-bind / / true"},
		{"pidns-not-a-namespace", "--pidns 3 --ro-bind / / true"},
	} {
		res := r.run(t, hako, strings.Fields(bad.argv), func() []*os.File { return []*os.File{open("/etc/hostname")} })
		fmt.Fprintf(&report, "%s: status %d %s\n", bad.name, res.code, firstLine(res.stderr))
	}

	// C: the caller writes the maps of C's user namespace (root inside),
	// then lets it go on.
	infoR, infoW, _ = os.Pipe()
	blockR, blockW, _ := os.Pipe()
	c, cOut := r.start(t, hako, []string{"--unshare-user", "--info-fd", "3", "--userns-block-fd", "4", "--ro-bind", "/", "/",
		"sh", "-c", "id -u; cat /proc/self/uid_map"}, nil, infoW, blockR)
	info, _ = readPipe(infoR)
	if m = childPid.FindStringSubmatch(info); m == nil {
		blockW.Close()
		c.Wait()
		t.Fatalf("no child-pid in %q (%s)", info, cOut)
	}
	uid := 0
	if r.cred != nil {
		uid = int(r.cred.Uid)
	}
	os.WriteFile("/proc/"+m[1]+"/setgroups", []byte("deny"), 0)
	if err := os.WriteFile("/proc/"+m[1]+"/uid_map", []byte(fmt.Sprintf("0 %d 1\n", uid)), 0); err != nil {
		t.Errorf("uid_map: %v", err)
	}
	os.WriteFile("/proc/"+m[1]+"/gid_map", []byte(fmt.Sprintf("0 %d 1\n", uid)), 0)
	blockW.Write([]byte{1})
	blockW.Close()
	c.Wait()
	fmt.Fprintf(&report, "userns-block-fd: status %d\n%s", c.ProcessState.ExitCode(), strings.Join(strings.Fields(cOut.String()), " "))
	return join, report.String()
}

// CVE-2019-5736 as an unprivileged caller: a hako binary the caller cannot
// write runs unsealed (nothing the sandbox starts can write it either, and
// the memfd copy costs more than the rest of the start); one the caller
// owns runs from a sealed copy. Either way the sandbox cannot write it.
func TestBwrapUnprivilegedSeal(t *testing.T) {
	r := newBwrapRunner(t, true)
	own := filepath.Join(filepath.Dir(r.hako), "own")
	if err := os.Mkdir(own, 0o755); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(r.hako)
	ownBin := filepath.Join(own, "hako")
	if err := os.WriteFile(ownBin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(ownBin, int(r.cred.Uid), int(r.cred.Gid))
	for _, c := range []struct{ bin, exe string }{{r.hako, r.hako}, {ownBin, "/memfd:hako (deleted)"}} {
		cmd := exec.Command(c.bin, "bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc",
			"sh", "-c", "readlink /proc/1/exe; echo x >> /proc/1/exe && echo WROTE")
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
		out, _ := cmd.CombinedOutput()
		if !strings.HasPrefix(string(out), c.exe+"\n") || strings.Contains(string(out), "WROTE") {
			t.Errorf("%s: %s", c.bin, out)
		}
	}
}

// With an init (--unshare-pid), bwrap returns the command's status as soon
// as it ends, while what it left running keeps the sandbox, its locks and
// the --sync-fd alive: the same under Debian's bwrap and hako bwrap.
func TestBwrapSyncFDOutlivesCommand(t *testing.T) {
	for _, who := range []string{"root", "unprivileged"} {
		t.Run(who, func(t *testing.T) {
			r := newBwrapRunner(t, who == "unprivileged")
			for _, hako := range []bool{false, true} {
				dir, err := os.MkdirTemp("", "hako-bwrap-sync-")
				if err != nil {
					t.Fatal(err)
				}
				defer os.RemoveAll(dir)
				fifo := filepath.Join(dir, "release")
				if err := syscall.Mkfifo(fifo, 0o666); err != nil {
					t.Fatal(err)
				}
				os.Chmod(dir, 0o777)
				os.Chmod(fifo, 0o666)
				syncR, syncW, _ := os.Pipe()
				cmd, out := r.start(t, hako, []string{"--ro-bind", "/", "/", "--dev", "/dev", "--bind", dir, dir, "--unshare-pid", "--sync-fd", "3",
					"sh", "-c", "(read x < " + fifo + ") & exit 7"}, nil, syncW)
				// Not cmd.Wait: it would wait for the background
				// process to let go of the output pipe.
				st, err := cmd.Process.Wait()
				if err != nil {
					t.Fatal(err)
				}
				code := st.ExitCode()
				// The background reader still runs: no EOF yet.
				fds := []unix.PollFd{{Fd: int32(syncR.Fd()), Events: unix.POLLIN}}
				n, _ := unix.Poll(fds, 200)
				early := n > 0
				// Non-blocking: if the reader is gone, there is no one
				// to release (ENXIO), and the test must not hang.
				if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					f.WriteString("go\n")
					f.Close()
				}
				n, _ = unix.Poll(fds, 10000)
				syncR.Close()
				if code != 7 || early || n != 1 {
					t.Errorf("hako=%v: status %d (want 7), sync-fd closed with the command: %v, closed once the sandbox ended: %v", hako, code, early, n == 1)
				}
				cmd.Wait()
				if code != 7 {
					t.Logf("output: %s", out)
				}
			}
		})
	}
}

// --block-fd holds the command back once the sandbox is set up: its root
// is there to look at (through /proc/<child-pid>/root) while the caller
// has not written yet. The same under Debian's bwrap and hako bwrap.
func TestBwrapBlockFDAfterSetup(t *testing.T) {
	for _, who := range []string{"root", "unprivileged"} {
		t.Run(who, func(t *testing.T) {
			r := newBwrapRunner(t, who == "unprivileged")
			for _, hako := range []bool{false, true} {
				infoR, infoW, _ := os.Pipe()
				blockR, blockW, _ := os.Pipe()
				cmd, out := r.start(t, hako, []string{"--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
					"--symlink", "usr/lib64", "/lib64", "--dir", "/hako-block-marker", "--info-fd", "3", "--block-fd", "4", "--unshare-pid", "echo", "ran"}, nil, infoW, blockR)
				info, _ := readPipe(infoR)
				m := childPid.FindStringSubmatch(info)
				if m == nil {
					blockW.Close()
					cmd.Wait()
					t.Fatalf("hako=%v: no child-pid in %q (%s)", hako, info, out)
				}
				seen := false
				for i := 0; i < 100 && !seen; i++ {
					_, err := os.Stat("/proc/" + m[1] + "/root/hako-block-marker")
					seen = err == nil
					if !seen {
						time.Sleep(50 * time.Millisecond)
					}
				}
				early := out.Len() > 0
				blockW.Write([]byte{1})
				blockW.Close()
				cmd.Wait()
				if !seen || early || out.String() != "ran\n" {
					t.Errorf("hako=%v: root set up while blocked: %v, ran before the write: %v, output %q", hako, seen, early, out)
				}
			}
		})
	}
}

// --userns2: once the sandbox is set up in the user namespace A (--userns),
// the command runs in B, a child of A, both held by processes the caller
// made with unshare(1). The same ids, maps, namespace, fds, statuses and
// errors (B not below A, A itself, a file that is no namespace, a new user
// namespace instead of A) from Debian's bwrap and hako bwrap, as root and
// unprivileged.
func TestBwrapUserns2(t *testing.T) {
	for _, who := range []string{"root", "unprivileged"} {
		t.Run(who, func(t *testing.T) {
			r := newBwrapRunner(t, who == "unprivileged")
			a, b := r.userNSPair(t)
			names := map[string]string{}
			for name, p := range map[string]string{"A": a, "B": b, "H": "/proc/self/ns/user"} {
				l, err := os.Readlink(p)
				if err != nil {
					t.Fatal(err)
				}
				names[l] = name
			}
			probe := `id -u; id -g; cat /proc/self/uid_map; readlink /proc/self/ns/user; ls /proc/self/fd | tr '\n' ' '; echo`
			cases := []struct {
				name  string
				argv  string
				files []string
			}{
				{"enter", "--userns 3 --userns2 4 --ro-bind / / --proc /proc sh -c", []string{a, b}},
				{"enter-pid-reaper", "--userns 3 --userns2 4 --unshare-pid --die-with-parent --ro-bind / / --proc /proc sh -c", []string{a, b}},
				{"enter-caps", "--userns 3 --userns2 4 --cap-add ALL --ro-bind / / --proc /proc sh -c", []string{a, b}},
				{"without-userns", "--userns2 3 --ro-bind / / --proc /proc sh -c", []string{a}},
				{"err-not-below", "--userns 3 --userns2 4 --ro-bind / / --proc /proc sh -c", []string{a, "/proc/self/ns/user"}},
				{"err-same", "--userns 3 --userns2 3 --ro-bind / / --proc /proc sh -c", []string{a}},
				{"err-not-a-namespace", "--userns 3 --userns2 4 --ro-bind / / --proc /proc sh -c", []string{a, "/etc/hostname"}},
				{"err-unshare-user", "--unshare-user --userns2 3 --ro-bind / / --proc /proc sh -c", []string{b}},
			}
			for _, c := range cases {
				script := probe
				if c.name == "enter-pid-reaper" {
					script += "; exit 3"
				}
				if c.name == "enter-caps" {
					script = `grep -E '^(Cap|NoNewPrivs)' /proc/self/status`
				}
				argv := append(strings.Fields(c.argv), script)
				var res [2]bwrapResult
				for i, hako := range []bool{false, true} {
					res[i] = r.runGroup(t, hako, argv, c.files)
					for l, name := range names {
						res[i].stdout = strings.ReplaceAll(res[i].stdout, l, "user="+name)
					}
				}
				t.Logf("%s: status %d, %q %q", c.name, res[1].code, res[1].stdout, res[1].stderr)
				if res[0] != res[1] {
					t.Errorf("%s: %s\nbwrap: status %d\n%s%s\nhako: status %d\n%s%s", c.name, strings.Join(argv, " "),
						res[0].code, res[0].stdout, res[0].stderr, res[1].code, res[1].stdout, res[1].stderr)
				}
				// Not two equal failures: the command ran in B.
				if strings.HasPrefix(c.name, "enter") && c.name != "enter-caps" && !strings.Contains(res[1].stdout, "user=B") {
					t.Errorf("%s: hako's command is not in B:\n%s%s", c.name, res[1].stdout, res[1].stderr)
				}
			}
		})
	}
}

// userNSPair starts, as the runner's user, a process in a new user
// namespace A (the user is root in it) holding another in B, a child of A
// where A's root is uid and gid 1000, and returns both namespaces' files;
// they end with the test.
func (r *bwrapRunner) userNSPair(t *testing.T) (a, b string) {
	t.Helper()
	cmd := exec.Command("unshare", "-U", "--map-root-user", "sh", "-c",
		"unshare -U --map-user=1000 --map-group=1000 sleep 600 & exec sleep 600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	outer := strconv.Itoa(cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		children, _ := os.ReadFile("/proc/" + outer + "/task/" + outer + "/children")
		inner := strings.Fields(string(children))
		if len(inner) != 1 {
			continue
		}
		a, b = "/proc/"+outer+"/ns/user", "/proc/"+inner[0]+"/ns/user"
		la, _ := os.Readlink(a)
		lb, _ := os.Readlink(b)
		comm, _ := os.ReadFile("/proc/" + inner[0] + "/comm")
		if la != "" && lb != "" && la != lb && strings.TrimSpace(string(comm)) == "sleep" {
			return a, b
		}
	}
	t.Fatal("the user namespaces A and B did not come up")
	return "", ""
}

// runGroup is run with the files opened from paths, stdout and stderr in
// files, in a process group of its own that is killed afterwards: where
// its monitor fails to enter --userns2's namespace, Debian's bwrap leaves
// its sandbox's process waiting forever for the monitor's go-ahead.
func (r *bwrapRunner) runGroup(t *testing.T, hako bool, argv []string, paths []string) bwrapResult {
	t.Helper()
	cmd := r.command(hako, argv)
	cmd.SysProcAttr.Setpgid = true
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	errf, err := os.Create(filepath.Join(dir, "err"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd.Stdout, cmd.Stderr = out, errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("%s: still running after 30s", strings.Join(cmd.Args, " "))
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	o, _ := os.ReadFile(out.Name())
	e, _ := os.ReadFile(errf.Name())
	return bwrapResult{string(o), string(e), code}
}
