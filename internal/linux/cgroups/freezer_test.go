package cgroups

import (
	"strings"
	"testing"
	"time"
)

// noSleep makes the freezer's waits instant for one test.
func noSleep(t *testing.T) *int {
	var n int
	old := sleep
	sleep = func(time.Duration) { n++ }
	t.Cleanup(func() { sleep = old })
	return &n
}

func TestFreezeV1(t *testing.T) {
	noSleep(t)
	// FREEZING while tasks are still being stopped: written again until
	// the kernel reports FROZEN.
	f := newFake()
	f.script["freezer.state"] = []string{"FREEZING\n", "FREEZING\n", "FROZEN\n"}
	if err := freezeV1(f, fakeRoot); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "freeze", f, "freezer.state=FROZEN", "freezer.state=FROZEN", "freezer.state=FROZEN")

	// Never settling: an error, and the cgroup is thawed again.
	f = newFake()
	f.script["freezer.state"] = []string{}
	for range 1000 {
		f.script["freezer.state"] = append(f.script["freezer.state"], "FREEZING\n")
	}
	if err := freezeV1(f, fakeRoot); err == nil {
		t.Fatal("stuck FREEZING reported success")
	}
	if last := f.writes[len(f.writes)-1]; last != "freezer.state=THAWED" {
		t.Errorf("not thawed after failure: last write %q", last)
	}

	f = newFake()
	if err := thawV1(f, fakeRoot); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "thaw", f, "freezer.state=THAWED")
}

func TestPausedV1(t *testing.T) {
	noSleep(t)
	for _, tc := range []struct {
		state, self string
		want        bool
	}{
		{"THAWED\n", "0\n", false},
		{"FROZEN\n", "1\n", true},
		{"FROZEN\n", "0\n", false}, // frozen by an ancestor only
	} {
		f := newFake().with(map[string]string{"freezer.state": tc.state, "freezer.self_freezing": tc.self})
		if got, err := pausedV1(f, fakeRoot); err != nil || got != tc.want {
			t.Errorf("%q/%q: %v, %v; want %v", tc.state, tc.self, got, err, tc.want)
		}
	}
	f := newFake().with(map[string]string{"freezer.state": "FROZEN\n", "freezer.self_freezing": "1\n"})
	f.script["freezer.state"] = []string{"FREEZING\n"}
	if got, err := pausedV1(f, fakeRoot); err != nil || !got {
		t.Errorf("after FREEZING: %v, %v", got, err)
	}
	// No freezer files (an old kernel, or the cgroup is gone): not paused.
	if got, err := pausedV1(newFake(), fakeRoot); err != nil || got {
		t.Errorf("missing files: %v, %v", got, err)
	}
}

func TestFreezeV2(t *testing.T) {
	sleeps := noSleep(t)
	f := newFake().with(map[string]string{"cgroup.freeze": "0\n"})
	f.script["cgroup.freeze"] = []string{"1\n"}
	f.script["cgroup.events"] = []string{"populated 1\nfrozen 0\n", "populated 1\nfrozen 0\n", "populated 1\nfrozen 1\n"}
	if err := setFrozenV2(f, fakeRoot, true); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "freeze", f, "cgroup.freeze=1")
	if *sleeps != 2 {
		t.Errorf("waited %d times for frozen 1, want 2", *sleeps)
	}

	f = newFake()
	f.script["cgroup.freeze"] = []string{"0\n"}
	if err := setFrozenV2(f, fakeRoot, false); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "thaw", f, "cgroup.freeze=0")

	// The kernel did not take it.
	f = newFake()
	f.script["cgroup.freeze"] = []string{"0\n"}
	if err := setFrozenV2(f, fakeRoot, true); err == nil {
		t.Error("unchanged cgroup.freeze accepted")
	}
	// No freezer: thawing is trivially done, freezing is not possible.
	f = newFake()
	f.missing["cgroup.freeze"] = true
	if err := setFrozenV2(f, fakeRoot, false); err != nil {
		t.Errorf("thaw without freezer: %v", err)
	}
	if err := setFrozenV2(f, fakeRoot, true); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("freeze without freezer: %v", err)
	}
	if p, err := pausedV2(f, fakeRoot); err != nil || p {
		t.Errorf("paused without freezer: %v, %v", p, err)
	}
}
