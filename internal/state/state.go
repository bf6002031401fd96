// Package state owns the --root store: one directory per container holding
// state.json (written atomically: temp file, fsync, rename), the validated
// config the container was created from, the exec fifo while the container
// waits for start, and a lock file so that concurrent hako commands on one
// container are serialised.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/linux/resctrl"
)

// Sentinel errors for callers.
var (
	ErrNotExist = errors.New("container does not exist")
	ErrExist    = errors.New("container already exists")
	ErrBadID    = errors.New("invalid container id")
)

const (
	stateFile = "state.json"
	lockFile  = ".lock"
	// FifoName is the exec fifo: the init blocks opening it for writing
	// until `start` opens it for reading.
	FifoName = "exec.fifo"
	// ConfigName is the validated config.json the container was created
	// from; exec and delete read it, not the bundle, which may change.
	ConfigName = "config.json"
	// SeccompName holds linux.seccomp compiled at create, so that each
	// exec loads it instead of compiling the profile again (tens of ms for
	// a large profile).
	SeccompName = "seccomp.json"
)

// State is what hako remembers about a container between commands.
type State struct {
	ID          string            `json:"id"`
	InitPid     int               `json:"init_pid"`
	InitStart   uint64            `json:"init_start_time"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	CgroupPaths map[string]string `json:"cgroup_paths,omitempty"`
	Rootless    bool              `json:"rootless,omitempty"`
	// CgroupUnit is the systemd unit of a container created with
	// --systemd-cgroup; later commands use the systemd driver for it
	// whatever flags they are given, as the cgroup belongs to the unit.
	CgroupUnit string `json:"cgroup_systemd_unit,omitempty"`
	// IntelRdt is the container's resctrl group (linux.intelRdt): exec
	// joins it, update writes its schemata, delete removes what hako
	// made. Kept here, not recomputed, because whether hako made the
	// group is known only when it did.
	IntelRdt *resctrl.Group `json:"intel_rdt,omitempty"`
}

// Store is a --root directory.
type Store struct {
	Root string
}

// CheckID applies runc's rule for container ids, which keeps an id usable
// as a single path component.
func CheckID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: must not be empty", ErrBadID)
	}
	if id == "." || id == ".." || !validID(id) || len(id) > 1024 {
		return fmt.Errorf("%w %q: use letters, digits and + - . _ only", ErrBadID, id)
	}
	return nil
}

// validID is runc's ^[\w+-.]+$ without a regexp compiled at every start.
func validID(id string) bool {
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '+' || c == '-' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// Dir is the container's directory.
func (s *Store) Dir(id string) string { return filepath.Join(s.Root, id) }

// Lock is a held per-container lock.
type Lock struct{ f *os.File }

// Unlock releases the lock.
func (l *Lock) Unlock() {
	if l != nil && l.f != nil {
		l.f.Close()
	}
}

func lockAt(dir string) (*Lock, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return &Lock{f: f}, nil
}

// Create makes the container's directory, failing with ErrExist if it is
// there, and returns it locked.
func (s *Store) Create(id string) (*Lock, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.Root, 0o711); err != nil {
		return nil, fmt.Errorf("create state root %s: %w", s.Root, err)
	}
	dir := s.Dir(id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container %q: %w", id, ErrExist)
		}
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	return lockAt(dir)
}

// Lock takes the container's lock, failing with ErrNotExist.
func (s *Store) Lock(id string) (*Lock, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	l, err := lockAt(s.Dir(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container %q: %w", id, ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	// Deleted while we waited for the lock.
	if _, err := os.Stat(s.Dir(id)); err != nil {
		l.Unlock()
		return nil, fmt.Errorf("container %q: %w", id, ErrNotExist)
	}
	return l, nil
}

// Load reads the container's state.
func (s *Store) Load(id string) (*State, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(s.Dir(id), stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container %q: %w", id, ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("container %q: corrupt %s: %w", id, stateFile, err)
	}
	return &st, nil
}

// Save writes state atomically: a reader sees the old or the new file, and
// a crash of hako leaves one of them. No fsync: the store lives on a tmpfs
// (/run) that a power loss empties anyway, and an fsync on a disk-backed
// --root costs milliseconds per command.
func (s *Store) Save(st *State) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return WriteAtomic(filepath.Join(s.Dir(st.ID), stateFile), data, 0o600)
}

// WriteAtomic writes data to path through a temporary file and rename.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Remove deletes the container's directory.
func (s *Store) Remove(id string) error {
	if err := CheckID(id); err != nil {
		return err
	}
	return os.RemoveAll(s.Dir(id))
}

// List returns the ids of every container in the store, sorted.
func (s *Store) List() ([]string, error) {
	ents, err := os.ReadDir(s.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && CheckID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}
