package container

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/initproc"
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

// A listener fd sent between two messages reaches onFd, and its marker
// byte never reaches the JSON decoder.
func TestSyncConnFdBetweenMessages(t *testing.T) {
	c, child := syncPair(t)
	var got []int
	c.onFd = func(fd int) error { got = append(got, fd); return nil }
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	unix.Write(child, []byte(`{"type":"hooks"}`+"\n"))
	if err := unix.Sendmsg(child, []byte{initproc.FdMarker}, unix.UnixRights(int(devnull.Fd())), nil, 0); err != nil {
		t.Fatal(err)
	}
	unix.Write(child, []byte(`{"type":"ready"}`+"\n"))
	unix.Close(child)
	dec := json.NewDecoder(c)
	var types []string
	for {
		var m initproc.Message
		if err := dec.Decode(&m); err != nil {
			break
		}
		types = append(types, m.Type)
	}
	if len(types) != 2 || types[0] != "hooks" || types[1] != "ready" || len(got) != 1 {
		t.Fatalf("messages %q, fds %v", types, got)
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
