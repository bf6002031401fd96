package toolcache

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent callers (test/cri and test/vm under `go test ./...`) build
// once, and all get the finished directory.
func TestCachedBuildsOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tool-v1")
	var builds atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := Cached(dir, func(tmp string) error {
				builds.Add(1)
				time.Sleep(50 * time.Millisecond) // long enough for the others to arrive
				return os.WriteFile(filepath.Join(tmp, "tool"), []byte("x"), 0o755)
			})
			if err != nil || got != dir {
				t.Errorf("Cached = %q, %v", got, err)
			}
			if _, err := os.Stat(filepath.Join(got, "tool")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Errorf("built %d times, want 1", n)
	}
}

// A failed build leaves neither the entry nor its temporary directory.
func TestCachedFailedBuild(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tool-v1")
	_, err := Cached(dir, func(tmp string) error {
		os.WriteFile(filepath.Join(tmp, "half"), nil, 0o644)
		return errors.New("no network")
	})
	if err == nil {
		t.Fatal("no error from a failed build")
	}
	for _, p := range []string{dir, dir + ".tmp"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
}
