package integration

import (
	"syscall"
	"testing"
)

func statOwner(t *testing.T, p string) [2]uint32 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return [2]uint32{st.Uid, st.Gid}
}
