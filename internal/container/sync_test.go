package container

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/frame"
)

func syncPair(t *testing.T) (*syncConn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newSyncConn(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); unix.Close(fds[1]) })
	return c, fds[1]
}

// A listener fd sent in a frame between two frames reaches onFd, and the
// frames around it arrive whole.
func TestSyncConnFdBetweenMessages(t *testing.T) {
	c, child := syncPair(t)
	var got []int
	p := &proc{conn: c, r: frame.NewReader(c, &c.fds), onFd: func(fd int) error { got = append(got, fd); return nil }}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	cc := frame.NewConn(child)
	for _, f := range []*frame.Frame{
		{Type: frame.TypeHooks},
		{Type: frame.TypeSeccompFd, Fds: []int{int(devnull.Fd())}},
		{Type: frame.TypeReady},
	} {
		if err := cc.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	unix.Close(child)
	var types []frame.Type
	for {
		m, err := p.next()
		if err != nil {
			break
		}
		types = append(types, m)
	}
	if len(types) != 2 || types[0] != frame.TypeHooks || types[1] != frame.TypeReady || len(got) != 1 {
		t.Fatalf("messages %v, fds %v", types, got)
	}
	unix.Close(got[0])
}

// A silent child ends the read: at once when checkStuck says why, else
// once idle has passed.
func TestSyncConnBoundedRead(t *testing.T) {
	oldPoll := syncPoll
	syncPoll = time.Millisecond
	defer func() { syncPoll = oldPoll }()

	c, _ := syncPair(t)
	frozen := errors.New("frozen")
	c.checkStuck = func() error { return frozen }
	// Only so that a broken check fails rather than hangs.
	c.idle = 10 * time.Second
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, frozen) {
		t.Fatalf("stuck child: %v", err)
	}

	c2, _ := syncPair(t)
	c2.idle = time.Millisecond
	if _, err := c2.Read(make([]byte, 8)); !errors.Is(err, errSilent) {
		t.Fatalf("silent child: %v", err)
	}
}
