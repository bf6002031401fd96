package state

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestCheckID(t *testing.T) {
	for _, ok := range []string{"a", "abc-1.2_3+x", "UPPER"} {
		if err := CheckID(ok); err != nil {
			t.Errorf("CheckID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "../x", "a b", "a\nb"} {
		if err := CheckID(bad); !errors.Is(err, ErrBadID) {
			t.Errorf("CheckID(%q) = %v, want ErrBadID", bad, err)
		}
	}
}

func TestCreateSaveLoadListRemove(t *testing.T) {
	s := &Store{Root: filepath.Join(t.TempDir(), "root")}
	l, err := s.Create("c1")
	if err != nil {
		t.Fatal(err)
	}
	st := &State{ID: "c1", InitPid: 42, Bundle: "/b", Created: time.Unix(1, 0).UTC(), Annotations: map[string]string{"k": "v"}}
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	if _, err := s.Create("c1"); !errors.Is(err, ErrExist) {
		t.Fatalf("second Create = %v, want ErrExist", err)
	}
	got, err := s.Load("c1")
	if err != nil || got.InitPid != 42 || got.Annotations["k"] != "v" || !got.Created.Equal(st.Created) {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	ids, _ := s.List()
	if len(ids) != 1 || ids[0] != "c1" {
		t.Fatalf("List = %v", ids)
	}
	if err := s.Remove("c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("c1"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("Load after Remove = %v", err)
	}
	if _, err := s.Lock("c1"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("Lock after Remove = %v", err)
	}
}

func TestLockSerialises(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	l, err := s.Create("c")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	order := []string{}
	done := make(chan struct{})
	go func() {
		l2, err := s.Lock("c")
		if err != nil {
			t.Error(err)
		} else {
			mu.Lock()
			order = append(order, "second")
			mu.Unlock()
			l2.Unlock()
		}
		close(done)
	}()
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	order = append(order, "first")
	mu.Unlock()
	l.Unlock()
	<-done
	if len(order) != 2 || order[0] != "first" {
		t.Fatalf("order = %v: the lock did not hold", order)
	}
}

func TestSaveIsAtomic(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	l, _ := s.Create("c")
	defer l.Unlock()
	for i := 0; i < 20; i++ {
		if err := s.Save(&State{ID: "c", InitPid: i}); err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(s.Dir("c"))
	for _, e := range ents {
		if e.Name() != "state.json" && e.Name() != ".lock" {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
}
