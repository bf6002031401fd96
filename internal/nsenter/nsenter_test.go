package nsenter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/frame"
)

// TestMain is also the process the constructor hands over to when a test
// below re-executes this binary with EnvSync set: it reports, as a frame,
// which UTS namespace and ids it ended up with, and exits.
func TestMain(m *testing.M) {
	if fd := os.Getenv(EnvSync); fd != "" {
		uts, _ := os.Readlink("/proc/self/ns/uts")
		oom, _ := os.ReadFile("/proc/self/oom_score_adj")
		c := frame.NewConn(3)
		c.Send(&frame.Frame{Type: frame.TypeReady, Payload: []byte(fmt.Sprintf("%s uid=%d oom=%s", uts, os.Getuid(), strings.TrimSpace(string(oom))))})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestCFramesMatchGo(t *testing.T) {
	want := []struct {
		name string
		c    int
		g    int
	}{
		{"magic", cFrames.Magic, frame.Magic},
		{"header", cFrames.Header, frame.HeaderSize},
		{"ns-oom-score-adj", cFrames.OOMScoreAdj, int(frame.TypeNsOOMScoreAdj)},
		{"ns-cgroup", cFrames.Cgroup, int(frame.TypeNsCgroup)},
		{"ns-join", cFrames.Join, int(frame.TypeNsJoin)},
		{"ns-unshare", cFrames.Unshare, int(frame.TypeNsUnshare)},
		{"ns-time-offsets", cFrames.TimeOffsets, int(frame.TypeNsTimeOffsets)},
		{"ns-end", cFrames.End, int(frame.TypeNsEnd)},
		{"ns-maps", cFrames.Maps, int(frame.TypeNsMaps)},
		{"ns-maps-done", cFrames.MapsDone, int(frame.TypeNsMapsDone)},
		{"ns-pid", cFrames.Pid, int(frame.TypeNsPid)},
		{"ns-error", cFrames.Error, int(frame.TypeNsError)},
		{"ns-options", cFrames.Options, int(frame.TypeNsOptions)},
		{"OptKeepIDs", cFrames.KeepIDs, int(OptKeepIDs)},
		{"OptDisableUserns", cFrames.DisableUserns, int(OptDisableUserns)},
		{"OptAssertUsernsDisabled", cFrames.AssertDisabled, int(OptAssertUsernsDisabled)},
		{"ns-place", cFrames.Place, int(frame.TypeNsPlace)},
		{"ns-place-done", cFrames.PlaceDone, int(frame.TypeNsPlaceDone)},
		{"ready", cFrames.Ready, int(frame.TypeReady)},
		{"ns-c-plan", cFrames.CPlanFrame, int(frame.TypeNsCPlan)},
		{"ns-c-error", cFrames.CError, int(frame.TypeNsCError)},
		{"OptCPlan", cFrames.CPlanOpt, int(OptCPlan)},
	}
	for _, w := range want {
		if w.c != w.g {
			t.Errorf("%s: nsframe.h says %d, internal/frame %d", w.name, w.c, w.g)
		}
	}
}

func TestRequestFrames(t *testing.T) {
	dir := t.TempDir()
	tasks := filepath.Join(dir, "tasks")
	if err := os.WriteFile(tasks, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	oom := -17
	r := &Request{
		OOMScoreAdj: &oom,
		CgroupTasks: []string{tasks},
		Join:        []string{"/proc/self/ns/uts", "/proc/self/ns/ipc"},
		Unshare:     unix.CLONE_NEWNS | unix.CLONE_NEWPID,
		TimeOffsets: []TimeOffset{{"monotonic", 10, 5}, {"boottime", -3, 0}},
	}
	frames, files, err := r.Frames()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFiles(files) })
	var got []string
	for _, f := range frames {
		s := f.Type.String()
		switch f.Type {
		case frame.TypeNsUnshare:
			s += fmt.Sprintf(" %#x", binary.LittleEndian.Uint64(f.Payload))
		case frame.TypeNsEnd:
		default:
			s += " " + strings.TrimSpace(string(f.Payload))
		}
		s += fmt.Sprintf(" fds=%d", len(f.Fds))
		got = append(got, s)
	}
	want := []string{
		"ns-oom-score-adj -17 fds=0",
		"ns-cgroup " + tasks + " fds=1",
		"ns-join /proc/self/ns/uts fds=1",
		"ns-join /proc/self/ns/ipc fds=1",
		fmt.Sprintf("ns-unshare %#x fds=0", unix.CLONE_NEWNS|unix.CLONE_NEWPID),
		"ns-time-offsets monotonic 10 5\nboottime -3 0 fds=0",
		"ns-end fds=0",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("frames:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(files) != 3 {
		t.Fatalf("%d files held open, want 3", len(files))
	}
	// The fd of the join frame is the namespace itself, opened here.
	var st unix.Stat_t
	if err := unix.Fstat(frames[2].Fds[0], &st); err != nil {
		t.Fatal(err)
	}
	var self unix.Stat_t
	unix.Stat("/proc/self/ns/uts", &self)
	if st.Ino != self.Ino {
		t.Fatalf("join fd is inode %d, /proc/self/ns/uts is %d", st.Ino, self.Ino)
	}
}

func TestRequestFramesErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		r    Request
		want string
	}{
		"missing namespace": {Request{Join: []string{"/proc/self/ns/nope"}}, "open namespace /proc/self/ns/nope: no such file or directory"},
		"NUL in path":       {Request{Join: []string{"/a\x00b"}}, "cannot be passed"},
		"empty cgroup":      {Request{CgroupTasks: []string{""}}, "cannot be passed"},
		"too many joins":    {Request{Join: strings.Split(strings.Repeat("/proc/self/ns/uts,", 17), ",")[:17]}, "at most 16"},
		"offsets too long":  {Request{TimeOffsets: make([]TimeOffset, 120)}, "at most 511"},
	} {
		frames, files, err := tc.r.Frames()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
		if frames != nil || files != nil {
			t.Errorf("%s: frames or files returned with the error", name)
		}
	}
}

func errPayload(errno unix.Errno, what, arg, msg string) []byte {
	p := binary.LittleEndian.AppendUint32(nil, uint32(errno))
	return append(p, what+"\x00"+arg+"\x00"+msg...)
}

// fakeChild replays frames as the constructor would send them.
func fakeChild(frames ...*frame.Frame) func() (*frame.Frame, error) {
	return func() (*frame.Frame, error) {
		if len(frames) == 0 {
			return nil, io.EOF
		}
		f := frames[0]
		frames = frames[1:]
		return f, nil
	}
}

func TestWait(t *testing.T) {
	pid4 := binary.LittleEndian.AppendUint32(nil, 4242)
	var sent []frame.Type
	send := func(f *frame.Frame) error { sent = append(sent, f.Type); return nil }
	maps := 0
	writeMaps := func() error { maps++; return nil }

	pid, err := Wait(fakeChild(&frame.Frame{Type: frame.TypeNsMaps}, &frame.Frame{Type: frame.TypeNsPid, Payload: pid4}), send, nil, writeMaps)
	if err != nil || pid != 4242 || maps != 1 || len(sent) != 1 || sent[0] != frame.TypeNsMapsDone {
		t.Fatalf("maps then pid: pid %d err %v maps %d sent %v", pid, err, maps, sent)
	}

	mapsErr := errors.New("newuidmap: no range")
	if _, err := Wait(fakeChild(&frame.Frame{Type: frame.TypeNsMaps}), send, nil, func() error { return mapsErr }); !errors.Is(err, mapsErr) {
		t.Errorf("failed maps: %v", err)
	}

	for name, tc := range map[string]struct {
		f    *frame.Frame
		want string
	}{
		"setns error": {&frame.Frame{Type: frame.TypeNsError, Payload: errPayload(unix.EINVAL, "setns", "/proc/1/ns/net", "Invalid argument")}, "setns /proc/1/ns/net: invalid argument"},
		"other error": {&frame.Frame{Type: frame.TypeNsError, Payload: errPayload(unix.ENOTTY, "not a namespace file (ioctl NS_GET_NSTYPE)", "/etc/passwd", "x")}, "not a namespace file (ioctl NS_GET_NSTYPE) /etc/passwd: inappropriate ioctl for device"},
		"malformed":   {&frame.Frame{Type: frame.TypeNsError, Payload: []byte{1, 0}}, "malformed error report"},
		"short pid":   {&frame.Frame{Type: frame.TypeNsPid, Payload: []byte{1}}, "bad pid report of 1 bytes"},
		"zero pid":    {&frame.Frame{Type: frame.TypeNsPid, Payload: make([]byte, 4)}, "bad pid report 0"},
		"plan frame":  {&frame.Frame{Type: frame.TypeReady}, "unexpected ready frame"},
	} {
		_, err := Wait(fakeChild(tc.f), send, nil, writeMaps)
		if !errors.Is(err, ErrChild) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrChild containing %q", name, err, tc.want)
		}
	}
	if _, err := Wait(fakeChild(), send, nil, writeMaps); !errors.Is(err, ErrChild) || !strings.Contains(err.Error(), "exited before reporting its pid") {
		t.Errorf("EOF: %v", err)
	}
	// The refusals with known causes are explained, with the errno kept.
	_, err = Wait(fakeChild(&frame.Frame{Type: frame.TypeNsError, Payload: errPayload(unix.ENOSPC, "unshare", "user namespace", "No space left on device")}), send, nil, writeMaps)
	if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), "max_user_namespaces") {
		t.Errorf("unshare user ENOSPC: %v", err)
	}
}

// A process born outside its cgroup (Request.Place) asks to be placed and
// waits for the answer; the parent places it once, and a failure to place
// it is the error.
func TestWaitPlace(t *testing.T) {
	pid4 := binary.LittleEndian.AppendUint32(nil, 7)
	var sent []frame.Type
	send := func(f *frame.Frame) error { sent = append(sent, f.Type); return nil }
	placed := 0
	place := func() error { placed++; return nil }
	pid, err := Wait(fakeChild(&frame.Frame{Type: frame.TypeNsPlace}, &frame.Frame{Type: frame.TypeNsPid, Payload: pid4}), send, place, nil)
	if err != nil || pid != 7 || placed != 1 || len(sent) != 1 || sent[0] != frame.TypeNsPlaceDone {
		t.Fatalf("place then pid: pid %d err %v placed %d sent %v", pid, err, placed, sent)
	}
	boom := errors.New("systemd: move process 7 into unit hako-c1.scope: access denied")
	if _, err := Wait(fakeChild(&frame.Frame{Type: frame.TypeNsPlace}), send, func() error { return boom }, nil); !errors.Is(err, boom) {
		t.Errorf("failed place: %v", err)
	}
	// Asked without having been told to wait: an error, not a crash.
	if _, err := Wait(fakeChild(&frame.Frame{Type: frame.TypeNsPlace}), send, nil, nil); !errors.Is(err, ErrChild) || !strings.Contains(err.Error(), "not requested") {
		t.Errorf("unrequested place: %v", err)
	}
}

func FuzzChildError(f *testing.F) {
	f.Add(errPayload(unix.EPERM, "unshare", "user namespace", "Operation not permitted"))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		if err := childError(p); err == nil {
			t.Fatal("nil error")
		}
	})
}

// constructor re-executes this test binary with the constructor armed and
// sends it frames; it returns what the constructor answered (through
// Wait) and, when it handed over to Go, what that process reported.
// startConstructor re-executes the test binary with a sync socket, as
// spawn does hako; stdout (may be nil) is its fd 1. The caller waits for
// cmd and closes the socket (t.Cleanup does too).
func startConstructor(t *testing.T, stdout *os.File) (*frame.Conn, *exec.Cmd) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	child := os.NewFile(uintptr(fds[1]), "child")
	defer child.Close()
	t.Cleanup(func() { unix.Close(fds[0]) })
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = []string{EnvSync + "=3"}
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stdout = stdout
	// The cwd steps of a C plan resolve from "/", where an exec's
	// setns(CLONE_NEWNS) leaves the process.
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return frame.NewConn(fds[0]), cmd
}

func constructor(t *testing.T, frames []*frame.Frame, place func() error, writeMaps func(pid int) error) (string, error) {
	t.Helper()
	parent, cmd := startConstructor(t, nil)
	defer cmd.Wait()
	for _, f := range frames {
		if err := parent.Send(f); err != nil {
			t.Fatalf("send %s: %v", f.Type, err)
		}
	}
	pid, err := Wait(parent.Next, parent.Send, place, func() error { return writeMaps(cmd.Process.Pid) })
	if err != nil {
		return "", err
	}
	defer unix.Wait4(pid, nil, 0, nil)
	f, err := parent.Next()
	if err != nil {
		t.Fatalf("after the constructor: %v", err)
	}
	return string(f.Payload), nil
}

func TestConstructor(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it unshares a UTS namespace and writes id maps")
	}
	self, _ := os.Readlink("/proc/self/ns/uts")
	oom := 321
	req := Request{Join: []string{"/proc/self/ns/uts"}, Unshare: unix.CLONE_NEWUSER | unix.CLONE_NEWUTS, OOMScoreAdj: &oom}
	frames, files, err := req.Frames()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFiles(files) })
	maps := 0
	got, err := constructor(t, frames, nil, func(pid int) error {
		maps++
		for _, f := range []string{"uid_map", "gid_map"} {
			if err := os.WriteFile(fmt.Sprintf("/proc/%d/%s", pid, f), []byte("0 0 1\n"), 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	uts, rest, _ := strings.Cut(got, " ")
	if maps != 1 || uts == self || !strings.HasPrefix(uts, "uts:[") || rest != "uid=0 oom=321" {
		t.Fatalf("maps written %d times; the process reports %q (the test's uts is %s)", maps, got, self)
	}
}

// The constructor told to wait (Request.Place) asks once, after the whole
// request and before any namespace step, and goes on when answered.
func TestConstructorPlace(t *testing.T) {
	self, _ := os.Readlink("/proc/self/ns/uts")
	frames, files, err := (&Request{Place: true}).Frames()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFiles(files) })
	if n := len(frames); n != 2 || frames[0].Type != frame.TypeNsPlace || frames[1].Type != frame.TypeNsEnd {
		t.Fatalf("frames: %v", frames)
	}
	placed := 0
	got, err := constructor(t, frames, func() error { placed++; return nil }, func(int) error { return errors.New("no maps expected") })
	if err != nil {
		t.Fatal(err)
	}
	if uts, _, _ := strings.Cut(got, " "); placed != 1 || uts != self {
		t.Fatalf("placed %d times; the process reports %q", placed, got)
	}
}

func TestConstructorRefusals(t *testing.T) {
	regular, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	for name, tc := range map[string]struct {
		frames []*frame.Frame
		want   string
	}{
		"not a namespace": {[]*frame.Frame{{Type: frame.TypeNsJoin, Payload: []byte("/proc/self/exe"), Fds: []int{int(regular.Fd())}}, {Type: frame.TypeNsEnd}},
			"not a namespace file (ioctl NS_GET_NSTYPE) /proc/self/exe: inappropriate ioctl for device"},
		"join without fd": {[]*frame.Frame{{Type: frame.TypeNsJoin, Payload: []byte("/proc/self/ns/uts")}, {Type: frame.TypeNsEnd}},
			"malformed request /proc/self/ns/uts: protocol error"},
		"short unshare": {[]*frame.Frame{{Type: frame.TypeNsUnshare, Payload: []byte{1}}, {Type: frame.TypeNsEnd}},
			"malformed request ns-unshare: protocol error"},
		"wrong frame": {[]*frame.Frame{{Type: frame.TypeReady}, {Type: frame.TypeNsEnd}},
			"unexpected request frame type 5: protocol error"},
		"place with payload": {[]*frame.Frame{{Type: frame.TypeNsPlace, Payload: []byte{1}}, {Type: frame.TypeNsEnd}},
			"malformed request ns-place: protocol error"},
	} {
		_, err := constructor(t, tc.frames, nil, func(int) error { return errors.New("no maps expected") })
		if !errors.Is(err, ErrChild) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

func TestRequestString(t *testing.T) {
	oom := -5
	r := Request{OOMScoreAdj: &oom, Join: []string{"/proc/7/ns/net"}, Unshare: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID,
		TimeOffsets: []TimeOffset{{"boottime", 3, 5}}}
	want := "oom_score_adj=-5; join /proc/7/ns/net; unshare user,pid,mnt; time offset boottime 3.000000005s"
	if got := r.String(); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if got := (&Request{}).String(); got != "nothing" {
		t.Fatalf("empty request: %q", got)
	}
}
