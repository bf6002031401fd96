package cgroups

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The benchmarks time what hako does per container, in its two forms:
// "id" is hako's default (no linux.cgroupsPath: the id below our own
// cgroup), "abs" an absolute linux.cgroupsPath. Each iteration uses a new
// cgroup and removes it again.
//
//	go test -run '^$' -bench . -benchtime 200x ./internal/linux/cgroups/
//
// They reuse warm process-wide state (the mount table, the cgroup root);
// TestColdTimings shows what a fresh hako process pays.

// defaultSpecResources is what `runc spec` writes: deny every device; the
// default allow list is appended by newResources as for any container.
func defaultSpecResources() *specs.LinuxResources {
	return &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
}

type benchMode struct {
	name string
	cfg  func(id string) Config
}

var benchModes = []benchMode{
	{"id", func(id string) Config { return Config{ID: id, Resources: defaultSpecResources()} }},
	{"abs", func(id string) Config {
		return Config{ID: id, CgroupsPath: "/" + id, Resources: defaultSpecResources()}
	}},
}

// benchID returns unique container ids no one else uses.
func benchID() func(i int) string {
	r := make([]byte, 4)
	_, _ = rand.Read(r)
	prefix := "hako-bench-" + hex.EncodeToString(r) + "-"
	return func(i int) string { return prefix + strconv.Itoa(i) }
}

// runModes runs f once per mode, skipping a mode this host refuses (New
// fails, e.g. for a hierarchy mounted outside /sys/fs/cgroup).
func runModes(b *testing.B, f func(b *testing.B, newM func(i int) *Manager)) {
	for _, mode := range benchModes {
		b.Run(mode.name, func(b *testing.B) {
			id := benchID()
			if _, err := New(mode.cfg(id(0))); err != nil {
				b.Skipf("host refuses this mode: %v", err)
			}
			f(b, func(i int) *Manager {
				m, err := New(mode.cfg(id(i)))
				if err != nil {
					b.Fatal(err)
				}
				return m
			})
		})
	}
}

// destroyLikeDelete is what `hako delete` does with the persisted paths.
func destroyLikeDelete(tb testing.TB, paths map[string]string) {
	lm, err := Load(paths, false, "")
	if err != nil {
		tb.Fatal(err)
	}
	if pids, err := lm.Pids(); err != nil || len(pids) != 0 {
		tb.Fatalf("Pids = %v, %v", pids, err)
	}
	if err := lm.Destroy(); err != nil {
		tb.Fatal(err)
	}
}

func BenchmarkNew(b *testing.B) {
	runModes(b, func(b *testing.B, newM func(int) *Manager) {
		for i := 0; b.Loop(); i++ {
			newM(i)
		}
	})
}

func BenchmarkCreate(b *testing.B) {
	needRoot(b)
	runModes(b, func(b *testing.B, newM func(int) *Manager) {
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			m := newM(i)
			b.StartTimer()
			if err := m.Create(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			destroyLikeDelete(b, m.Paths())
			b.StartTimer()
		}
	})
}

// BenchmarkDestroy times the delete of an empty cgroup: Load, Pids and
// Destroy.
func BenchmarkDestroy(b *testing.B) {
	needRoot(b)
	runModes(b, func(b *testing.B, newM func(int) *Manager) {
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			m := newM(i)
			if err := m.Create(); err != nil {
				b.Fatal(err)
			}
			paths := m.Paths()
			b.StartTimer()
			destroyLikeDelete(b, paths)
		}
	})
}

func BenchmarkNewCreateDestroy(b *testing.B) {
	needRoot(b)
	runModes(b, func(b *testing.B, newM func(int) *Manager) {
		for i := 0; b.Loop(); i++ {
			m := newM(i)
			if err := m.Create(); err != nil {
				b.Fatal(err)
			}
			destroyLikeDelete(b, m.Paths())
		}
	})
}

// TestColdTimings reports what one hako process pays: the first New,
// Create and delete in a fresh process, before any process-wide cache is
// warm. Build the test binary and run it repeatedly:
//
//	HAKO_CGROUP_TIMINGS=id (or abs) ./cgroups.test -test.run TestColdTimings -test.v
func TestColdTimings(t *testing.T) {
	modeName := os.Getenv("HAKO_CGROUP_TIMINGS")
	if modeName == "" {
		t.Skip("set HAKO_CGROUP_TIMINGS=id or abs")
	}
	needRoot(t)
	for _, mode := range benchModes {
		if mode.name != modeName {
			continue
		}
		t0 := time.Now()
		m, err := New(mode.cfg(benchID()(0)))
		if err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		if err := m.Create(); err != nil {
			t.Fatal(err)
		}
		t2 := time.Now()
		destroyLikeDelete(t, m.Paths())
		t3 := time.Now()
		t.Logf("cold %s: New %v Create %v Load+Pids+Destroy %v", mode.name, t1.Sub(t0), t2.Sub(t1), t3.Sub(t2))
		return
	}
	t.Fatalf("unknown mode %q", modeName)
}
