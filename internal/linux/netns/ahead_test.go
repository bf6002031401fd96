package netns

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// The namespace made ahead is a new network namespace, not ours, and the
// goroutine's thread took it along: the test's own threads stay in theirs.
func TestAheadMakesNewNetworkNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating a network namespace needs CAP_SYS_ADMIN: run as root")
	}
	var before unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &before); err != nil {
		t.Fatal(err)
	}
	a := StartAhead()
	defer a.Close()
	f, err := a.File()
	if err != nil {
		t.Fatal(err)
	}
	typ, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil || typ != unix.CLONE_NEWNET {
		t.Fatalf("NS_GET_NSTYPE = %#x, %v; want CLONE_NEWNET", typ, err)
	}
	var made, after unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &made); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/self/ns/net", &after); err != nil {
		t.Fatal(err)
	}
	if made.Ino == before.Ino {
		t.Fatal("the namespace made ahead is the caller's own")
	}
	if after.Ino != before.Ino {
		t.Fatal("the calling thread's network namespace changed")
	}
	a.Close()
	if err := unix.Fstat(int(f.Fd()), &made); err == nil {
		t.Fatal("Close left the namespace's file open")
	}
}
