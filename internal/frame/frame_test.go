package frame

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := []*Frame{
		{Type: TypePlan, Payload: []byte(`{"steps":[]}`)},
		{Type: TypeReady},
		{Type: TypeError, Payload: []byte("mount: EPERM")},
	}
	for _, f := range in {
		b, err := Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
	}
	r := NewReader(&buf, nil)
	for i, want := range in {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Type != want.Type || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("frame %d: got %v %q, want %v %q", i, got.Type, got.Payload, want.Type, want.Payload)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
}

func TestCorrupt(t *testing.T) {
	h := Header(TypeReady, 0, 0)
	for name, b := range map[string][]byte{
		"bad magic":     append([]byte{'X'}, h[1:]...),
		"unknown type":  {Magic, 200, 0, 0, 0, 0, 0, 0},
		"too many fds":  {Magic, byte(TypePlan), 0xff, 0xff, 0, 0, 0, 0},
		"too long":      {Magic, byte(TypePlan), 0, 0, 0xff, 0xff, 0xff, 0x7f},
		"fds, no queue": func() []byte { h := Header(TypeSeccompFd, 0, 1); return h[:] }(),
	} {
		if _, err := NewReader(bytes.NewReader(b), nil).Next(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	short := Header(TypeError, 10, 0)
	if _, err := NewReader(bytes.NewReader(append(short[:], "abc"...)), nil).Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated payload: %v", err)
	}
}

// Fds attached to frames arrive in order over a real socket, however the
// reads split the stream, and a frame gets exactly its own.
func TestConnFds(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	a, b := NewConn(fds[0]), NewConn(fds[1])
	f1, _ := os.Open(os.DevNull)
	defer f1.Close()
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	send := []*Frame{
		{Type: TypeHooks},
		{Type: TypePlan, Payload: bytes.Repeat([]byte("x"), 300000), Fds: []int{int(f1.Fd()), int(r.Fd())}},
		{Type: TypeSeccompFd, Fds: []int{int(w.Fd())}},
		{Type: TypeReady},
	}
	go func() {
		for _, f := range send {
			if err := a.Send(f); err != nil {
				t.Error(err)
			}
		}
	}()
	for i, want := range send {
		got, err := b.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Type != want.Type || len(got.Payload) != len(want.Payload) || len(got.Fds) != len(want.Fds) {
			t.Fatalf("frame %d: got %v %d bytes %d fds", i, got.Type, len(got.Payload), len(got.Fds))
		}
		for j, fd := range got.Fds {
			var st1, st2 unix.Stat_t
			unix.Fstat(fd, &st1)
			unix.Fstat(want.Fds[j], &st2)
			if st1.Ino != st2.Ino || st1.Dev != st2.Dev {
				t.Errorf("frame %d fd %d: another file", i, j)
			}
			unix.Close(fd)
		}
	}
}
